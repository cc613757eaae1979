"""Azurite's queue clean-up stall: how to see it, and which measured runs it touched.

Azurite 3.37 sweeps its queue extents when it starts and then 60 s after each sweep ends
(`QueueGCManager`, `DEFAULT_GC_INTERVAL_MS` in node_modules/azurite/dist/src/queue). In memory, every
queue message is an extent of its own, and the sweep deletes the extents of every message deleted
since the last sweep one at a time from a LokiJS collection, at a cost that grows faster than the
count: about 12 s of Azurite CPU for ~4,000 messages, 54 s for ~7,000 (floor runs back to back on one
Azurite, this machine). The loop awaits only promises that are already resolved, so Azurite serves no
request until it ends: one request in flight then takes the whole sweep. A run it lands on is slowed,
and the CPU meter charges the sweep to that run.

The sweep at start finds nothing, so a run that ends within 60 s of its Azurite's start is clear of
it by construction; a probe (one trivial request at a time, from a thread of its own) shows whether
a run was clear when it was not that short, or when the storage is not one this run started.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

SWEEP_INTERVAL_S = 60.0
# A trivial request answers in milliseconds, in a few hundred on a machine under load, and once took
# 1.04 s on a cold Azurite under load; a sweep worth noticing holds every request for seconds (about
# 5 s for the 2,500 messages of one side of a pair, 21 s for 5,000 seen on a loaded machine).
STALL_THRESHOLD_S = 2.0
PROBE_INTERVAL_S = 0.25
PROBE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Window:
    """A span of `time.monotonic()` seconds."""

    start: float
    end: float

    def overlaps(self, other: Window) -> bool:
        return self.start < other.end and other.start < self.end

    def relative_to(self, origin: float) -> list[float]:
        return [round(self.start - origin, 1), round(self.end - origin, 1)]


@dataclass(frozen=True)
class Sample:
    """One probe: when it was sent and how long the answer took (the timeout if none came)."""

    sent_at: float
    latency: float

    @property
    def window(self) -> Window:
        return Window(self.sent_at, self.sent_at + self.latency)


def stalls(samples: list[Sample], threshold: float = STALL_THRESHOLD_S) -> list[Window]:
    """The spans in which Azurite answered nothing for at least `threshold` seconds."""
    return [sample.window for sample in samples if sample.latency >= threshold]


def sweep_may_fall_in(measured: Window, spawned_at: float, interval: float = SWEEP_INTERVAL_S) -> bool:
    """Whether a sweep after the one at start may have begun before `measured` ended: the next one
    begins no earlier than `interval` after the process was spawned."""
    return measured.end >= spawned_at + interval


@dataclass(frozen=True)
class SideVerdict:
    """Whether a stall touched one measured run, with what shows it."""

    stalled: bool
    max_probe_ms: float
    stalls_s: list[list[float]]  # each [start, end], seconds since the origin
    window_s: list[float]  # the measured run, seconds since the origin
    past_first_sweep: bool | None  # None: storage this run did not start, so its sweep times are unknown

    def to_json(self) -> dict[str, object]:
        return {
            "stalled": self.stalled,
            "max_probe_ms": self.max_probe_ms,
            "stalls_s": self.stalls_s,
            "window_s": self.window_s,
            "past_first_sweep": self.past_first_sweep,
        }


def judge(
    measured: Window,
    samples: list[Sample],
    origin: float,
    spawned_at: float | None,
    threshold: float = STALL_THRESHOLD_S,
) -> SideVerdict:
    """The verdict on one measured run from the probe's samples. `origin` is what the times are given
    relative to (Azurite's spawn when this run started it)."""
    touching = [stall for stall in stalls(samples, threshold) if stall.overlaps(measured)]
    inside = [s for s in samples if s.window.overlaps(measured)]
    return SideVerdict(
        stalled=bool(touching),
        max_probe_ms=round(max((s.latency for s in inside), default=0.0) * 1000, 1),
        stalls_s=[stall.relative_to(origin) for stall in touching],
        window_s=measured.relative_to(origin),
        past_first_sweep=None if spawned_at is None else sweep_may_fall_in(measured, spawned_at),
    )


class LatencyProbe:
    """Sends one trivial request at a time to `endpoint` (an Azurite service URL) every `interval`
    seconds from a thread of its own, on a fresh connection each, so that neither the measured
    client's event loop nor a pooled connection that Node has closed delays it. Any answer counts
    (without credentials Azurite refuses it, which is as cheap a request as it serves)."""

    def __init__(self, endpoint: str, interval: float = PROBE_INTERVAL_S, timeout: float = PROBE_TIMEOUT_S) -> None:
        parts = urlsplit(endpoint)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._path = f"{parts.path or '/'}?comp=list"
        self._interval = interval
        self._timeout = timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="azurite-probe", daemon=True)
        self.samples: list[Sample] = []

    def _once(self) -> None:
        sent_at = time.monotonic()
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            connection.request("GET", self._path)
            connection.getresponse().read()
        except OSError:
            pass  # a refused or dropped request still measured how long Azurite took to say so
        finally:
            connection.close()
        self.samples.append(Sample(sent_at, time.monotonic() - sent_at))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._once()
            self._stop.wait(self._interval)

    def __enter__(self) -> LatencyProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(self._timeout)


def queue_endpoint(connection_string: str) -> str:
    """The QueueEndpoint of a storage connection string (Azurite's form)."""
    fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    endpoint = fields.get("QueueEndpoint")
    if endpoint is None:
        raise ValueError("the connection string names no QueueEndpoint")
    return endpoint
