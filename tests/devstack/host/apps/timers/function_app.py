"""Timer functions for the runner tests; each test disables the ones it does not need."""

import logging
import os

import azure.functions as func

log = logging.getLogger(__name__)
app = func.FunctionApp()


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True, use_monitor=True)
def startup_timer(timer: func.TimerRequest) -> None:
    log.info("startup_timer ran past_due=%s", timer.past_due)


@app.timer_trigger(arg_name="timer", schedule="*/1 * * * * *")
def every_second(timer: func.TimerRequest) -> None:
    log.info("every_second ran instance=%s", os.environ.get("INSTANCE"))


@app.retry(strategy="fixed_delay", max_retry_count="2", delay_interval="00:00:01")
@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True, use_monitor=False)
def retried_timer(timer: func.TimerRequest, context: func.Context) -> None:
    log.info("retried_timer retry_count=%s", context.retry_context.retry_count)
    raise RuntimeError("simulated timer failure")
