"""`contactmsg stack`: start, stop and demo the local stack (Azurite, ACS emulator, Functions runner)."""

from __future__ import annotations

from typing import Annotated

import typer

from contactmsg.context import Exit, console, err_console

stack_app = typer.Typer(
    help="Run the local stack: Azurite, the ACS emulator and the Functions runner.", no_args_is_help=True
)


@stack_app.command("start")
def stack_start(
    detach: Annotated[bool, typer.Option(help="Leave it running in the background")] = False,
) -> None:
    """Start Azurite (persistent, in .devstack/), the ACS emulator and the app on port 7071."""
    from devstack.stack import LocalStack, StackAlreadyRunning

    stack = LocalStack.default()
    try:
        stack.start()
    except StackAlreadyRunning as exc:
        err_console.print(
            f"[red]error:[/red] {exc}: a stack (or another Azurite) is already running; stop it with "
            "`python -m contactmsg stack stop`, or with Ctrl-C where it runs in the foreground",
            soft_wrap=True,
        )
        raise typer.Exit(Exit.FAILED) from None
    console.print(stack.describe())
    if detach:
        stack.detach()
        console.print("running in the background; stop with `python -m contactmsg stack stop`")
        return
    stack.wait_forever()


@stack_app.command("stop")
def stack_stop() -> None:
    """Stop a stack started with `--detach`: the app runner first, then the emulator and Azurite, each
    waited for, so that the runner can finish its work against storage."""
    from devstack.stack import LocalStack

    stopped = LocalStack.stop_detached()
    console.print(f"stopped {stopped} process(es)")


@stack_app.command("demo")
def stack_demo() -> None:
    """Start the stack, send a demo batch across channels and outcomes, and print what happened."""
    from devstack.demo import main

    raise typer.Exit(main())
