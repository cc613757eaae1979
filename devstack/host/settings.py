"""App settings: `local.settings.json`, the environment, `%Name%` tokens, connections, host id.

Why: the host reads app settings through .NET configuration (case-insensitive keys, `__` = `:`) and
Core Tools fills them from `local.settings.json` *without* overriding environment variables that are
already set (non-empty). Connection names resolve `AzureWebJobs<Name>` before `<Name>`. Getting these
rules right is what lets the same app and settings run here and under `func start`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEVELOPMENT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
MAX_HOST_ID_LENGTH = 32
_TOKEN = re.compile(r"%([^%]+)%")


class SettingError(LookupError):
    """A setting the app refers to is missing or unusable."""


def apply_local_settings(
    app_dir: Path, environ: MutableMapping[str, str], defaults: Mapping[str, str] | None = None
) -> None:
    """Copy `Values` (and `ConnectionStrings`) into the environment the way Core Tools does.

    Core Tools (`StartHostAction.UpdateEnvironmentVariables`) skips a setting whose environment
    variable is already set and non-empty, and forces AZURE_FUNCTIONS_ENVIRONMENT=Development into
    the settings (an existing environment variable still wins). `defaults` are settings Core Tools
    adds itself (such as WEBSITE_HOSTNAME); they follow the same rule.
    """
    values: dict[str, str | None] = {**(defaults or {}), **_read_local_settings(app_dir / "local.settings.json")}
    if "AZURE_FUNCTIONS_ENVIRONMENT" in values:
        log.warning(
            "AZURE_FUNCTIONS_ENVIRONMENT already exists with value '%s', overriding to 'Development'.",
            values["AZURE_FUNCTIONS_ENVIRONMENT"],
        )
    values["AZURE_FUNCTIONS_ENVIRONMENT"] = "Development"
    for name, value in values.items():
        if not name:
            log.warning("Skipping local setting with empty key.")
        elif environ.get(name):
            log.warning(
                "Skipping '%s' from local settings as it's already defined in current environment variables.", name
            )
        elif value is None:
            log.warning("Skipping '%s' because value is null", name)
        else:
            environ[name] = value


def _read_local_settings(path: Path) -> dict[str, str | None]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    if data.get("IsEncrypted"):
        raise SettingError(f"{path} is encrypted; the local runner reads only unencrypted settings")
    values = {str(k): _as_text(v) for k, v in (data.get("Values") or {}).items()}
    for name, entry in (data.get("ConnectionStrings") or {}).items():
        text = entry.get("ConnectionString") if isinstance(entry, dict) else entry
        values[f"ConnectionStrings:{name}"] = _as_text(text)
    return values


def local_http_port(app_dir: Path, default: int = 7071) -> int:
    """`Host.LocalHttpPort` from local.settings.json, which Core Tools uses when --port is absent."""
    path = app_dir / "local.settings.json"
    if not path.exists():
        return default
    host = json.loads(path.read_text(encoding="utf-8-sig")).get("Host") or {}
    return int(host.get("LocalHttpPort") or default)


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"  # how .NET renders a JSON boolean as a string
    return json.dumps(value)


def _normalize(key: str) -> str:
    return key.replace("__", ":").lower()


@dataclass(frozen=True)
class Settings:
    """A case-insensitive, `__`-equals-`:` view of the app settings (the process environment)."""

    values: Mapping[str, str]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        return cls({_normalize(key): value for key, value in environ.items()})

    def get(self, name: str) -> str | None:
        return self.values.get(_normalize(name))

    def has_section(self, name: str) -> bool:
        prefix = _normalize(name) + ":"
        return any(key.startswith(prefix) for key in self.values)

    def resolve(self, text: str) -> str:
        """Replace `%Name%` tokens with app settings, failing like the host's name resolver."""

        def replace(match: re.Match[str]) -> str:
            value = self.get(match.group(1))
            if value is None:
                raise SettingError(f"'%{match.group(1)}%' does not resolve to a value.")
            return value

        return _TOKEN.sub(replace, text)

    def is_disabled(self, function_name: str) -> bool:
        value = (self.get(f"AzureWebJobs.{function_name}.Disabled") or "").strip().lower()
        return value in ("true", "1")

    def connection_string(self, connection: str | None) -> str:
        """§6 lookup: `AzureWebJobs<X>` then `<X>`; empty means AzureWebJobsStorage."""
        candidates = [f"AzureWebJobs{connection}", connection] if connection else ["AzureWebJobsStorage"]
        for name in candidates:
            value = self.get(f"ConnectionStrings:{name}") or self.get(name)
            if value:
                return expand_development_storage(value)
            if self.has_section(name):
                raise SettingError(f"Identity-based connection '{name}' is not supported by the local runner.")
        shown = connection or "AzureWebJobsStorage"
        raise SettingError(
            f"Storage account connection string '{shown}' does not exist. Make sure that it is a defined App Setting."
        )


def expand_development_storage(value: str) -> str:
    """`UseDevelopmentStorage=true` means the emulator's well-known account and default ports."""
    compact = value.replace(" ", "").rstrip(";").lower()
    return DEVELOPMENT_STORAGE if compact == "usedevelopmentstorage=true" else value


def default_host_id(script_root: Path, machine_name: str | None = None) -> str:
    """`ScriptHostIdProvider.GetDefaultHostId` for a local run: machine name + stable path hash."""
    machine = "".join(ch for ch in (machine_name or socket.gethostname().split(".")[0]) if ch.isalnum())
    return normalize_host_id(f"{machine}-{abs(stable_hash(str(script_root)))}")


def normalize_host_id(host_id: str) -> str:
    return host_id[:MAX_HOST_ID_LENGTH].lower().rstrip("-")


def stable_hash(value: str) -> int:
    """`Utility.GetStableHash`: 23, then hash*31 + UTF-16 code unit, in wrapping 32-bit arithmetic."""
    result = 23
    for unit in _utf16_units(value):
        result = (result * 31 + unit) & 0xFFFFFFFF
    return result - (1 << 32) if result >= 1 << 31 else result


def _utf16_units(value: str) -> list[int]:
    raw = value.encode("utf-16-le")
    return [int.from_bytes(raw[i : i + 2], "little") for i in range(0, len(raw), 2)]
