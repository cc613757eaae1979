"""Validate ARM resource bodies against the REST models Microsoft publishes in the Python management SDKs.

Runs in .venv-infra (requirements-infra.txt pins the azure-mgmt-* packages), as
`python -m tests.infra.arm_models < requests.json`: stdin is a JSON list of
{"id", "type", "apiVersion", "name", "body", "symbols"}, stdout a JSON object id -> list of problems.
tests/infra/test_resource_models.py drives it from the app's venv, where pycep parses the Bicep.

The models are the msrest-style ones (`_attribute_map`: wire names, flattening and types;
`_validation`: read-only and required; `_subtype_map`: discriminated subtypes). Each module carries
one API version: for multi-API packages the `vYYYY_MM_DD` subpackage, for single-API packages the
`api-version` default of the resource's operations module. A resource whose API version no installed
package publishes is a problem, unless STAND_INS names the nearest published model and says why.

What pycep gives for a value: literals as Python values; a parameter, variable or loop variable as a
plain string equal to its name (indistinguishable from a string literal, so names in `symbols` are
treated as references); an interpolated string as a string with `${`; other expressions as
{"operator"|"function": {"type": ...}}. Expressions are not evaluated, except that both branches of
a conditional are validated.
"""

from __future__ import annotations

import enum
import functools
import importlib
import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

# ARM type (lower case) -> (package, model of the PUT body, operations module of that resource).
MODELS: dict[str, tuple[str, str, str]] = {
    "microsoft.web/serverfarms": ("azure.mgmt.web", "AppServicePlan", "app_service_plans"),
    "microsoft.web/sites": ("azure.mgmt.web", "Site", "web_apps"),
    "microsoft.web/sites/config#appsettings": ("azure.mgmt.web", "StringDictionary", "web_apps"),
    "microsoft.web/sites/basicpublishingcredentialspolicies": (
        "azure.mgmt.web",
        "CsmPublishingCredentialsPoliciesEntity",
        "web_apps",
    ),
    "microsoft.storage/storageaccounts": ("azure.mgmt.storage", "StorageAccountCreateParameters", "storage_accounts"),
    "microsoft.storage/storageaccounts/blobservices": ("azure.mgmt.storage", "BlobServiceProperties", "blob_services"),
    "microsoft.storage/storageaccounts/blobservices/containers": (
        "azure.mgmt.storage",
        "BlobContainer",
        "blob_containers",
    ),
    "microsoft.storage/storageaccounts/managementpolicies": (
        "azure.mgmt.storage",
        "ManagementPolicy",
        "management_policies",
    ),
    "microsoft.storage/storageaccounts/queueservices": (
        "azure.mgmt.storage",
        "QueueServiceProperties",
        "queue_services",
    ),
    "microsoft.storage/storageaccounts/queueservices/queues": ("azure.mgmt.storage", "StorageQueue", "queue"),
    "microsoft.storage/storageaccounts/tableservices": (
        "azure.mgmt.storage",
        "TableServiceProperties",
        "table_services",
    ),
    "microsoft.storage/storageaccounts/tableservices/tables": ("azure.mgmt.storage", "Table", "table"),
    "microsoft.keyvault/vaults": ("azure.mgmt.keyvault", "VaultCreateOrUpdateParameters", "vaults"),
    "microsoft.keyvault/vaults/secrets": ("azure.mgmt.keyvault", "SecretCreateOrUpdateParameters", "secrets"),
    "microsoft.communication/communicationservices": (
        "azure.mgmt.communication",
        "CommunicationServiceResource",
        "communication_services",
    ),
    "microsoft.communication/emailservices": ("azure.mgmt.communication", "EmailServiceResource", "email_services"),
    "microsoft.communication/emailservices/domains": ("azure.mgmt.communication", "DomainResource", "domains"),
    "microsoft.communication/emailservices/domains/senderusernames": (
        "azure.mgmt.communication",
        "SenderUsernameResource",
        "sender_usernames",
    ),
    "microsoft.insights/diagnosticsettings": (
        "azure.mgmt.monitor",
        "DiagnosticSettingsResource",
        "diagnostic_settings",
    ),
    "microsoft.insights/actiongroups": ("azure.mgmt.monitor", "ActionGroupResource", "action_groups"),
    "microsoft.insights/scheduledqueryrules": (
        "azure.mgmt.monitor",
        "ScheduledQueryRuleResource",
        "scheduled_query_rules",
    ),
    "microsoft.insights/metricalerts": ("azure.mgmt.monitor", "MetricAlertResource", "metric_alerts"),
    "microsoft.insights/components": ("azure.mgmt.applicationinsights", "ApplicationInsightsComponent", "components"),
    "microsoft.insights/workbooks": ("azure.mgmt.applicationinsights", "Workbook", "workbooks"),
    "microsoft.authorization/roleassignments": (
        "azure.mgmt.authorization",
        "RoleAssignmentCreateParameters",
        "role_assignments",
    ),
    "microsoft.authorization/roledefinitions": ("azure.mgmt.authorization", "RoleDefinition", "role_definitions"),
    "microsoft.operationalinsights/workspaces": ("azure.mgmt.loganalytics", "Workspace", "workspaces"),
    "microsoft.eventgrid/systemtopics": ("azure.mgmt.eventgrid", "SystemTopic", "system_topics"),
    "microsoft.eventgrid/systemtopics/eventsubscriptions": (
        "azure.mgmt.eventgrid",
        "EventSubscription",
        "system_topic_event_subscriptions",
    ),
    "microsoft.eventgrid/topics": ("azure.mgmt.eventgrid", "Topic", "topics"),
    "microsoft.eventgrid/topics/eventsubscriptions": (
        "azure.mgmt.eventgrid",
        "EventSubscription",
        "topic_event_subscriptions",
    ),
    "microsoft.consumption/budgets": ("azure.mgmt.consumption", "Budget", "budgets"),
}

# (type, API version the Bicep uses) -> (API version of the model that stands in, why). Only for API
# versions that exist in ARM but that no installable msrest-style SDK publishes. The stand-in is the
# nearest older version: it rejects a property only the newer version has (then pick another version
# or release) and would miss one the newer version removed, which is why each entry says why the
# properties used here are the same in both. test_resource_models.py fails on a stale entry.
STAND_INS: dict[tuple[str, str], tuple[str, str]] = {
    ("microsoft.insights/scheduledqueryrules", "2023-12-01"): (
        "2022-08-01-preview",
        "azure-mgmt-monitor 6.x publishes scheduledQueryRules up to 2022-08-01-preview and 7.x drops them; "
        "2023-12-01 is GA in the ARM reference (learn.microsoft.com/azure/templates/microsoft.insights/"
        "2023-12-01/scheduledqueryrules) with the same log-alert properties",
    ),
    ("microsoft.consumption/budgets", "2023-05-01"): (
        "2021-10-01",
        "azure-mgmt-consumption 10.x (the last msrest-style release) publishes budgets at 2021-10-01; "
        "2023-05-01 (learn.microsoft.com/azure/templates/microsoft.consumption/2023-05-01/budgets) keeps "
        "the properties used here",
    ),
}

# Keys of a Bicep resource body that are Bicep's, not the REST body's. `name` is read-only in most
# models (it comes from the URL) but always given in Bicep.
BICEP_KEYS = frozenset({"name", "parent", "scope", "dependsOn"})


class UnknownApiVersion(LookupError):
    pass


def _api_module(api_version: str) -> str:
    return "v" + api_version.replace("-", "_")


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


# `kwargs.pop("api_version", _params.pop("api-version", "2025-09-01"))` or, in older releases,
# `kwargs.pop('api_version', "2022-06-15")`: the operations' default API version.
_API_VERSION_DEFAULT = re.compile(
    r"""kwargs\.pop\(\s*['"]api_version['"],[^)]*?['"](\d{4}-\d{2}-\d{2}(?:-preview)?)['"]"""
)


def _single_api_version(package: str, operations: str) -> str | None:
    if not _module_exists(f"{package}.operations._{operations}_operations"):
        return None
    spec = importlib.util.find_spec(f"{package}.operations._{operations}_operations")
    if spec is None or spec.origin is None:
        return None
    with open(spec.origin, encoding="utf-8") as source:
        found = set(_API_VERSION_DEFAULT.findall(source.read()))
    return found.pop() if len(found) == 1 else None


def models_module(resource_type: str, api_version: str) -> Any:
    """The models module of `resource_type` at exactly `api_version`, or UnknownApiVersion."""
    package, _, operations = MODELS[resource_type]
    versioned = f"{package}.{_api_module(api_version)}"
    if _module_exists(f"{versioned}.operations._{operations}_operations"):
        return importlib.import_module(f"{versioned}.models")
    if _single_api_version(package, operations) == api_version:
        return importlib.import_module(f"{package}.models")
    raise UnknownApiVersion(f"{resource_type}@{api_version}: no installed SDK publishes this API version")


def model_for(resource_type: str, name: Any, api_version: str) -> type:
    key = resource_type.lower()
    if key == "microsoft.web/sites/config":
        key = f"{key}#{name}"
    if key not in MODELS:
        raise KeyError(f"{resource_type}: no model known for this resource type; add it to MODELS")
    stand_in = STAND_INS.get((key, api_version))
    module = models_module(key, stand_in[0] if stand_in else api_version)
    model: type = getattr(module, MODELS[key][1])
    return model


# ---------------------------------------------------------------------------------------------
# The schema of one msrest model: wire key -> Field, flattened keys ("properties.x") as nested dicts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    attr: str
    type: str
    readonly: bool
    required: bool
    enum: frozenset[str] | None


_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")
_VARTYPE = re.compile(r":vartype (\w+): ([^\n]+)")
_CLASS_REF = re.compile(r"~[\w.]+\.(\w+)")


def _enums(model: type, module: Any) -> dict[str, frozenset[str]]:
    """attr -> allowed values, from the `:vartype attr: str or ~...models.SomeEnum` lines of the docstring."""
    result: dict[str, frozenset[str]] = {}
    for klass in reversed(model.__mro__):
        for attr, text in _VARTYPE.findall(klass.__doc__ or ""):
            for name in _CLASS_REF.findall(text):
                candidate = getattr(module, name, None)
                if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
                    result[attr] = frozenset(str(member.value) for member in candidate)
    return result


@functools.cache
def schema(model: type, module: Any) -> dict[str, Any]:
    attribute_map: dict[str, dict[str, str]] = getattr(model, "_attribute_map", {})
    validation: dict[str, dict[str, Any]] = getattr(model, "_validation", {})
    enums = _enums(model, module)
    tree: dict[str, Any] = {}
    for attr, spec in attribute_map.items():
        parts = [part.replace("\\.", ".") for part in _UNESCAPED_DOT.split(spec["key"])]
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        rules = validation.get(attr, {})
        node[parts[-1]] = Field(
            attr=attr,
            type=spec["type"],
            readonly=bool(rules.get("readonly")),
            required=bool(rules.get("required")),
            enum=enums.get(attr),
        )
    return tree


# ---------------------------------------------------------------------------------------------
# Walking a body
# ---------------------------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "bool": (bool,),
    "int": (int,),
    "long": (int,),
    "float": (int, float),
    "iso-8601": (str,),
    "duration": (str,),
    "date": (str,),
    "rfc-1123": (str,),
    "unix-time": (int,),
    "bytearray": (str,),
    "base64": (str,),
}


@dataclass
class Walker:
    module: Any
    symbols: frozenset[str]
    problems: list[str] = dataclass_field(default_factory=list)
    free_paths: list[str] = dataclass_field(default_factory=list)
    enum_paths: list[str] = dataclass_field(default_factory=list)

    def is_expression(self, value: Any) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            (key, inner) = next(iter(value.items()))
            return key in {"operator", "function"} and isinstance(inner, dict) and "type" in inner
        return False

    def is_reference(self, value: Any) -> bool:
        return isinstance(value, str) and (
            "${" in value or (bool(_IDENTIFIER.match(value)) and value.split(".")[0] in self.symbols)
        )

    def value(self, path: str, type_: str, value: Any, field: Field | None = None) -> None:
        if self.is_expression(value):
            inner = value.get("operator", {})
            if inner.get("type") == "conditional":
                for branch in ("true_value", "false_value"):
                    self.value(path, type_, inner["operands"][branch], field)
            return
        if type_ == "object":
            self.free_paths.append(path)
            return
        if self.is_reference(value):
            return
        if type_.startswith("[") and type_.endswith("]"):
            self.sequence(path, type_[1:-1], value)
        elif type_.startswith("{") and type_.endswith("}"):
            self.mapping(path, type_[1:-1], value)
        elif type_ in _PRIMITIVES:
            self.primitive(path, type_, value, field)
        else:
            self.model(path, getattr(self.module, type_), value)

    def sequence(self, path: str, item_type: str, value: Any) -> None:
        if not isinstance(value, list):
            self.problems.append(f"{path}: expected a list ({item_type}), got {type(value).__name__}")
            return
        for index, item in enumerate(value):
            self.value(f"{path}[{index}]", item_type, item)

    def mapping(self, path: str, item_type: str, value: Any) -> None:
        if not isinstance(value, dict):
            self.problems.append(f"{path}: expected an object of {item_type}, got {type(value).__name__}")
            return
        self.free_paths.append(path)
        for key, item in value.items():
            self.value(f"{path}.{_unquote(key)}", item_type, item)

    def primitive(self, path: str, type_: str, value: Any, field: Field | None) -> None:
        allowed = _PRIMITIVES[type_]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            self.problems.append(f"{path}: expected {type_}, got {value!r}")
            return
        if field is None or field.enum is None or not isinstance(value, str):
            return
        self.enum_paths.append(path)
        if value.lower() not in {member.lower() for member in field.enum}:
            self.problems.append(f"{path}: {value!r} is not one of {sorted(field.enum)}")

    def model(self, path: str, model: type, value: Any) -> None:
        if not isinstance(value, dict):
            self.problems.append(f"{path}: expected an object ({model.__name__}), got {type(value).__name__}")
            return
        model = self.subtype(path, model, value)
        self.tree(path, model, schema(model, self.module), value, top=False)

    def subtype(self, path: str, model: type, value: dict[str, Any]) -> type:
        """The discriminated subtype the body names (msrest `_subtype_map`), or the model itself."""
        for attr, subtypes in (model.__dict__.get("_subtype_map") or {}).items():
            key = model._attribute_map[attr]["key"].replace("\\.", ".")  # type: ignore[attr-defined]
            given = next((v for k, v in value.items() if _unquote(k) == key), None)
            if given is None or self.is_reference(given) or self.is_expression(given):
                continue
            if given not in subtypes:
                self.problems.append(f"{path}.{key}: {given!r} is not one of {sorted(subtypes)}")
                continue
            chosen: type = getattr(self.module, subtypes[given])
            return chosen if chosen is model else self.subtype(path, chosen, value)
        return model

    def tree(self, path: str, model: type, tree: dict[str, Any], value: dict[str, Any], *, top: bool) -> None:
        open_ended = "" in tree  # additional_properties: the model accepts any other key
        if open_ended:
            self.free_paths.append(path)
        for raw_key, item in value.items():
            key = _unquote(raw_key)
            where = f"{path}.{key}" if path else key
            if top and key in BICEP_KEYS:
                continue
            node = tree.get(key)
            if node is None:
                if not open_ended:
                    self.problems.append(f"{where}: unknown property of {model.__name__}")
                continue
            if isinstance(node, dict):
                if self.is_expression(item) or self.is_reference(item):
                    continue
                if not isinstance(item, dict):
                    self.problems.append(f"{where}: expected an object, got {type(item).__name__}")
                    continue
                self.tree(where, model, node, item, top=False)
                continue
            if node.readonly and not (top and key in BICEP_KEYS):
                self.problems.append(f"{where}: read-only property of {model.__name__}")
            self.value(where, node.type, item, node)
        given = {_unquote(k) for k in value}
        for key, node in tree.items():
            missing = isinstance(node, Field) and node.required and not node.readonly and key not in given
            if missing and not (top and key in BICEP_KEYS):
                self.problems.append(f"{path + '.' if path else ''}{key}: required by {model.__name__}")


def _unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def validate(request: dict[str, Any]) -> dict[str, list[str]]:
    """Problems of one resource body (empty when it fits the published model), and what was checked how.

    `free`: paths of objects whose keys the model leaves open (tags, app settings, additional
    properties); `enums`: paths of values checked against an enum. The tests use both to know which
    mutations must be caught.
    """
    try:
        model = model_for(request["type"], request.get("name"), request["apiVersion"])
    except (UnknownApiVersion, KeyError) as error:
        return {"problems": [str(error.args[0])], "free": [], "enums": []}
    if request["body"] is None:  # an `existing` reference: only its API version matters
        return {"problems": [], "free": [], "enums": []}
    module = sys.modules[model.__module__.rsplit(".", 1)[0]]
    walker = Walker(module=module, symbols=frozenset(request["symbols"]))
    walker.tree("", model, schema(model, module), request["body"], top=True)
    return {"problems": walker.problems, "free": walker.free_paths, "enums": walker.enum_paths}


def main() -> None:
    requests = json.load(sys.stdin)
    result = {request["id"]: validate(request) for request in requests}
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
