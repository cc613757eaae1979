"""The runner runs a v2 app that lives outside the project, started from anywhere, as the README says.

The app below is written to a temp folder at test time. It has a queue trigger with a queue output and
an HTTP route, and a module of its own named `shared`, which must win over the project's `shared`
package: the runner's folder goes on the worker's path after the app's.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.queue import QueueServiceClient

from devstack.azurite import Azurite
from devstack.host.process import PROJECT_ROOT, RunnerProcess
from tests.devstack.host.helpers import b64, http, unb64, unique, wait_for

APP = """
import azure.functions as func

import shared

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.queue_trigger(arg_name="msg", queue_name="%IN_QUEUE%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="%OUT_QUEUE%", connection="AzureWebJobsStorage")
def relay(msg: func.QueueMessage, out: func.Out[str]) -> None:
    out.set(f"{shared.ORIGIN}:{msg.get_body().decode()}")


@app.route(route="origin", methods=["GET"])
def origin(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(shared.ORIGIN)
"""


class FromElsewhere(RunnerProcess):
    """`python -m devstack.host` as launched by a script that finds the runner by path, from a working
    directory that is not the project and with no PYTHONPATH."""

    def command(self, ready_file: Path) -> list[str]:
        find_runner = f"import runpy, sys; sys.path.insert(0, {str(PROJECT_ROOT)!r}); "
        find_runner += "runpy.run_module('devstack.host', run_name='__main__', alter_sys=True)"
        return [sys.executable, "-c", find_runner, *super().command(ready_file)[3:]]


@pytest.fixture(scope="module")
def outside_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    app_dir = tmp_path_factory.mktemp("outside-app")
    (app_dir / "function_app.py").write_text(textwrap.dedent(APP))
    (app_dir / "shared.py").write_text('ORIGIN = "outside"\n')
    (app_dir / "host.json").write_text(
        '{"version": "2.0", "extensions": {"queues": {"maxPollingInterval": "00:00:00.200"}}}'
    )
    return app_dir


@pytest.fixture(params=["python -m from the project", "a launcher elsewhere"])
def runner(
    request: pytest.FixtureRequest, outside_app: Path, azurite: Azurite, tmp_path: Path
) -> Iterator[tuple[RunnerProcess, dict[str, str]]]:
    queues = {"IN_QUEUE": unique("outside-in"), "OUT_QUEUE": unique("outside-out")}
    kind = RunnerProcess if request.param.startswith("python -m") else FromElsewhere
    process = kind(
        outside_app,
        env={**queues, "PYTHONPATH": ""},
        storage=azurite.connection_string,
        log_path=tmp_path / "runner.log",
        cwd=PROJECT_ROOT if kind is RunnerProcess else tmp_path,
        project_on_pythonpath=False,
    ).start()
    yield process, queues
    process.kill()


def test_an_app_outside_the_project_runs_its_queue_trigger_and_route(
    runner: tuple[RunnerProcess, dict[str, str]], queues: QueueServiceClient
) -> None:
    process, names = runner
    reply = http("GET", f"{process.url}/api/origin")
    assert (reply.status, reply.body) == (200, b"outside")
    out = queues.get_queue_client(names["OUT_QUEUE"])
    out.create_queue()
    queues.get_queue_client(names["IN_QUEUE"]).create_queue()
    queues.get_queue_client(names["IN_QUEUE"]).send_message(b64("hello"))
    relayed = wait_for(lambda: [unb64(m.content) for m in out.peek_messages()], timeout=30)
    assert relayed == ["outside:hello"]
