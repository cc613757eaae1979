"""The app settings the Bicep sets are exactly what the code reads, minus local-only, plus platform.

shared/settings.py declares every setting the application reads (SETTINGS). In Azure the function
app must get each of them except the local-only secrets, and nothing else except the platform
settings allowlisted below with their reasons. Adding a setting on one side only fails here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest

from shared.settings import SETTING_NAMES, SETTINGS, SettingSpec
from tests.infra.bicep import app_settings, app_settings_resources, conditional_app_settings, declared_resources
from tests.infra.test_deployment_rules import FLEX_DEPRECATED_SETTINGS

# Declared in SETTINGS, never set in Azure.
LOCAL_ONLY: Mapping[str, str] = {
    "FEED_TOPIC_KEY": "Key auth for the local Event Grid topic. A deployed topic has local auth disabled.",
    "AzureWebJobsStorage": (
        "Connection string for Azurite. In Azure, storage is identity-based "
        "(AzureWebJobsStorage__accountName) and the account rejects shared keys anyway."
    ),
    "ACS_CONNECTION_STRING": (
        "Key-based ACS access for the local emulator. In Azure the app uses ACS_ENDPOINT with its managed "
        "identity, and ACS keys are disabled (disableLocalAuth)."
    ),
}

# Declared in SETTINGS, set in Azure only for some deployments.
OPTIONAL_IN_AZURE: Mapping[str, str] = {
    "AZURE_CLIENT_ID": (
        "Client id of a user-assigned managed identity. The Bicep gives the app a system-assigned identity, "
        "for which it must stay unset (ManagedIdentityCredential would ask for a user-assigned one)."
    ),
}

# Set in Azure only when a deployment parameter turns their feature on: name -> (the parameter of
# appsettings.bicep that must be non-empty, why). The settings are absent, not empty, otherwise.
SET_WHEN: Mapping[str, tuple[str, str]] = {
    "FEED_TOPIC_ENDPOINT": (
        "feedTopicEndpoint",
        "The status feed is opt-in (feedEnabled in main.bicep): off, there is no topic and the app publishes nothing.",
    ),
    "FEED_SOURCE": ("feedTopicEndpoint", "The feed's CloudEvents source means nothing without the feed."),
}

# Set in Azure for the platform (host, worker, exporter), not read by application code.
# Only these families may appear: FUNCTIONS_*, AzureWebJobsStorage__* host-only forms,
# APPLICATIONINSIGHTS_*, WEBSITE_*.
PLATFORM_SETTINGS: Mapping[str, str] = {
    "AzureWebJobsStorage__credential": (
        "Host-only part of the identity-based host storage connection: makes the host and the bindings "
        "use the managed identity. The app itself only reads AzureWebJobsStorage__accountName."
    ),
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": (
        "Authorization=AAD: the Functions host and the OpenTelemetry exporter ingest with Microsoft "
        "Entra ID, because the Application Insights component has local (key) auth disabled."
    ),
}
PLATFORM_PREFIXES = ("FUNCTIONS_", "AzureWebJobsStorage__", "APPLICATIONINSIGHTS_", "WEBSITE_")

# Flex Consumption rejects or ignores these: the runtime is declared in functionAppConfig. The list and
# its documentation page are in test_deployment_rules.py.
FLEX_FORBIDDEN = FLEX_DEPRECATED_SETTINGS


def parity_problems(
    bicep_names: Iterable[str],
    setting_names: Iterable[str],
    local_only: Iterable[str] = LOCAL_ONLY,
    platform: Iterable[str] = PLATFORM_SETTINGS,
    optional: Iterable[str] = OPTIONAL_IN_AZURE,
) -> list[str]:
    """Every difference between what the Bicep sets and what it must set; empty when in parity."""
    bicep, declared, local, allowed = set(bicep_names), set(setting_names), set(local_only), set(platform)
    expected = (declared - local - set(optional)) | allowed
    bicep -= set(optional) & declared
    problems = [f"local-only setting {name} is not declared in SETTINGS" for name in sorted(local - declared)]
    for name in sorted(expected - bicep):
        origin = "allowlisted platform setting" if name in allowed else "declared in shared/settings.py"
        problems.append(f"{name}: {origin} but not set by the Bicep")
    for name in sorted(bicep - expected):
        if name in local:
            problems.append(f"{name}: local-only, must not be set in Azure")
        else:
            problems.append(f"{name}: set by the Bicep but neither in SETTINGS nor allowlisted as a platform setting")
    return problems


BICEP_SETTINGS = app_settings()


def test_app_settings_have_one_source() -> None:
    """Exactly one sites/config 'appsettings' resource, and no inline siteConfig.appSettings anywhere."""
    assert len(app_settings_resources()) == 1
    for resource in declared_resources():
        site_config = resource.properties.get("siteConfig", {})
        assert "appSettings" not in site_config, f"{resource.file.name}: {resource.symbol} sets siteConfig.appSettings"


def test_bicep_sets_exactly_the_settings_the_code_reads() -> None:
    """Bicep app settings == SETTING_NAMES - local-only + allowlisted platform settings."""
    assert parity_problems(BICEP_SETTINGS, SETTING_NAMES) == []


def test_setting_added_to_bicep_only_is_caught() -> None:
    """A setting set by the Bicep but not declared in SETTINGS fails parity."""
    problems = parity_problems({*BICEP_SETTINGS, "NEW_FEATURE_FLAG"}, SETTING_NAMES)
    assert problems == [
        "NEW_FEATURE_FLAG: set by the Bicep but neither in SETTINGS nor allowlisted as a platform setting"
    ]


def test_setting_added_to_settings_only_is_caught() -> None:
    """A SettingSpec added to shared/settings.py without Bicep fails parity."""
    specs = (*SETTINGS, SettingSpec("NEW_LIMIT", False, "a new knob"))
    problems = parity_problems(BICEP_SETTINGS, {spec.name for spec in specs})
    assert problems == ["NEW_LIMIT: declared in shared/settings.py but not set by the Bicep"]


def test_setting_removed_from_bicep_is_caught() -> None:
    """Dropping a declared setting from the Bicep fails parity."""
    problems = parity_problems(set(BICEP_SETTINGS) - {"SEND_QUEUE"}, SETTING_NAMES)
    assert problems == ["SEND_QUEUE: declared in shared/settings.py but not set by the Bicep"]


@pytest.mark.parametrize("name", sorted(LOCAL_ONLY))
def test_local_only_setting_in_bicep_is_caught(name: str) -> None:
    """Setting a local-only secret (a connection string) in Azure fails parity."""
    problems = parity_problems({*BICEP_SETTINGS, name}, SETTING_NAMES)
    assert problems == [f"{name}: local-only, must not be set in Azure"]


def test_platform_setting_dropped_from_bicep_is_caught() -> None:
    """An allowlisted platform setting that the Bicep no longer sets fails parity (stale allowlist)."""
    problems = parity_problems(set(BICEP_SETTINGS) - {"AzureWebJobsStorage__credential"}, SETTING_NAMES)
    assert problems == ["AzureWebJobsStorage__credential: allowlisted platform setting but not set by the Bicep"]


def test_allowlists_are_justified_and_well_formed() -> None:
    """Each allowlisted name has a reason; platform names are platform families; local-only names are secrets."""
    for name, reason in {**LOCAL_ONLY, **PLATFORM_SETTINGS, **OPTIONAL_IN_AZURE}.items():
        assert len(reason) > 40, f"{name} needs a real reason"
    assert all(name.startswith(PLATFORM_PREFIXES) for name in PLATFORM_SETTINGS)
    assert not set(PLATFORM_SETTINGS) & SETTING_NAMES
    secret = {spec.name for spec in SETTINGS if spec.secret}
    assert set(LOCAL_ONLY) <= secret


def test_feed_settings_are_set_exactly_when_the_feed_is_on() -> None:
    """FEED_TOPIC_ENDPOINT and FEED_SOURCE are written only when the topic's endpoint is given; all else always."""
    conditional = {
        name: (condition["function"]["type"], condition["function"]["parameters"]["item_to_test"], branch)
        for name, (condition, branch) in conditional_app_settings().items()
    }
    assert conditional == {name: ("empty", parameter, "false_value") for name, (parameter, _) in SET_WHEN.items()}
    assert BICEP_SETTINGS["FEED_TOPIC_ENDPOINT"] == "feedTopicEndpoint"
    assert set(SET_WHEN) <= SETTING_NAMES
    assert not set(SET_WHEN) & (set(LOCAL_ONLY) | set(OPTIONAL_IN_AZURE))
    for name, (_, reason) in SET_WHEN.items():
        assert len(reason) > 40, f"{name} needs a real reason"


def test_feed_topic_key_is_local_only() -> None:
    """The deployed topic has local auth disabled: the app publishes with its identity, never a key."""
    assert "FEED_TOPIC_KEY" in LOCAL_ONLY
    assert "FEED_TOPIC_KEY" not in BICEP_SETTINGS


def test_flex_consumption_forbidden_settings_are_not_set() -> None:
    """Settings that Flex Consumption rejects or ignores are absent (the runtime is in functionAppConfig)."""
    assert not FLEX_FORBIDDEN & set(BICEP_SETTINGS)


def test_secrets_set_in_azure_are_key_vault_references() -> None:
    """A secret setting that Azure gets is a Key Vault reference, never a value."""
    for spec in SETTINGS:
        if spec.secret and spec.name in BICEP_SETTINGS:
            value = BICEP_SETTINGS[spec.name]
            assert isinstance(value, str), spec.name
            assert value.startswith("@Microsoft.KeyVault("), f"{spec.name} must be a Key Vault reference"


def test_required_settings_have_a_value() -> None:
    """Settings the app requires are never set to an empty literal."""
    for spec in SETTINGS:
        if spec.required:
            assert BICEP_SETTINGS.get(spec.name) not in (None, ""), spec.name
