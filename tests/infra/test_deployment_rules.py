"""Rules a real deployment enforces and no local run shows, as tests over the parsed Bicep.

Each rule cites the Microsoft documentation page that decides it. The resource model check
(test_resource_models.py) proves the shape of each body; these prove the order, naming and
settings that a body of the right shape can still get wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep import (
    MAIN,
    REPO,
    Resource,
    app_settings,
    body,
    declared_resources,
    key_name,
    parameters,
    parse,
)

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


# ---------------------------------------------------------------------------------------------
# Custom role: display name unique in the tenant
# ---------------------------------------------------------------------------------------------

# Longest value of each interpolation a role name may use. Resource group names: at most 90
# characters (https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules,
# Microsoft.Resources/resourcegroups); subscription ids are GUIDs; uniqueString() is 13 characters.
_INTERPOLATION_LENGTHS: dict[str, int] = {
    "subscription().subscriptionId": 36,
    "uniqueString(resourceGroup().id)": 13,
    "resourceGroup().name": 90,
}
_TAKE = re.compile(r"^take\((.+),\s*(\d+)\)$")
_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")


def _longest(expression: str) -> int:
    take = _TAKE.match(expression)
    if take:
        return min(int(take.group(2)), _longest(take.group(1).strip()))
    assert expression in _INTERPOLATION_LENGTHS, f"role name uses {expression!r}, whose length is unknown here"
    return _INTERPOLATION_LENGTHS[expression]


def role_name_problems(role_name: str) -> list[str]:
    """Why a custom role display name could collide in the tenant or exceed 128 characters."""
    problems: list[str] = []
    parts = _INTERPOLATION.findall(role_name)
    if "subscription().subscriptionId" not in parts:
        problems.append("the name does not include the subscription id")
    if "uniqueString(resourceGroup().id)" not in parts and "resourceGroup().name" not in parts:
        problems.append("the name does not identify the resource group in full (its name or a hash of its id)")
    length = len(_INTERPOLATION.sub("", role_name)) + sum(_longest(part) for part in parts)
    if length > 128:
        problems.append(f"the name can be {length} characters long, more than 128")
    return problems


def test_custom_role_display_name_is_unique_in_the_tenant() -> None:
    """roleName includes the subscription id and the resource group in full, and fits 128 characters.

    https://learn.microsoft.com/azure/role-based-access-control/custom-roles ("Custom role
    properties"): the display name "must be unique to your tenant", 128 characters at most.
    """
    roles = [r for r in declared_resources() if r.type == "Microsoft.Authorization/roleDefinitions"]
    assert roles
    problems = {r.symbol: role_name_problems(r.properties["roleName"]) for r in roles}
    assert problems == {r.symbol: [] for r in roles}


def test_role_name_rule_rejects_names_that_can_collide() -> None:
    """The rule itself: a per-resource-group name, a too-long name and an unknown part all fail."""
    assert role_name_problems("Sender (${resourceGroup().name})") == ["the name does not include the subscription id"]
    assert role_name_problems("Sender ${subscription().subscriptionId} ${resourceGroup().name}")  # 36 + 90 + 8 > 128
    assert role_name_problems("Sender ${subscription().subscriptionId} ${take(resourceGroup().name, 20)}") == [
        "the name does not identify the resource group in full (its name or a hash of its id)"
    ]
    assert not role_name_problems("S ${uniqueString(resourceGroup().id)} ${subscription().subscriptionId}")


# ---------------------------------------------------------------------------------------------
# Custom email domain: created, verified, then linked
# ---------------------------------------------------------------------------------------------

COMMUNICATION = MAIN.parent / "modules" / "communication.bicep"


def evaluate(expression: Any, env: dict[str, Any]) -> Any:
    """Value of a pycep expression with parameters/variables from `env`; a resource's `x.id` stays "x.id"."""
    if isinstance(expression, list):
        return [evaluate(item, env) for item in expression]
    if isinstance(expression, str):
        return env.get(expression, expression)
    if not isinstance(expression, dict) or len(expression) != 1:
        return expression
    kind, spec = next(iter(expression.items()))
    operands = spec.get("operands", {})
    match kind, spec.get("type"):
        case "operator", "not":
            return not evaluate(operands["bool_value"], env)
        case "operator", "and":
            return evaluate(operands["operand_1"], env) and evaluate(operands["operand_2"], env)
        case "operator", "or":
            return evaluate(operands["operand_1"], env) or evaluate(operands["operand_2"], env)
        case "operator", "conditional":
            branch = "true_value" if evaluate(operands["condition"], env) else "false_value"
            return evaluate(operands[branch], env)
        case "operator", "property_accessor":
            return f"{operands['operand_1']}.{operands['operand_2']}"
        case "function", "empty":
            return not evaluate(spec["parameters"]["item_to_test"], env)
    raise AssertionError(f"evaluate() does not know {kind} {spec.get('type')}")


def _communication(params: dict[str, Any]) -> tuple[list[str], list[str], bool]:
    """(linked domains, sender usernames created, custom domain created) for these module parameters."""
    parsed = parse(COMMUNICATION)
    env = dict(params)
    for name, variable in parsed["variables"].items():
        env[name] = evaluate(variable["value"], env)
    resources = parsed["resources"]
    acs = body(resources["acs"]["config"])
    senders = resources["senderUsernames"]["config"]
    custom = resources["customEmailDomain"]["config"]
    return (
        evaluate(acs["properties"]["linkedDomains"], env),
        evaluate(senders["loop_type"]["detail"]["array_name"], env),
        bool(evaluate(custom["condition"], env)),
    )


@pytest.mark.parametrize("domain", ["", "notify.example.com"])
@pytest.mark.parametrize("verified", [False, True])
@pytest.mark.parametrize("usernames", [[], ["notifications"]])
def test_custom_email_domain_is_linked_only_once_verified(domain: str, verified: bool, usernames: list[str]) -> None:
    """A custom domain is created on its own; linked (and given sender usernames) only when declared verified.

    https://learn.microsoft.com/azure/communication-services/quickstarts/email/connect-email-communication-resource:
    "This domain must be fully verified before attempting to link it to the Communication Service
    resource." https://learn.microsoft.com/azure/communication-services/quickstarts/email/add-multiple-senders:
    no sender usernames on a custom domain with default sending limits (so never before verification).
    """
    linked, created_usernames, custom_created = _communication(
        {"customDomain": domain, "customDomainVerified": verified, "customDomainSenderUsernames": usernames}
    )
    assert custom_created == bool(domain)
    assert "managedDomain.id" in linked
    assert ("customEmailDomain.id" in linked) == (bool(domain) and verified)
    assert created_usernames == (usernames if domain and verified else [])


def test_first_deployment_never_links_the_custom_domain() -> None:
    """main.bicep defaults to not verified, passes the flag through, and every parameter file can set it."""
    param = parameters(MAIN)["customEmailDomainVerified"]
    assert param["default"] is False
    (communication,) = [m for m in _modules().values() if _module_target(m) == COMMUNICATION.resolve()]
    assert body(communication["config"])["params"]["customDomainVerified"] == "customEmailDomainVerified"
    azd = json.loads((MAIN.parent / "main.parameters.json").read_text())["parameters"]
    assert azd["customEmailDomainVerified"]["value"].endswith("=false}")


# ---------------------------------------------------------------------------------------------
# Flex Consumption: app settings and site properties it deprecates
# ---------------------------------------------------------------------------------------------

# https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations
# (linked from https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan, "Deprecated
# properties and settings"): on Flex Consumption these are replaced by functionAppConfig (runtime,
# scaleAndConcurrency, deployment), set by the platform, or not valid. Setting them is at best ignored
# and at worst conflicts with functionAppConfig.
FLEX_DEPRECATED_SETTINGS = frozenset(
    {
        "ENABLE_ORYX_BUILD",
        "FUNCTIONS_EXTENSION_VERSION",
        "FUNCTIONS_MAX_HTTP_CONCURRENCY",
        "FUNCTIONS_WORKER_PROCESS_COUNT",
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_WORKER_RUNTIME_VERSION",
        "SCALE_CONTROLLER_LOGGING_ENABLED",
        "SCM_DO_BUILD_DURING_DEPLOYMENT",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "WEBSITE_CONTENTOVERVNET",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_DNS_SERVER",
        "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
        "WEBSITE_NODE_DEFAULT_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_SKIP_CONTENTSHARE_VALIDATION",
        "WEBSITE_VNET_ROUTE_ALL",
        "WEBSITE_TIME_ZONE",
        "TZ",
    }
)
# Site properties (under properties or properties.siteConfig) the same section deprecates.
FLEX_DEPRECATED_SITE_PROPERTIES = frozenset(
    {
        "alwaysOn",
        "containerSize",
        "functionAppScaleLimit",
        "functionsRuntimeScaleMonitoringEnabled",
        "isXenon",
        "javaVersion",
        "linuxFxVersion",
        "minimumElasticInstanceCount",
        "netFrameworkVersion",
        "powerShellVersion",
        "preWarmedInstanceCount",
        "use32BitWorkerProcess",
        "windowsFxVersion",
    }
)


def flex_problems(settings: Iterable[str], site_properties: dict[str, Any]) -> list[str]:
    """Deprecated app settings (names are case-insensitive) and site properties a Flex app sets."""
    problems = [f"app setting {name}" for name in sorted(settings) if name.upper() in FLEX_DEPRECATED_SETTINGS]
    site_config = site_properties.get("siteConfig", {})
    deprecated = {name.lower() for name in FLEX_DEPRECATED_SITE_PROPERTIES}
    for where, properties in (("properties", site_properties), ("properties.siteConfig", site_config)):
        problems += [f"{where}.{key}" for key in sorted(properties) if key_name(key).lower() in deprecated]
    return problems


def _flex_site() -> Resource:
    (site,) = [r for r in declared_resources() if r.type == "Microsoft.Web/sites"]
    assert "functionAppConfig" in site.properties, "the site is a Flex Consumption app"
    return site


def test_flex_app_sets_no_deprecated_setting_or_property() -> None:
    """No Flex-deprecated app setting (tests/infra/bicep.app_settings) or site property in the Bicep."""
    assert flex_problems(app_settings(), _flex_site().properties) == []


@pytest.mark.parametrize("name", sorted(FLEX_DEPRECATED_SETTINGS))
def test_each_deprecated_setting_is_caught(name: str) -> None:
    """Adding any deprecated setting, in any case, fails the rule."""
    assert flex_problems({*app_settings(), name.lower()}, _flex_site().properties) == [f"app setting {name.lower()}"]


def test_deprecated_site_properties_are_caught() -> None:
    """linuxFxVersion under siteConfig or alwaysOn on the site fails the rule."""
    properties = dict(_flex_site().properties)
    properties["siteConfig"] = {**properties["siteConfig"], "linuxFxVersion": "Python|3.11"}
    properties["alwaysOn"] = True
    assert flex_problems(app_settings(), properties) == [
        "properties.alwaysOn",
        "properties.siteConfig.linuxFxVersion",
    ]
