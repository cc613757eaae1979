"""Azurite's clean-up stall: which measured runs it touched, and which pairs the reported ratio uses.

The verdicts are computed from probe samples given here, so no test depends on how fast anything runs;
the probe itself is checked against a server that holds one request back.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.stall import LatencyProbe, Sample, SideVerdict, Window, judge, queue_endpoint, stalls, sweep_may_fall_in
from bench.throughput import more_pairs_needed, reported


def steady(start: float, end: float, latency: float = 0.01, every: float = 0.25) -> list[Sample]:
    count = int((end - start) / every)
    return [Sample(start + i * every, latency) for i in range(count)]


def test_a_long_answer_is_a_stall_and_short_ones_are_not() -> None:
    samples = [*steady(0, 10), Sample(10.0, 8.5), *steady(18.5, 30, latency=0.4)]
    assert stalls(samples, threshold=1.0) == [Window(10.0, 18.5)]


def test_a_stall_inside_the_measured_run_marks_it() -> None:
    samples = [*steady(0, 60), Sample(61.0, 9.0), *steady(70, 90)]
    verdict = judge(Window(50.0, 80.0), samples, origin=0.0, spawned_at=0.0)
    assert verdict.stalled
    assert verdict.stalls_s == [[61.0, 70.0]]
    assert verdict.window_s == [50.0, 80.0]
    assert verdict.max_probe_ms == 9000.0
    assert verdict.past_first_sweep is True


def test_a_stall_outside_the_measured_run_does_not_mark_it() -> None:
    """During the warm-up, or after the run ended: the measured requests never met it."""
    samples = [Sample(1.0, 3.0), *steady(4, 40), Sample(45.0, 5.0)]
    verdict = judge(Window(10.0, 40.0), samples, origin=0.0, spawned_at=0.0)
    assert not verdict.stalled and verdict.stalls_s == []
    assert verdict.max_probe_ms == 10.0
    assert verdict.past_first_sweep is False


def test_a_stall_that_straddles_the_start_of_the_run_marks_it() -> None:
    verdict = judge(Window(10.0, 40.0), [Sample(8.0, 4.0)], origin=0.0, spawned_at=None)
    assert verdict.stalled
    assert verdict.past_first_sweep is None  # storage this run did not start: its sweep times are unknown


def test_times_are_given_from_the_origin() -> None:
    verdict = judge(Window(1010.0, 1040.0), [Sample(1020.0, 2.0)], origin=1000.0, spawned_at=1000.0)
    assert verdict.window_s == [10.0, 40.0] and verdict.stalls_s == [[20.0, 22.0]]
    assert verdict.to_json()["stalled"] is True


def test_a_run_that_ends_within_the_interval_after_spawn_is_clear_of_the_next_sweep() -> None:
    assert not sweep_may_fall_in(Window(5.0, 59.9), spawned_at=0.0)
    assert sweep_may_fall_in(Window(5.0, 60.0), spawned_at=0.0)


def _run(ratio: float, clean: bool) -> dict[str, Any]:
    return {"ratio": ratio, "clean": clean}


def test_the_reported_pair_is_the_median_of_the_clean_ones() -> None:
    runs = [_run(0.6, True), _run(0.9, False), _run(0.62, True), _run(0.95, False), _run(0.58, True)]
    median, ratio_from = reported(runs)
    assert median["ratio"] == 0.6
    assert ratio_from.startswith("median of the 3 pairs clear")


def test_without_a_clean_pair_all_are_used_and_the_record_says_so() -> None:
    median, ratio_from = reported([_run(0.9, False), _run(0.7, False), _run(0.8, False)])
    assert median["ratio"] == 0.8
    assert "NONE was clear" in ratio_from


def test_pairs_run_until_enough_are_clean_or_twice_as_many_ran() -> None:
    assert more_pairs_needed([_run(0.6, True), _run(0.9, False)], repeats=2)
    assert not more_pairs_needed([_run(0.6, True), _run(0.9, False), _run(0.6, True)], repeats=2)
    assert not more_pairs_needed([_run(0.9, False)] * 4, repeats=2)


def test_the_queue_endpoint_is_read_from_the_connection_string() -> None:
    conn = "DefaultEndpointsProtocol=http;AccountName=a;QueueEndpoint=http://127.0.0.1:1234/a;TableEndpoint=x;"
    assert queue_endpoint(conn) == "http://127.0.0.1:1234/a"
    with pytest.raises(ValueError, match="QueueEndpoint"):
        queue_endpoint("UseDevelopmentStorage=true")


class _HeldBack(BaseHTTPRequestHandler):
    """Answers at once, except the second request, which waits until the test releases it."""

    release = threading.Event()
    held = threading.Event()
    count = 0

    def do_GET(self) -> None:
        type(self).count += 1
        if type(self).count == 2:
            type(self).held.set()
            type(self).release.wait(10)
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HeldBack)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/devstoreaccount1"
    finally:
        _HeldBack.release.set()
        server.shutdown()
        server.server_close()


def test_the_probe_records_a_request_that_was_held_back_as_a_stall() -> None:
    """Held for at least 0.6 s (the test waits that long before releasing it): a lower bound only."""
    with _server() as endpoint, LatencyProbe(endpoint, interval=0.01) as probe:
        assert _HeldBack.held.wait(10)
        threading.Event().wait(0.6)
        _HeldBack.release.set()
        while len(probe.samples) < 3:
            threading.Event().wait(0.05)
    held = probe.samples[1]
    assert held.latency >= 0.6
    assert held.window in stalls(probe.samples, threshold=0.6)
    assert probe.samples[2].sent_at >= held.window.end  # one request at a time: the held one held the next


def _verdict(stalled: bool) -> SideVerdict:
    return SideVerdict(stalled, 9000.0 if stalled else 10.0, [[61.0, 70.0]] if stalled else [], [5.0, 80.0], True)


def test_each_side_of_a_pair_gets_an_azurite_of_its_own_and_a_stall_on_either_voids_the_pair(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The floor used to run second on the pipeline's Azurite, and so across its 60 s clean-up."""
    from bench import throughput

    calls: list[str] = []

    def fake_side(storage_arg: str | None, work: Any, window: Any) -> tuple[Any, SideVerdict]:
        side = work.__name__
        calls.append(side)
        if side == "pipeline_side":
            result = {"rate": 60.0, "window": Window(5.0, 40.0), "cpu_ms_per_message": {}, "duplicates": 0}
            return result, _verdict(stalled=False)
        run = throughput.FloorRun(100.0, {}, 0, Window(5.0, 80.0))
        return run, _verdict(stalled=True)

    monkeypatch.setattr(throughput, "on_fresh_azurite", fake_side)
    first = throughput.measure(None, 10, tmp_path, pipeline_first=True)
    second = throughput.measure(None, 10, tmp_path, pipeline_first=False)
    assert calls == ["pipeline_side", "floor_side", "floor_side", "pipeline_side"]
    assert first["order"] == "pipeline first" and second["order"] == "floor first"
    assert not first["clean"] and first["stall"]["floor"]["stalled"] and not first["stall"]["pipeline"]["stalled"]
    assert first["ratio"] == pytest.approx(0.6)
