"""Every resource body in infra/ fits the REST model Microsoft publishes for its type and API version.

The models come from the Python management SDKs (azure-mgmt-web, -storage, -communication, ...),
pinned in requirements-infra.txt and installed in .venv-infra; tests/infra/arm_models.py runs there
and compares each body with the model of exactly the API version the Bicep names: property names,
nesting (flattened `properties.x` included), types, enum values, read-only and required properties,
discriminated subtypes. A missing .venv-infra is a failure, not a skip.

The mutation tests prove the check is strict: every property name in today's Bicep, misspelled, is
caught (unless the model leaves that object's keys open, like tags or app settings); every enum
value the model constrains, replaced, is caught; properties moved to the wrong level, unknown API
versions, wrong types and unknown subtypes are caught.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.arm_models import STAND_INS
from tests.infra.bicep import REPO, Resource, declared_resources, key_name, resources, symbols

PYTHON = REPO / ".venv-infra" / "bin" / "python"
BICEP_KEYS = frozenset({"name", "parent", "scope", "dependsOn"})
RESOURCES = {f"{r.file.name}:{r.symbol}": r for r in declared_resources()}


def _request(resource: Resource, body: dict[str, Any] | None = None, api_version: str | None = None) -> dict[str, Any]:
    body = resource.body if body is None else body
    return {
        "type": resource.type,
        "apiVersion": api_version or resource.api_version,
        "name": body.get("name"),
        "body": body,
        "symbols": sorted(symbols(resource.file)),
    }


def validate(requests: dict[str, dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """One run of the validator in .venv-infra for many bodies (importing the SDK models takes a while)."""
    assert PYTHON.is_file(), "run `make infra-venv` (requirements-infra.txt) first"
    payload = [{"id": key, **request} for key, request in requests.items()]
    completed = subprocess.run(  # noqa: S603 - the pinned models' venv, fixed arguments, JSON on stdin
        [str(PYTHON), "-m", "tests.infra.arm_models"],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    result: dict[str, dict[str, list[str]]] = json.loads(completed.stdout)
    return result


@pytest.fixture(scope="module")
def today() -> dict[str, dict[str, list[str]]]:
    return validate({key: _request(resource) for key, resource in RESOURCES.items()})


def test_every_existing_reference_names_a_published_api_version() -> None:
    """`existing` references (no body) use an API version a model is published for, like declared ones."""
    existing = {f"{r.file.name}:{r.symbol}": r for r in resources() if r.existing}
    assert existing
    results = validate({key: {**_request(r), "body": None} for key, r in existing.items()})
    assert {key: result["problems"] for key, result in results.items() if result["problems"]} == {}


def test_stand_ins_are_in_use() -> None:
    """Each stand-in model names a (type, API version) the Bicep uses, so none outlives its reason."""
    used = {(r.type.lower(), r.api_version) for r in RESOURCES.values()}
    assert set(STAND_INS) <= used


def test_every_resource_fits_its_published_model(today: dict[str, dict[str, list[str]]]) -> None:
    """No unknown or misplaced property, wrong type, bad enum value or unknown API version in infra/."""
    problems = {key: result["problems"] for key, result in today.items() if result["problems"]}
    assert problems == {}
    assert len(today) == len(RESOURCES) >= 40


# ---------------------------------------------------------------------------------------------
# Mutations: the check must catch each of these
# ---------------------------------------------------------------------------------------------


def _is_expression(value: Any) -> bool:
    if isinstance(value, dict) and len(value) == 1:
        key, inner = next(iter(value.items()))
        return key in {"operator", "function"} and isinstance(inner, dict) and "type" in inner
    return False


def _objects(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, object) of every literal object in a body, in the validator's path notation."""
    if isinstance(value, dict) and not _is_expression(value):
        yield path, value
        for key, item in value.items():
            if not (path == "" and key in BICEP_KEYS):
                yield from _objects(item, f"{path}.{key_name(key)}" if path else key_name(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _objects(item, f"{path}[{index}]")


def _at(body: dict[str, Any], path: str) -> dict[str, Any]:
    for target_path, target in _objects(body):
        if target_path == path:
            return target
    raise KeyError(path)


def _leaf(body: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The object and key that hold the value at `path` (keys may contain dots, like 'odata.type')."""
    for parent, target in _objects(body):
        for key in target:
            if path == (f"{parent}.{key_name(key)}" if parent else key_name(key)):
                return target, key
    raise KeyError(path)


def _misspellings() -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(resource, object path, key, body with that key misspelled) for every property of every body."""
    for name, resource in RESOURCES.items():
        for path, target in _objects(resource.body):
            for key in target:
                if path == "" and key in BICEP_KEYS:
                    continue
                body = copy.deepcopy(resource.body)
                mutated = _at(body, path)
                mutated[key.replace(key_name(key), key_name(key) + "Typo")] = mutated.pop(key)
                yield name, path, key, body


MISSPELLINGS = {f"typo|{name}|{path}|{key}": (name, path, body) for name, path, key, body in _misspellings()}


def _enum_mutations(today: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, Any]]:
    cases: dict[str, dict[str, Any]] = {}
    for name, result in today.items():
        resource = RESOURCES[name]
        for path in result["enums"]:
            body = copy.deepcopy(resource.body)
            target, key = _leaf(body, path)
            target[key] = "NotAKnownValue"
            cases[f"enum|{name}|{path}"] = _request(resource, body)
    return cases


@pytest.fixture(scope="module")
def mutated(today: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
    """Every mutation of every test below, validated in one run."""
    requests = {case: _request(RESOURCES[name], body) for case, (name, _, body) in MISSPELLINGS.items()}
    requests.update(_enum_mutations(today))
    requests.update({f"targeted|{case}": request for case, (request, _) in TARGETED.items()})
    requests.update(
        {f"version|{key}": _request(resource, api_version="2001-01-01") for key, resource in RESOURCES.items()}
    )
    return validate(requests)


def test_every_misspelled_property_is_caught(
    today: dict[str, dict[str, list[str]]], mutated: dict[str, dict[str, list[str]]]
) -> None:
    """Each property name in infra/, misspelled, fails the check, except inside objects with open keys."""
    checked = {case: name for case, (name, path, _) in MISSPELLINGS.items() if path not in today[name]["free"]}
    missed = [case for case in checked if not mutated[case]["problems"]]
    assert missed == []
    assert len(checked) >= 200, "the mutation set should cover every property of every body"


def test_every_constrained_enum_value_is_caught(mutated: dict[str, dict[str, list[str]]]) -> None:
    """Each value the model constrains to an enum, replaced by a value outside it, fails the check."""
    cases = {case: result for case, result in mutated.items() if case.startswith("enum|")}
    assert len(cases) >= 20
    missed = [case for case, result in cases.items() if not any("is not one of" in p for p in result["problems"])]
    assert missed == []


def _mutated(name: str, change: Any) -> dict[str, Any]:
    resource = RESOURCES[name]
    body = copy.deepcopy(resource.body)
    change(body)
    return _request(resource, body)


def _move(body: dict[str, Any], source: str, key: str, target: str) -> None:
    _at(body, target)[key] = _at(body, source).pop(key)


# name -> (request, a fragment of the expected problem)
TARGETED: dict[str, tuple[dict[str, Any], str]] = {
    "scale setting under runtime instead of scaleAndConcurrency": (
        _mutated(
            "functionapp.bicep:site",
            lambda b: _move(
                b,
                "properties.functionAppConfig.scaleAndConcurrency",
                "maximumInstanceCount",
                "properties.functionAppConfig.runtime",
            ),
        ),
        "runtime.maximumInstanceCount: unknown property",
    ),
    "site property at the top level instead of under properties": (
        _mutated("functionapp.bicep:site", lambda b: _move(b, "properties", "httpsOnly", "")),
        "httpsOnly: unknown property of Site",
    ),
    "storage property at the top level": (
        _mutated("storage.bicep:account", lambda b: _move(b, "properties", "minimumTlsVersion", "")),
        "minimumTlsVersion: unknown property",
    ),
    "Event Grid destination setting on the subscription itself": (
        _mutated(
            "eventgrid.bicep:recordEvent",
            lambda b: _move(b, "properties.destination.properties", "maxEventsPerBatch", "properties"),
        ),
        "properties.maxEventsPerBatch: unknown property",
    ),
    "unknown API version": (
        _request(RESOURCES["functionapp.bicep:site"], api_version="2099-01-01"),
        "no installed SDK publishes this API version",
    ),
    "API version of another resource type": (
        _request(RESOURCES["communication.bicep:acs"], api_version="2024-04-01"),
        "no installed SDK publishes this API version",
    ),
    "bad enum value": (
        _mutated("functionapp.bicep:site", lambda b: _at(b, "properties.siteConfig").update(ftpsState="Sometimes")),
        "'Sometimes' is not one of ['AllAllowed', 'Disabled', 'FtpsOnly']",
    ),
    "string where the model wants a bool": (
        _mutated("functionapp.bicep:site", lambda b: _at(b, "properties").update(httpsOnly="true")),
        "properties.httpsOnly: expected bool",
    ),
    "unknown discriminated subtype": (
        _mutated(
            "eventgrid.bicep:recordEvent",
            lambda b: _at(b, "properties.destination").update(endpointType="AzureFunctions"),
        ),
        "'AzureFunctions' is not one of",
    ),
    "read-only property set": (
        _mutated("functionapp.bicep:site", lambda b: _at(b, "properties").update(defaultHostName="x.example")),
        "properties.defaultHostName: read-only property of Site",
    ),
    "required property missing": (
        _mutated("roles.bicep:blobOwner", lambda b: _at(b, "properties").pop("principalId")),
        "properties.principalId: required by RoleAssignmentCreateParameters",
    ),
    "tags on a resource type that has none": (
        _mutated("budget.bicep:budget", lambda b: b.update(tags="tags")),
        "tags: unknown property of Budget",
    ),
    "a list where the model wants an object": (
        _mutated("storage.bicep:account", lambda b: _at(b, "").update(sku=[{"name": "Standard_LRS"}])),
        "sku: expected an object",
    ),
}


def test_targeted_mistakes_are_caught(mutated: dict[str, dict[str, list[str]]]) -> None:
    """Misplaced properties, unknown API versions, bad enums, wrong types, read-only and required properties."""
    missed = {
        case: mutated[f"targeted|{case}"]["problems"]
        for case, (_, expected) in TARGETED.items()
        if not any(expected in problem for problem in mutated[f"targeted|{case}"]["problems"])
    }
    assert missed == {}


def test_unknown_api_version_of_every_resource_is_caught(mutated: dict[str, dict[str, list[str]]]) -> None:
    """No resource type falls back to some other API version's model by accident."""
    missed = [key for key in RESOURCES if not mutated[f"version|{key}"]["problems"]]
    assert missed == []
