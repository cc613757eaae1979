"""Rules a real deployment enforces and no local run shows, as tests over the parsed Bicep.

Each rule cites the Microsoft documentation page that decides it. The resource model check
(test_resource_models.py) proves the shape of each body; these prove the order, naming and
settings that a body of the right shape can still get wrong.
"""

from __future__ import annotations

import re

from tests.infra.bicep import REPO

# ---------------------------------------------------------------------------------------------
# Hygiene: what must never leave the operator's machine
# ---------------------------------------------------------------------------------------------


def _patterns(path: str) -> set[str]:
    return {line.strip() for line in (REPO / path).read_text().splitlines() if line.strip() and line[0] != "#"}


def test_azd_environment_directory_is_never_committed() -> None:
    """`.azure/<env>/.env` holds CONSENT_HASH_KEY between preprovision and postprovision (infra/hooks)."""
    assert {".azure", ".azure/", "/.azure/"} & _patterns(".gitignore")


def test_azd_environment_directory_is_never_deployed() -> None:
    """The function package honours .funcignore (Core Tools, azd): `.azure` must not reach Azure."""
    assert {".azure", ".azure/"} & _patterns(".funcignore")


def test_no_unused_dev_pin() -> None:
    """cronsim was pinned but never imported (devstack/host/ncrontab.py parses NCRONTAB itself)."""
    pins = {re.split(r"[=<>;\s]", line, maxsplit=1)[0].lower() for line in _patterns("requirements-dev.txt")}
    assert "cronsim" not in pins
    assert "cronsim" not in (REPO / "pyproject.toml").read_text()
