"""Index a v2 `function_app.py` exactly like the Python worker does.

Why: the runner must accept and reject the same apps as Azure. The worker imports the script as a
top-level module (app root first on `sys.path`), requires exactly one `FunctionRegister`, calls
`get_functions()` once (a second call raises), and binds parameters by name: `context`, `Out[T]` for
OUT bindings, `$return` for the return value, `str`/`bytes` annotations through the generic binding.
The checks mirror `azure_functions_worker/functions.py` (`FunctionLoadError` messages included).
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions._thirdparty import typing_inspect

from devstack.host import bindings


class FunctionLoadError(RuntimeError):
    def __init__(self, function_name: str, message: str) -> None:
        super().__init__(f"cannot load the {function_name} function: {message}")


class IndexingError(RuntimeError):
    """The script has no (or more than one) function app instance."""


@dataclass(frozen=True)
class Binding:
    """One entry of `get_raw_bindings()`: exactly what the worker sends to the host."""

    name: str
    type: str
    direction: str
    raw: Mapping[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)


@dataclass(frozen=True)
class Param:
    name: str
    binding: Binding
    bind_type: str
    pytype: Any


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    func: Callable[..., Any]
    is_async: bool
    trigger: Binding
    inputs: tuple[Param, ...]
    outputs: tuple[Param, ...]
    return_binding: Binding | None
    return_pytype: Any
    needs_context: bool
    retry_settings: Mapping[str, Any] | None
    directory: str


def load_app(app_dir: Path, script_file: str = "function_app.py") -> list[FunctionSpec]:
    """Import the script, find the single FunctionRegister and index every function."""
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    module = importlib.import_module(Path(script_file).stem)
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if not apps:
        raise IndexingError(f"Could not find top level function app instances in {script_file}.")
    if len(apps) > 1:
        raise IndexingError(
            f"More than one {type(apps[0]).__name__} or other top level function app instances are defined."
        )
    return [build_spec(function, str(app_dir)) for function in apps[0].get_functions()]


def build_spec(function: func.Function, directory: str) -> FunctionSpec:
    name = str(function.get_function_name())
    user = function.get_user_function()
    raw = [json.loads(text) for text in function.get_raw_bindings()]
    all_bindings = {b["name"]: Binding(b["name"], b["type"], str(b.get("direction", "IN")).upper(), b) for b in raw}
    return_binding = all_bindings.pop("$return", None)
    params = dict(inspect.signature(user).parameters)
    hints = typing.get_type_hints(user)
    needs_context = _take_context(name, params, all_bindings, hints)
    _check_names(name, params, all_bindings)
    bound = [_param(name, pname, all_bindings[pname], hints) for pname in params]
    trigger = next(b for b in raw if str(b["type"]).lower().endswith("trigger"))
    return FunctionSpec(
        name=name,
        func=user,
        is_async=inspect.iscoroutinefunction(user),
        trigger=Binding(trigger["name"], trigger["type"], "IN", trigger),
        inputs=tuple(p for p in bound if p.binding.direction != "OUT"),
        outputs=tuple(p for p in bound if p.binding.direction == "OUT"),
        return_binding=return_binding,
        return_pytype=_return_type(name, return_binding, hints),
        needs_context=needs_context,
        retry_settings=_retry_settings(function),
        directory=directory,
    )


def _retry_settings(function: func.Function) -> Any:
    """`@app.retry` settings; a library older than the retry decorator (the worker may bundle one) has none."""
    settings = getattr(function, "get_settings_dict", None)
    return settings("retry_policy") if settings is not None else None


def _take_context(name: str, params: dict[str, Any], found: dict[str, Binding], hints: dict[str, Any]) -> bool:
    if "context" not in params or "context" in found:
        return False
    params.pop("context")
    annotation = hints.get("context")
    if annotation is not None and (not isinstance(annotation, type) or annotation.__name__ != "Context"):
        raise FunctionLoadError(
            name, f'the "context" parameter is expected to be of type azure.functions.Context, got {annotation!r}'
        )
    return True


def _check_names(name: str, params: dict[str, Any], found: dict[str, Binding]) -> None:
    if set(params) - set(found):
        raise FunctionLoadError(
            name,
            f"the following parameters are declared in Python but not in function.json: {set(params) - set(found)!r}",
        )
    if set(found) - set(params):
        raise FunctionLoadError(
            name,
            f"the following parameters are declared in function.json but not in Python: {set(found) - set(params)!r}",
        )
    inout = [b.name for b in found.values() if b.direction == "INOUT"]
    if inout:
        raise FunctionLoadError(name, '"inout" bindings are not supported')


def _param(name: str, pname: str, binding: Binding, hints: dict[str, Any]) -> Param:
    has_anno = pname in hints
    annotation = hints.get(pname)
    is_param_out = has_anno and _is_out(annotation)
    is_binding_out = binding.direction == "OUT"
    if is_binding_out and has_anno and not is_param_out:
        raise FunctionLoadError(
            name,
            f'binding {pname} is declared to have the "out" direction, '
            "but its annotation in Python is not a subclass of azure.functions.Out",
        )
    if not is_binding_out and is_param_out:
        raise FunctionLoadError(
            name,
            f'binding {pname} is declared to have the "in" direction in function.json, '
            "but its annotation is azure.functions.Out in Python",
        )
    pytype = _out_type(annotation) if is_param_out else annotation
    bind_type = "generic" if has_anno and pytype in (str, bytes) else binding.type
    if has_anno:
        _check_annotation(name, pname, binding, bind_type, pytype, is_binding_out)
    return Param(pname, binding, bind_type, pytype)


def _is_out(annotation: Any) -> bool:
    generic = typing_inspect.is_generic_type(annotation)  # type: ignore[no-untyped-call]
    origin = typing_inspect.get_origin(annotation) if generic else annotation  # type: ignore[no-untyped-call]
    return isinstance(origin, type) and origin.__name__ == "Out"


def _out_type(annotation: Any) -> Any:
    return typing_inspect.get_args(annotation)[0]  # type: ignore[no-untyped-call]


def _check_annotation(name: str, pname: str, binding: Binding, bind_type: str, pytype: Any, is_out: bool) -> None:
    converter = bindings.converter(bind_type)
    checks = converter.check_output_type_annotation(pytype) if is_out else converter.check_input_type_annotation(pytype)
    if not checks:
        shown = getattr(pytype, "__name__", repr(pytype))
        raise FunctionLoadError(
            name,
            f'type of {pname} binding in function.json "{binding.type}" does not match its Python annotation "{shown}"',
        )


def _return_type(name: str, binding: Binding | None, hints: dict[str, Any]) -> Any:
    if binding is None or "return" not in hints:
        return None
    annotation = hints["return"]
    if _is_out(annotation):
        raise FunctionLoadError(name, "return annotation should not be azure.functions.Out")
    bind_type = "generic" if annotation in (str, bytes) else binding.type
    if isinstance(annotation, type) and not bindings.converter(bind_type).check_output_type_annotation(annotation):
        raise FunctionLoadError(
            name, f'Python return annotation "{annotation.__name__}" does not match binding type "{binding.type}"'
        )
    return annotation
