"""HTTP trigger route templates: `{param}`, `{param:constraint}`, `{param?}`, `{*rest}`.

Why: the host routes `/<routePrefix>/<route>` with ASP.NET route templates (case-insensitive
literals, literal segments preferred over parameters); the Python app only declares the template, so
the runner must match requests and extract route params the same way.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

_CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": lambda v: re.fullmatch(r"-?\d+", v) is not None,
    "long": lambda v: re.fullmatch(r"-?\d+", v) is not None,
    "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
    "bool": lambda v: v.lower() in ("true", "false"),
    "guid": lambda v: _is_guid(v),
    "double": lambda v: re.fullmatch(r"-?\d+(\.\d+)?", v) is not None,
}


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Segment:
    literal: str | None = None
    name: str | None = None
    constraint: str | None = None
    optional: bool = False
    catch_all: bool = False

    @property
    def rank(self) -> int:
        """Lower is more specific (ASP.NET route precedence, simplified)."""
        if self.literal is not None:
            return 0
        if self.catch_all:
            return 4
        if self.optional:
            return 3
        return 1 if self.constraint else 2


@dataclass(frozen=True)
class RouteTemplate:
    template: str
    segments: tuple[Segment, ...]

    @property
    def precedence(self) -> tuple[int, ...]:
        return tuple(segment.rank for segment in self.segments)

    def match(self, path: str) -> dict[str, str] | None:
        """Route params when `path` (without the prefix) matches, else None."""
        parts = [p for p in path.strip("/").split("/") if p != ""]
        params: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.catch_all:
                if parts[index:] and segment.name:
                    params[segment.name] = "/".join(parts[index:])
                return params
            if index >= len(parts):
                return params if all(s.optional or s.catch_all for s in self.segments[index:]) else None
            if not _segment_matches(segment, parts[index], params):
                return None
        return params if len(parts) == len(self.segments) else None


def _segment_matches(segment: Segment, part: str, params: dict[str, str]) -> bool:
    if segment.literal is not None:
        return segment.literal.lower() == part.lower()
    check = _CONSTRAINTS.get(segment.constraint or "")
    if check is not None and not check(part):
        return False
    assert segment.name is not None
    params[segment.name] = part
    return True


def compile_route(template: str) -> RouteTemplate:
    """Parse a template such as `items/{id:int}/{*rest}`."""
    segments = tuple(_segment(part) for part in template.strip("/").split("/") if part)
    return RouteTemplate(template, segments)


def _segment(part: str) -> Segment:
    if not (part.startswith("{") and part.endswith("}")):
        return Segment(literal=part)
    body = part[1:-1]
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    optional = body.endswith("?")
    body = body.rstrip("?")
    name, _, constraint = body.partition(":")
    name, _, _default = name.partition("=")
    return Segment(name=name, constraint=constraint or None, optional=optional, catch_all=catch_all)
