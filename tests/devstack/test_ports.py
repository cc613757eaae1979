"""Ports for the local stack are chosen together, so no two services are handed the same one."""

from __future__ import annotations

import socket

from devstack.azurite import free_ports


def test_ports_chosen_together_are_distinct_and_free() -> None:
    ports = free_ports(40)
    assert len(set(ports)) == 40
    for port in ports:  # each can be bound now
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))
