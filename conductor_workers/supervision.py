"""Readiness of a worker service, and keeping exactly one of each loop workflow alive."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from batchcore.conductor import ConductorClient, is_not_found
from batchcore.db import Database
from batchcore.errors import ConductorUnavailable, DomainError
from batchcore.runs.store import RunStore
from batchcore.runs.workflow import (
    LIVE,
    POLLER_CORRELATION_ID,
    POLLER_SWEEP_TASK,
    POLLER_VERSION,
    POLLER_WORKFLOW,
)

CHECK_EVERY_SECONDS = 15
# After failed checks the keeper waits longer, up to this, and never gives up.
MAX_CHECK_BACKOFF_SECONDS = 60
# /healthz fails when no sweep was seen finishing for this many poll intervals (or the floor).
STALE_SWEEP_INTERVALS = 6
STALE_SWEEP_FLOOR_SECONDS = 180
# A loop that stopped sweeping is first decided again (Conductor times out a task only in a
# decider pass); one that has not swept this long past one interval after that is replaced.
# A moving loop sweeps within its interval plus a sweep's response timeout (60 s).
DECIDE_GRACE_SECONDS = 90

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loop:
    """A loop workflow the poller service keeps alive, and the task whose end is a sweep."""

    label: str
    name: str
    version: int
    correlation_id: str
    sweep_task: str


POLLER_LOOP = Loop(
    "poller", POLLER_WORKFLOW, POLLER_VERSION, POLLER_CORRELATION_ID, POLLER_SWEEP_TASK
)


def readiness(db: Database, conductor: ConductorClient) -> dict:
    """Whether the database and Conductor both answer, each named."""
    checks = {}
    try:
        db.ping()
        checks["database"] = "ok"
    except DomainError as exc:
        checks["database"] = exc.message
    checks["conductor"] = "ok" if conductor.healthy() else "unreachable"
    return {"ok": all(v == "ok" for v in checks.values()), "checks": checks}


def ensure_poller_loop(
    conductor: ConductorClient,
    store: RunStore,
    interval: int,
    *,
    name: str = POLLER_WORKFLOW,
    version: int = POLLER_VERSION,
    correlation_id: str = POLLER_CORRELATION_ID,
    inputs: dict | None = None,
    stalled_id: str | None = None,
    stalled_reason: str = "",
) -> str | None:
    """Make sure exactly one poller loop runs; return its id (None: another is checking).

    The loop's id is kept in the database and read back by id, a consistent read; loops
    found by correlation id besides it are duplicates and are terminated. A PAUSED loop sweeps
    nothing: it is replaced. The loop's names are the contract's; tests name a private one.
    A loop is started with `inputs` besides its interval (the poller loop's parallelism).
    `stalled_id`, when it is still the recorded loop, is terminated with `stalled_reason` and
    replaced: under the lock, so that of several keepers that saw it stall one replaces it.
    """
    with store.poller_loop_lock() as loop:
        if loop is None:
            return None
        recorded = loop.workflow_id
        recorded_status = _status(conductor, recorded) if recorded else None
        if stalled_id is not None and recorded == stalled_id and recorded_status in LIVE:
            conductor.terminate(stalled_id, stalled_reason)
            log.warning("replaced stalled %s loop %s: %s", name, stalled_id, stalled_reason)
            recorded_status = "TERMINATED"
        keep = recorded if recorded_status == "RUNNING" else None
        found = [
            wf
            for wf in conductor.correlated(name, correlation_id)
            if wf.get("status") in LIVE and wf["workflowId"] not in (keep, stalled_id)
        ]
        running = [wf["workflowId"] for wf in found if wf["status"] == "RUNNING"]
        paused = [wf["workflowId"] for wf in found if wf["status"] != "RUNNING"]
        if recorded_status == "PAUSED" and recorded not in paused:
            paused.append(recorded)
        if keep is None and running:
            keep = running.pop(0)
        if keep is None:
            start_input = {"poll_interval_seconds": interval, **(inputs or {})}
            keep = conductor.start_workflow(name, version, correlation_id, start_input)
            log.info("started %s loop %s (interval %ss)", name, keep, interval)
        for duplicate in running:
            conductor.terminate(duplicate, f"duplicate {name} loop; {keep} is kept")
            log.warning("terminated duplicate %s loop %s", name, duplicate)
        for stopped in paused:
            conductor.terminate(stopped, f"paused {name} loop sweeps nothing; replaced by {keep}")
            log.warning("replaced paused %s loop %s by %s", name, stopped, keep)
        loop.record(keep)
        return keep


def _status(conductor: ConductorClient, workflow_id: str) -> str | None:
    """The workflow's status, or None when Conductor does not know it."""
    try:
        workflow = conductor.get_workflow(workflow_id, include_tasks=False)
    except ConductorUnavailable as exc:
        if is_not_found(exc):
            return None
        raise
    return workflow.get("status")


def last_sweep_end(
    conductor: ConductorClient, loop_id: str, sweep_task: str = POLLER_LOOP.sweep_task
) -> int | None:
    """When the loop's latest completed sweep task ended (Conductor's epoch ms)."""
    workflow = conductor.get_workflow(loop_id, include_tasks=True)
    ends = [
        task.get("endTime") or 0
        for task in workflow.get("tasks", [])
        if task.get("taskDefName") == sweep_task and task.get("status") == "COMPLETED"
    ]
    return max(ends, default=None) or None


@dataclass
class LoopKeeper:
    """Checks its loop every CHECK_EVERY_SECONDS from a daemon thread that survives any
    error, and says whether the loop is kept and sweeping (the poller's /healthz). A loop
    RUNNING but not seen finishing a sweep for the stale limit is decided again, then
    replaced. `store` holds the loop's id and its lock (RunStore for the poller loop,
    NotificationStore for the notifier loop)."""

    conductor: ConductorClient
    store: RunStore
    interval: int
    stop: threading.Event
    check_every: float = CHECK_EVERY_SECONDS
    clock: Callable[[], float] = time.monotonic
    loop: Loop = POLLER_LOOP
    inputs: dict = field(default_factory=dict)
    loop_id: str | None = None
    failures: int = 0
    last_error: str | None = None
    thread: threading.Thread | None = None
    decide_grace_seconds: float = DECIDE_GRACE_SECONDS
    replacements: int = 0
    _sweep_end: int | None = None
    _sweep_seen_at: float = field(default=0.0)
    _decided_at: float | None = None

    def start(self) -> LoopKeeper:
        self._sweep_seen_at = self.clock()
        name = f"{self.loop.label}-loop-keeper"
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()
        return self

    def check(self) -> None:
        """One check: keep one running loop, note when a new sweep was seen ending, and
        decide again, then replace, a loop whose sweeps stopped finishing."""
        loop_id = self._ensure()
        if loop_id is None:  # another process is checking; it sees the sweeps too
            self._sweep_seen_at = self.clock()
            return
        ended = last_sweep_end(self.conductor, loop_id, self.loop.sweep_task)
        if ended is not None and ended != self._sweep_end:
            self._sweep_end = ended
            self._sweep_seen_at = self.clock()
            self._decided_at = None
        elif self.clock() - self._sweep_seen_at > self.stale_after():
            self._unstick(loop_id)

    def stale_after(self) -> int:
        """Seconds without a sweep seen finishing after which the loop counts as stalled."""
        return max(STALE_SWEEP_INTERVALS * self.interval, STALE_SWEEP_FLOOR_SECONDS)

    def _ensure(self, stalled_id: str | None = None, stalled_reason: str = "") -> str | None:
        loop = self.loop
        loop_id = ensure_poller_loop(
            self.conductor,
            self.store,
            self.interval,
            name=loop.name,
            version=loop.version,
            correlation_id=loop.correlation_id,
            inputs=self.inputs,
            stalled_id=stalled_id,
            stalled_reason=stalled_reason,
        )
        if loop_id is not None and loop_id != self.loop_id:
            # A new loop (started here or by another keeper) is timed from now.
            self.loop_id = loop_id
            self._sweep_end, self._decided_at = None, None
            self._sweep_seen_at = self.clock()
        return loop_id

    def _unstick(self, loop_id: str) -> None:
        quiet = self.clock() - self._sweep_seen_at
        if self._decided_at is None:
            self.conductor.decide(loop_id)
            self._decided_at = self.clock()
            log.warning(
                "no %s sweep seen finishing for %.0f s: asked Conductor to decide %s loop %s",
                self.loop.sweep_task,
                quiet,
                self.loop.name,
                loop_id,
            )
            return
        if self.clock() - self._decided_at < self.interval + self.decide_grace_seconds:
            return
        reason = (
            f"no {self.loop.sweep_task} sweep seen finishing for {quiet:.0f} s, nor after a new "
            f"decision; replaced by the {self.loop.label} loop keeper"
        )
        if self._ensure(loop_id, reason) not in (None, loop_id):
            self.replacements += 1

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.check()
                self.failures, self.last_error = 0, None
            except DomainError as exc:
                self._failed(exc.message)
            except Exception as exc:  # a bug or a surprise must not end the keeper
                log.exception("checking the %s loop failed", self.loop.name)
                self._failed(f"{type(exc).__name__}: {exc}")
            wait = min(self.check_every * 2 ** min(self.failures, 6), MAX_CHECK_BACKOFF_SECONDS)
            self.stop.wait(max(wait, self.check_every))

    def _failed(self, message: str) -> None:
        self.failures += 1
        self.last_error = message[:300]
        log.warning(
            "could not check the %s loop (%d in a row): %s", self.loop.name, self.failures, message
        )

    def report(self) -> dict:
        """{"ok": ...} with the keeper's and the loop's state, for /healthz."""
        alive = self.thread is not None and self.thread.is_alive()
        quiet = self.clock() - self._sweep_seen_at
        stale_after = self.stale_after()
        problems = []
        if not alive:
            problems.append(f"the {self.loop.label} loop keeper thread is not running")
        if quiet > stale_after:
            problems.append(f"no sweep seen finishing for {quiet:.0f} s (limit {stale_after} s)")
        return {
            "ok": not problems,
            "keeper_alive": alive,
            "loop_id": self.loop_id,
            "seconds_since_sweep_seen": round(quiet),
            "failed_checks_in_a_row": self.failures,
            "stalled_loops_replaced": self.replacements,
            "last_error": self.last_error,
            "problems": problems,
        }


def keep_poller_loop_running(
    conductor: ConductorClient,
    store: RunStore,
    interval: int,
    stop: threading.Event,
    parallelism: int = 1,
) -> LoopKeeper:
    """Start the keeper of the one poller loop, whose iterations fork `parallelism` sweeps;
    its report() feeds the poller's /healthz."""
    inputs = {"poll_parallelism": parallelism}
    return LoopKeeper(conductor, store, interval, stop, inputs=inputs).start()
