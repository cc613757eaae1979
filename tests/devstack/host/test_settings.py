"""App settings: local.settings.json precedence, connection lookup, tokens, host id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.host.settings import (
    DEVELOPMENT_STORAGE,
    SettingError,
    Settings,
    apply_local_settings,
    default_host_id,
    stable_hash,
)


def write_local_settings(
    folder: Path, values: dict[str, object], connection_strings: dict[str, str] | None = None
) -> Path:
    document = {"IsEncrypted": False, "Values": values, "ConnectionStrings": connection_strings or {}}
    (folder / "local.settings.json").write_text(json.dumps(document))
    return folder


def test_existing_environment_variables_win_over_local_settings(tmp_path: Path) -> None:
    """Like Core Tools, a non-empty environment variable is kept and the local value skipped."""
    environ = {"QUEUE": "from-env"}
    apply_local_settings(write_local_settings(tmp_path, {"QUEUE": "from-file"}), environ)
    assert environ["QUEUE"] == "from-env"


def test_empty_environment_variable_is_filled_from_local_settings(tmp_path: Path) -> None:
    """An empty environment variable counts as unset (Core Tools checks IsNullOrEmpty)."""
    environ = {"QUEUE": ""}
    apply_local_settings(write_local_settings(tmp_path, {"QUEUE": "from-file"}), environ)
    assert environ["QUEUE"] == "from-file"


def test_functions_environment_is_forced_to_development_unless_set(tmp_path: Path) -> None:
    """The local file cannot change AZURE_FUNCTIONS_ENVIRONMENT, but the environment can."""
    folder = write_local_settings(tmp_path, {"AZURE_FUNCTIONS_ENVIRONMENT": "Production"})
    from_file: dict[str, str] = {}
    from_env = {"AZURE_FUNCTIONS_ENVIRONMENT": "Staging"}
    apply_local_settings(folder, from_file)
    apply_local_settings(folder, from_env)
    assert (from_file["AZURE_FUNCTIONS_ENVIRONMENT"], from_env["AZURE_FUNCTIONS_ENVIRONMENT"]) == (
        "Development",
        "Staging",
    )


def test_connection_strings_section_becomes_settings(tmp_path: Path) -> None:
    """`ConnectionStrings` entries are exposed as `ConnectionStrings:<name>`."""
    environ: dict[str, str] = {}
    apply_local_settings(write_local_settings(tmp_path, {}, {"Orders": "UseDevelopmentStorage=true"}), environ)
    assert Settings.from_environ(environ).connection_string("Orders") == DEVELOPMENT_STORAGE


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        ("Storage", "prefixed-storage"),
        ("", "prefixed-storage"),
        (None, "prefixed-storage"),
        ("Orders", "prefixed-orders"),
        ("Plain", "plain"),
    ],
)
def test_connection_lookup_prefers_azurewebjobs_prefix(connection: str | None, expected: str) -> None:
    """`X` resolves `AzureWebJobsX` before `X`; empty means AzureWebJobsStorage."""
    settings = Settings.from_environ(
        {
            "AzureWebJobsStorage": "prefixed-storage",
            "AzureWebJobsOrders": "prefixed-orders",
            "Orders": "orders",
            "Plain": "plain",
        }
    )
    assert settings.connection_string(connection) == expected


def test_missing_connection_is_reported_with_the_hosts_message() -> None:
    """An undefined connection fails with the host's wording."""
    with pytest.raises(SettingError, match="Storage account connection string 'Missing' does not exist"):
        Settings.from_environ({}).connection_string("Missing")


def test_settings_are_case_insensitive_and_double_underscore_means_colon() -> None:
    """Keys match like .NET configuration: any case, `__` equals `:`."""
    settings = Settings.from_environ({"azurefunctionswebhost__HOSTID": "my-host"})
    assert settings.get("AzureFunctionsWebHost:hostid") == "my-host"


def test_percent_tokens_resolve_from_settings() -> None:
    """`%Name%` in a binding value is replaced by the setting, and a missing one fails."""
    settings = Settings.from_environ({"ORDERS_QUEUE": "orders"})
    assert settings.resolve("%ORDERS_QUEUE%-in") == "orders-in"
    with pytest.raises(SettingError):
        settings.resolve("%NOPE%")


def test_disabled_setting_disables_a_function() -> None:
    """`AzureWebJobs.<name>.Disabled` set to true or 1 disables that function only."""
    settings = Settings.from_environ({"AzureWebJobs.send.Disabled": "true", "AzureWebJobs.other.Disabled": "1"})
    assert (settings.is_disabled("send"), settings.is_disabled("other"), settings.is_disabled("third")) == (
        True,
        True,
        False,
    )


def test_stable_hash_matches_the_hosts_algorithm() -> None:
    """`GetStableHash("abc")` is ((23*31+97)*31+98)*31+99."""
    assert stable_hash("abc") == ((23 * 31 + 97) * 31 + 98) * 31 + 99


def test_default_host_id_is_machine_name_and_path_hash() -> None:
    """The local host id is `<alphanumeric machine name>-<abs(hash)>`, lower-cased, at most 32 chars."""
    host_id = default_host_id(Path("/home/site/wwwroot"), machine_name="Dev-Box.01")
    assert host_id == f"devbox01-{abs(stable_hash('/home/site/wwwroot'))}"[:32]
