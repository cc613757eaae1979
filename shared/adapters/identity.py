"""The one Microsoft Entra ID credential of a process, built here because only adapters import Azure SDKs.

Why two kinds: in Azure the function app authenticates as its managed identity and nothing else.
`DefaultAzureCredential` would try environment variables, workload identity, the Azure CLI and more
before it, which costs time on a cold start and can pick up an identity nobody intended; Microsoft's
guidance is to use it for development and a specific credential in production ("Usage guidance for
DefaultAzureCredential", https://learn.microsoft.com/azure/developer/python/sdk/authentication/credential-chains).
One `ManagedIdentityCredential` is shared by every client (Storage tables, queues and blobs, and
ACS), so the process holds one token cache and one IMDS/identity-endpoint session. With a
user-assigned identity its client id comes from `AZURE_CLIENT_ID`.

The CLI, run by an operator on a workstation, uses `DefaultAzureCredential` (Azure CLI sign-in and
the rest of the chain).
"""

from __future__ import annotations

from typing import Any


def managed_identity(client_id: str | None) -> Any:
    """The app's managed identity: system-assigned, or the user-assigned one with `client_id`."""
    from azure.identity.aio import ManagedIdentityCredential  # lazy: only needed in Azure

    return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()


def developer_credential() -> Any:
    """A person's identity on a workstation (Azure CLI, VS Code, environment...): for the CLI only."""
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential()
