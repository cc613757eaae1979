"""Small pure pieces: routes, worker-style indexing, message decoding, webhook helpers, keys."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import azure.functions as func
import pytest

from devstack.host import bindings
from devstack.host.eventgrid import allowed_origin, validation_code
from devstack.host.indexer import FunctionLoadError, build_spec
from devstack.host.keys import HostKeys
from devstack.host.queue_processor import Received, decode_body, trigger_data
from devstack.host.routes import compile_route


def test_route_template_binds_params_and_checks_constraints() -> None:
    """`{id:int}` binds digits and refuses letters; literals match case-insensitively."""
    route = compile_route("Items/{id:int}")
    assert (route.match("items/42"), route.match("items/abc")) == ({"id": "42"}, None)


def test_optional_and_catch_all_segments() -> None:
    """`{name?}` may be absent and `{*rest}` takes the remaining path."""
    assert compile_route("files/{name?}").match("files") == {}
    assert compile_route("files/{*rest}").match("files/a/b/c") == {"rest": "a/b/c"}


def test_literal_routes_take_precedence_over_parameters() -> None:
    """`items/new` sorts before `items/{id}`, like ASP.NET route precedence."""
    routes = sorted([compile_route("items/{id}"), compile_route("items/new")], key=lambda r: r.precedence)
    assert routes[0].template == "items/new"


def one_function(app: func.FunctionApp) -> func.Function:
    [function] = app.get_functions()
    return function


def test_parameter_without_binding_fails_to_load() -> None:
    """A Python parameter with no binding is a FunctionLoadError, as in the worker."""
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="q", connection="")
    def handler(msg: func.QueueMessage, extra: str) -> None: ...

    with pytest.raises(FunctionLoadError, match=r"declared in Python but not in function\.json"):
        build_spec(one_function(app), ".")


def test_builtin_list_in_out_annotation_is_rejected_like_the_worker() -> None:
    """azure-functions 1.26 only accepts `typing.List[str]` for a queue output, not `list[str]`."""
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="q", connection="")
    @app.queue_output(arg_name="out", queue_name="o", connection="")
    def handler(msg: func.QueueMessage, out: func.Out[list[str]]) -> None: ...

    with pytest.raises(FunctionLoadError, match="does not match its Python annotation"):
        build_spec(one_function(app), ".")


def test_context_and_str_annotations_bind_like_the_worker() -> None:
    """`context` is injected, and a `str` trigger annotation uses the generic binding."""
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="q", connection="")
    @app.queue_output(arg_name="out", queue_name="o", connection="")
    def handler(msg: str, out: func.Out[typing.List[str]], context: func.Context) -> None: ...  # noqa: UP006

    spec = build_spec(one_function(app), ".")
    assert (spec.needs_context, spec.inputs[0].bind_type, spec.outputs[0].bind_type) == (True, "generic", "queue")


def test_base64_decoding_rejects_plain_text_and_tolerates_whitespace() -> None:
    """Plain JSON is not base64; whitespace inside base64 is ignored like Convert.FromBase64String."""
    assert decode_body('{"plain": true}', "base64") is None
    assert decode_body("aGVs\nbG8=", "base64") == b"hello"
    assert decode_body('{"plain": true}', "none") == b'{"plain": true}'


def test_cloudevents_validation_code_may_be_double_encoded() -> None:
    """A CloudEvents validation event carries `data` as a JSON string."""
    assert validation_code({"data": '{"validationCode": "xyz"}'}) == "xyz"


def test_unknown_webhook_origin_falls_back_to_public_cloud() -> None:
    """Only Event Grid's own origins are echoed; anything else gets eventgrid.azure.net."""
    assert allowed_origin({"WebHook-Request-Origin": "evil.example"}) == "eventgrid.azure.net"


def test_master_key_passes_every_level_but_function_key_not_admin() -> None:
    """The master key opens admin routes; a function key opens only function-level routes."""
    keys = HostKeys(master="m", function="f")
    assert (
        keys.allows("admin", "m"),
        keys.allows("admin", "f"),
        keys.allows("function", "f"),
        keys.allows("anonymous", None),
    ) == (True, False, True, True)


def test_queue_trigger_receives_a_queue_message_with_full_metadata() -> None:
    """The converter builds azure.functions.queue.QueueMessage with id, dequeue count, times and pop receipt."""
    moment = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    datum, metadata = trigger_data(Received("id-1", "pop-1", 2, "aGk=", moment, moment, moment), b"hi")
    message = bindings.decode("queueTrigger", datum, metadata)
    assert (message.id, message.get_body(), message.dequeue_count, message.pop_receipt, message.insertion_time) == (
        "id-1",
        b"hi",
        2,
        "pop-1",
        moment,
    )
