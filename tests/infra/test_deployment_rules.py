"""Rules a real deployment enforces and no local run shows, as tests over the parsed Bicep.

Each rule cites the Microsoft documentation page that decides it. The resource model check
(test_resource_models.py) proves the shape of each body; these prove the order, naming and
settings that a body of the right shape can still get wrong.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.infra.bicep import MAIN, REPO, app_settings, body, parse

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


# ---------------------------------------------------------------------------------------------
# Dependency order: Key Vault references
# ---------------------------------------------------------------------------------------------

KEY_VAULT_REFERENCE = re.compile(r"@Microsoft\.KeyVault\(")


def _modules() -> dict[str, dict[str, Any]]:
    modules: dict[str, dict[str, Any]] = parse(MAIN).get("modules", {})
    return modules


def _module_target(module: dict[str, Any]) -> Path:
    return (MAIN.parent / module["detail"]["path"]).resolve()


def _declares(module: dict[str, Any], resource_type: str) -> bool:
    resources = parse(_module_target(module)).get("resources", {}).values()
    return any(r["type"].lower() == resource_type.lower() and not r.get("existing") for r in resources)


def _references(value: Any) -> set[str]:
    """Symbols a module's parameters use (its implicit dependencies): bare names and `x.outputs...`."""
    found: set[str] = set()
    if isinstance(value, str):
        found.add(value.split(".")[0])
    elif isinstance(value, dict):
        operands = value.get("operator", {}).get("operands") if isinstance(value.get("operator"), dict) else None
        if isinstance(operands, dict) and isinstance(operands.get("operand_1"), str):
            found.add(operands["operand_1"])
        for item in value.values():
            found |= _references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item)
    return found


def dependencies(name: str) -> set[str]:
    """Modules `name` waits for in main.bicep: explicit dependsOn plus those whose outputs it uses."""
    config = body(_modules()[name]["config"])
    return set(config.get("dependsOn") or []) | (_references(config.get("params", {})) & set(_modules()))


def _app_settings_module() -> str:
    (name,) = [n for n, m in _modules().items() if _declares(m, "Microsoft.Web/sites/config")]
    return name


def test_key_vault_references_are_written_after_their_secret_and_access() -> None:
    """The app settings wait for the secret and the identity's access, so the reference resolves at once.

    https://learn.microsoft.com/azure/app-service/app-service-key-vault-references, "Azure Resource
    Manager deployment": app settings are their own resource, deployed after the app's identity, its
    access to the vault and the secret (the page's template makes the settings depend on the secret).
    """
    assert any(KEY_VAULT_REFERENCE.match(str(value)) for value in app_settings().values())
    waits_for = dependencies(_app_settings_module())
    secret_writers = {n for n, m in _modules().items() if _declares(m, "Microsoft.KeyVault/vaults/secrets")}
    role_writers = {n for n, m in _modules().items() if _declares(m, "Microsoft.Authorization/roleAssignments")}
    assert secret_writers, "some module must write the referenced secret"
    assert secret_writers <= waits_for, f"app settings do not wait for {sorted(secret_writers - waits_for)}"
    assert "roles" in role_writers & waits_for
