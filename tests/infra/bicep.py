"""Read the Bicep under infra/ without Azure or the Bicep CLI: parse with pycep and walk the result.

pycep turns a .bicep file into JSON-like dicts. Two of its habits matter here: a reference and a
string literal both come back as a plain string (`tags: tags` and `kind: 'web'` look alike), and a
conditional or looped resource wraps its body in `{"condition"/"loop_type": ..., "config": body}`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pycep import BicepParser

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def _parser() -> BicepParser:
    return BicepParser()


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    return cast(dict[str, Any], _parser().parse(file_path=path))


def body(config: dict[str, Any]) -> dict[str, Any]:
    """The resource or module body, unwrapped from `if (...)` and `[for ...]`."""
    while "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


@dataclass(frozen=True)
class Resource:
    file: Path
    symbol: str
    type: str
    api_version: str
    existing: bool
    body: dict[str, Any]

    @property
    def properties(self) -> dict[str, Any]:
        props = self.body.get("properties", {})
        return props if isinstance(props, dict) else {}


def resources() -> Iterator[Resource]:
    """Every resource declared (not merely referenced with `existing`) in every .bicep file."""
    for path in bicep_files():
        for symbol, resource in parse(path).get("resources", {}).items():
            yield Resource(
                file=path,
                symbol=symbol,
                type=resource["type"],
                api_version=resource["api_version"],
                existing=bool(resource.get("existing")),
                body=body(resource["config"]),
            )


_LOOP_VARIABLES = re.compile(r"\[for\s+\(?\s*(\w+)(?:\s*,\s*(\w+))?\s*\)?\s+in\b")


def symbols(path: Path) -> frozenset[str]:
    """Names a value in `path` may refer to: parameters, variables, resources, modules, loop variables.

    pycep renders a reference to one of them as a bare string, like a string literal.
    """
    parsed = parse(path)
    sections = ("parameters", "variables", "resources", "modules")
    names = {name for section in sections for name in parsed.get(section, {})}
    for match in _LOOP_VARIABLES.finditer(path.read_text()):
        names.update(name for name in match.groups() if name)
    return frozenset(names)


def declared_resources() -> list[Resource]:
    return [resource for resource in resources() if not resource.existing]


def key_name(key: str) -> str:
    """An object key as Bicep means it: pycep keeps the quotes of quoted keys."""
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def app_settings_resources() -> list[Resource]:
    return [
        resource
        for resource in declared_resources()
        if resource.type.lower() == "microsoft.web/sites/config" and resource.body.get("name") == "appsettings"
    ]


# A condition of a conditional object: (pycep's condition expression, "true_value" or "false_value").
Condition = tuple[Any, str]


SettingsPart = tuple[dict[str, Any], Condition | None]


def _settings_parts(value: Any, condition: Condition | None = None) -> Iterator[SettingsPart]:
    """The literal objects the app settings are made of: one literal, or `union()` of literals and of
    `cond ? {...} : {...}`, each with the branch of the condition it is set under (None: always)."""
    function = value.get("function") if isinstance(value, dict) else None
    operator = value.get("operator") if isinstance(value, dict) else None
    if isinstance(function, dict) and function.get("type") == "union":
        for argument in function["parameters"].values():
            yield from _settings_parts(argument, condition)
    elif isinstance(operator, dict) and operator.get("type") == "conditional":
        assert condition is None, "nested conditional app settings are not read here"
        operands = operator["operands"]
        for branch in ("true_value", "false_value"):
            yield from _settings_parts(operands[branch], (operands["condition"], branch))
    else:
        assert isinstance(value, dict), f"app settings must be literal objects, not {value!r}"
        yield value, condition


def app_settings() -> dict[str, Any]:
    """Name -> value (as pycep renders it) of the function app settings the Bicep sets (in any case)."""
    (resource,) = app_settings_resources()
    return {
        key_name(key): item
        for part, _ in _settings_parts(resource.body.get("properties", {}))
        for key, item in part.items()
    }


def conditional_app_settings() -> dict[str, Condition]:
    """Name -> the condition branch under which it is set, for the settings that are not always set."""
    (resource,) = app_settings_resources()
    return {
        key_name(key): condition
        for part, condition in _settings_parts(resource.body.get("properties", {}))
        if condition is not None
        for key in part
    }


def parameters(path: Path) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = parse(path).get("parameters", {})
    return result


def required_parameters(path: Path) -> set[str]:
    return {name for name, spec in parameters(path).items() if spec.get("default") is None}


_LOAD = re.compile(r"load(?:Text|Json)Content\(\s*'([^']+)'")


def loaded_files(path: Path) -> list[Path]:
    """Files a .bicep file embeds with loadTextContent / loadJsonContent."""
    return [(path.parent / match).resolve() for match in _LOAD.findall(path.read_text())]


# ---------------------------------------------------------------------------------------------
# KQL: only the vocabulary of shared/observability.py
# ---------------------------------------------------------------------------------------------

ALLOWED_TABLES = frozenset({"traces", "requests"})
# Application Insights tables a query here has no business reading.
_OTHER_SOURCES = re.compile(
    r"\b(customEvents|customMetrics|dependencies|exceptions|pageViews|browserTimings|availabilityResults|"
    r"performanceCounters|AppTraces|AppRequests|AppDependencies|AppExceptions|union)\b"
    r"|\b(workspace|app|resource)\s*\("
)
_COMMENT = re.compile(r"//[^\n]*")
_DIMENSION = re.compile(r"customDimensions(?:\s*\.\s*(\w+)|\s*\[\s*['\"]([^'\"]+)['\"]\s*\])")
_ALIAS = re.compile(r"\b(\w+)\s*=\s*tostring\(\s*customDimensions\s*\.\s*(event|metric_name)\s*\)")
_LITERAL = re.compile(r"\"([^\"]*)\"|'([^']*)'")
_EVENT_LIKE = re.compile(r"^[a-z_]+\.[a-z_]+$")
_OPERATOR = r"(?:==|!=|=~|!~|!in~|in~|!in|in|has|contains)"


def _comparisons(query: str, column: str) -> list[str]:
    """String literals compared with `column` (or tostring(customDimensions.<column>))."""
    subject = rf"(?:tostring\(\s*customDimensions\s*\.\s*{column}\s*\)|(?<![.\w]){column}\b)"
    pattern = re.compile(subject + rf"\s*{_OPERATOR}\s*(\([^)]*\)|\"[^\"]*\"|'[^']*')")
    literals: list[str] = []
    for match in pattern.finditer(query):
        literals.extend(a or b for a, b in _LITERAL.findall(match.group(1)))
    return literals


def kql_problems(
    query: str,
    *,
    events: frozenset[str],
    metrics: frozenset[str],
    dimensions: frozenset[str],
    tables: frozenset[str] = ALLOWED_TABLES,
) -> list[str]:
    """Everything in `query` outside the declared vocabulary; empty when the query is clean."""
    code = _COMMENT.sub("", query)
    problems: list[str] = []
    first = code.strip().split(None, 1)[0] if code.strip() else ""
    if first not in tables:
        problems.append(f"query must start with one of {sorted(tables)}, not {first!r}")
    without_strings = _LITERAL.sub('""', code)
    problems += [
        f"reads another source: {m.group(0)}"
        for m in _OTHER_SOURCES.finditer(without_strings)
        if m.group(0) not in tables
    ]
    if first == "traces" and "customDimensions.event" not in code.replace(" ", ""):
        problems.append("a traces query must filter on customDimensions.event")
    for match in _DIMENSION.finditer(code):
        name = match.group(1) or match.group(2)
        if name not in dimensions:
            problems.append(f"undeclared dimension customDimensions.{name}")
    aliases = {"event": "event", "metric_name": "metric_name"}
    aliases.update(dict(_ALIAS.findall(code)))
    for alias, column in aliases.items():
        declared, kind = (events, "event") if column == "event" else (metrics, "metric")
        problems += [f"undeclared {kind} {name!r}" for name in _comparisons(code, alias) if name not in declared]
    for a, b in _LITERAL.findall(code):
        literal = a or b
        if _EVENT_LIKE.match(literal) and literal not in events:
            problems.append(f"string {literal!r} looks like an event name but is not declared")
    return sorted(set(problems))
