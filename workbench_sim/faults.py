"""Faults that tests switch on at run time, and the decision of which fire on each API call."""

from __future__ import annotations

import math
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import hostile
from .jobs import Clock, ValidationError, iso

ERROR_5XX = "error_5xx"
RATE_LIMIT = "rate_limit"
SLOW = "slow"
LOSE_SUBMIT_ANSWER = "lose_submit_answer"
REFUSE_CONNECTIONS = "refuse_connections"
KINDS = (ERROR_5XX, RATE_LIMIT, SLOW, LOSE_SUBMIT_ANSWER, REFUSE_CONNECTIONS, *hostile.KINDS)

ENDPOINTS = ("submit", "status", "cancel")
# What a per-call fault may be aimed at, so that a test's fault fires only on its own runs.
TARGETS = ("run_ids", "job_ids", "input_path_prefixes")
MAX_TARGETS = 1000
MAX_SLOW_SECONDS = 300.0
MAX_REFUSE_SECONDS = 3600.0

RefuseListener = Callable[[float], None]
"""Told the seconds to refuse connections for; 0 means accept again now."""


@dataclass(frozen=True)
class CallTarget:
    """What one API call is about, as far as the simulator can tell."""

    run_id: str | None = None
    job_id: str | None = None
    input_path_prefix: str | None = None


@dataclass
class _Fault:
    """One armed per-call fault: it fires `count` more times, or on a `rate` share of calls."""

    count: int | None
    rate: float | None
    status: int | None = None
    retry_after: int | str | None = None
    seconds: float | None = None
    # A hostile kind's variant (or, for unknown_status, the status it answers).
    variant: str | None = None
    # Limit the fault to one endpoint ("submit", "status" or "cancel") so tests can aim it.
    only: str | None = None
    # Limit it to calls about these runs, jobs or input prefixes (any one matching); None: all.
    run_ids: frozenset[str] | None = None
    job_ids: frozenset[str] | None = None
    input_path_prefixes: tuple[str, ...] | None = None

    def aims_at(self, endpoint: str | None, target: CallTarget) -> bool:
        """Whether this fault applies to a call to `endpoint` about `target`."""
        if self.only is not None and self.only != endpoint:
            return False
        if self.run_ids is None and self.job_ids is None and self.input_path_prefixes is None:
            return True
        prefix = target.input_path_prefix
        return bool(
            (self.run_ids and target.run_id in self.run_ids)
            or (self.job_ids and target.job_id in self.job_ids)
            or (prefix and self.input_path_prefixes and prefix.startswith(self.input_path_prefixes))
        )

    def describe(self) -> dict[str, Any]:
        shown = {
            "only": self.only,
            "run_ids": sorted(self.run_ids) if self.run_ids is not None else None,
            "job_ids": sorted(self.job_ids) if self.job_ids is not None else None,
            "input_path_prefixes": (
                list(self.input_path_prefixes) if self.input_path_prefixes is not None else None
            ),
            "status": self.status,
            "retry_after": self.retry_after,
            "seconds": self.seconds,
            "variant": self.variant,
            "remaining": self.count,
            "rate": self.rate,
        }
        return {k: v for k, v in shown.items() if v is not None}


@dataclass(frozen=True)
class CallFaults:
    """What to do to one API call: wait first, then maybe answer with an error status."""

    slow_seconds: float = 0.0
    status: int | None = None
    retry_after: int | str | None = None
    kind: str | None = None
    # A 200 answer that replaces the real one (html_200, malformed_json), given before any work.
    replace: str | None = None
    # Fields to overwrite in a 2xx JSON answer, from the hostile kinds that change them.
    changes: dict[str, Any] = field(default_factory=dict)
    trickle_seconds: float = 0.0


class FaultInjector:
    """The armed faults, their counters, and the listeners that open and close the API port."""

    def __init__(self, *, clock: Clock, rng: random.Random | None = None):
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._faults: dict[str, _Fault] = {}
        self._refuse_until: float | None = None
        self._injected: Counter[str] = Counter()
        self._listeners: list[RefuseListener] = []

    def add_refuse_listener(self, listener: RefuseListener) -> None:
        """Register the server hook that really closes and reopens the API listening socket."""
        self._listeners.append(listener)

    def configure(self, spec: Any) -> None:
        """Arm the kinds named in spec (replacing those kinds; null disarms one)."""
        parsed, refuse_seconds = _parse_spec(spec)
        with self._lock:
            for kind, fault in parsed.items():
                if fault is None:
                    self._faults.pop(kind, None)
                else:
                    self._faults[kind] = fault
            if refuse_seconds is not None:
                self._refuse_until = self._clock() + refuse_seconds if refuse_seconds else None
                if refuse_seconds:
                    self._injected[REFUSE_CONNECTIONS] += 1
        if refuse_seconds is not None:
            self._notify(refuse_seconds)

    def clear(self) -> None:
        """Disarm every fault and accept connections again at once."""
        with self._lock:
            self._faults.clear()
            self._refuse_until = None
        # Always tell the server: its own timer may still be running after ours expired.
        self._notify(0.0)

    def reset(self) -> None:
        """Disarm everything and forget the counters."""
        self.clear()
        with self._lock:
            self._injected.clear()

    def snapshot(self) -> dict[str, Any]:
        """The armed faults as GET /_sim/faults shows them."""
        now = self._clock()
        with self._lock:
            shown = {kind: fault.describe() for kind, fault in self._faults.items()}
            if self._refuse_until is not None and self._refuse_until > now:
                shown[REFUSE_CONNECTIONS] = {
                    "until": iso(self._refuse_until),
                    "remaining_seconds": round(self._refuse_until - now, 3),
                }
        return shown

    def injected(self) -> dict[str, int]:
        """How many times each kind fired."""
        with self._lock:
            return dict(self._injected)

    def on_api_call(
        self, endpoint: str | None = None, target: CallTarget | None = None
    ) -> CallFaults:
        """Decide the faults for one API call, consuming counts of those that fire."""
        target = target or CallTarget()
        with self._lock:
            slow = self._fire(SLOW, endpoint, target)
            # At most one error per call: a 429 wins, so it does not also use up a 5xx count.
            error_kind = RATE_LIMIT
            error = self._fire(RATE_LIMIT, endpoint, target)
            if error is None:
                error_kind, error = ERROR_5XX, self._fire(ERROR_5XX, endpoint, target)
            # One answer replaced at most, and only when no error status already replaces it.
            replace = None
            for kind in hostile.REPLACING if error is None else ():
                if replace is None and self._fire(kind, endpoint, target) is not None:
                    replace = kind
            changes: dict[str, Any] = {}
            for kind in hostile.CHANGING if error is None and replace is None else ():
                fired = self._fire(kind, endpoint, target)
                if fired is not None:
                    changes.update(hostile.changed_fields(kind, fired.variant or "", self._clock()))
            trickle = self._fire(hostile.TRICKLE, endpoint, target)
        delay = slow.seconds if slow is not None and slow.seconds else 0.0
        return CallFaults(
            slow_seconds=delay,
            status=error.status if error is not None else None,
            retry_after=error.retry_after if error is not None else None,
            kind=error_kind if error is not None else replace,
            replace=replace,
            changes=changes,
            trickle_seconds=trickle.seconds or 0.0 if trickle is not None else 0.0,
        )

    def take_lose_submit_answer(self, target: CallTarget | None = None) -> bool:
        """Whether this POST /jobs answer is to be lost (consumes one count if so)."""
        with self._lock:
            return self._fire(LOSE_SUBMIT_ANSWER, "submit", target or CallTarget()) is not None

    def _fire(self, kind: str, endpoint: str | None, target: CallTarget) -> _Fault | None:
        # Called with self._lock held. Calls the fault is not aimed at never use up its count.
        fault = self._faults.get(kind)
        if fault is None or not fault.aims_at(endpoint, target):
            return None
        if fault.count is not None:
            fault.count -= 1
            if fault.count <= 0:
                del self._faults[kind]
        elif self._rng.random() >= (fault.rate or 0.0):
            return None
        self._injected[kind] += 1
        return fault

    def _notify(self, seconds: float) -> None:
        # Outside the lock: the server's hook blocks until the socket is closed or reopened.
        for listener in self._listeners:
            listener(seconds)


def _parse_spec(spec: Any) -> tuple[dict[str, _Fault | None], float | None]:
    """Validate a POST /_sim/faults body in full before anything is armed."""
    details: list[dict[str, str]] = []

    def bad(name: str, rule: str, message: str) -> None:
        details.append({"field": name, "rule": rule, "message": message})

    if not isinstance(spec, dict) or not spec:
        raise ValidationError(
            [
                {
                    "field": "body",
                    "rule": "type",
                    "message": f"give one or more of {', '.join(KINDS)}",
                }
            ]
        )
    parsed: dict[str, _Fault | None] = {}
    refuse_seconds: float | None = None
    for kind, raw in spec.items():
        if kind not in KINDS:
            bad(kind, "unknown", f"unknown fault kind; known kinds are {', '.join(KINDS)}")
            continue
        if raw is None:
            parsed[kind] = None
            if kind == REFUSE_CONNECTIONS:
                refuse_seconds = 0.0
            continue
        if not isinstance(raw, dict):
            bad(kind, "type", f"{kind} must be a JSON object (or null to disarm it)")
            continue
        allowed = _ALLOWED[kind]
        for key in sorted(set(raw) - allowed):
            bad(f"{kind}.{key}", "unknown", f"{kind} takes only {', '.join(sorted(allowed))}")
        if kind == REFUSE_CONNECTIONS:
            refuse_seconds = _number(raw, kind, "seconds", bad, low=0.0, high=MAX_REFUSE_SECONDS)
            if refuse_seconds == 0.0:
                bad(f"{kind}.seconds", "range", f"{kind}.seconds must be more than 0")
            continue
        parsed[kind] = _parse_call_fault(kind, raw, bad)
    if details:
        raise ValidationError(details)
    return parsed, refuse_seconds


_ALLOWED = {
    ERROR_5XX: {"status", "count", "rate", "retry_after", "only", *TARGETS},
    RATE_LIMIT: {"count", "rate", "retry_after", "only", *TARGETS},
    SLOW: {"seconds", "count", "rate", "only", *TARGETS},
    LOSE_SUBMIT_ANSWER: {"count", "rate", "run_ids", "input_path_prefixes"},
    REFUSE_CONNECTIONS: {"seconds"},
    hostile.POISON_ERROR_MESSAGE: {"variant", "count", "rate", "only", *TARGETS},
    hostile.ODD_TIMESTAMPS: {"variant", "count", "rate", "only", *TARGETS},
    hostile.UNKNOWN_STATUS: {"status", "count", "rate", "only", *TARGETS},
    hostile.HTML_200: {"count", "rate", "only", *TARGETS},
    hostile.MALFORMED_JSON: {"count", "rate", "only", *TARGETS},
    hostile.TRICKLE: {"seconds", "count", "rate", "only", *TARGETS},
}


def _parse_call_fault(kind: str, raw: dict[str, Any], bad: Callable[..., None]) -> _Fault:
    count = rate = None
    if ("count" in raw) == ("rate" in raw):
        bad(kind, "count_or_rate", f"{kind} needs exactly one of count or rate")
    elif "count" in raw:
        count = _integer(raw, kind, "count", bad, low=1)
    else:
        rate = _number(raw, kind, "rate", bad, low=0.0, high=1.0)
    fault = _Fault(count=count, rate=rate, only=raw.get("only"))
    if fault.only not in (None, *ENDPOINTS):
        bad(f"{kind}.only", "enum", f"{kind}.only must be one of {', '.join(ENDPOINTS)}")
    run_ids = _strings(raw, kind, "run_ids", bad)
    job_ids = _strings(raw, kind, "job_ids", bad)
    prefixes = _strings(raw, kind, "input_path_prefixes", bad)
    fault.run_ids = frozenset(run_ids) if run_ids is not None else None
    fault.job_ids = frozenset(job_ids) if job_ids is not None else None
    fault.input_path_prefixes = tuple(prefixes) if prefixes is not None else None
    if kind == ERROR_5XX:
        fault.status = _integer(raw, kind, "status", bad, low=500, high=599, default=503)
    if kind == RATE_LIMIT:
        fault.status = 429
    if kind in (ERROR_5XX, RATE_LIMIT):
        default = 1 if kind == RATE_LIMIT else None
        if isinstance(raw.get("retry_after"), str):
            fault.retry_after = hostile.parse_header_value(raw, kind, "retry_after", bad)
        else:
            fault.retry_after = _integer(raw, kind, "retry_after", bad, low=0, default=default)
    if kind in (SLOW, hostile.TRICKLE):
        fault.seconds = _number(raw, kind, "seconds", bad, low=0.0, high=MAX_SLOW_SECONDS)
    if kind in hostile.KINDS:
        fault.variant = hostile.parse_variant(kind, raw, bad)
    return fault


def _strings(
    raw: dict[str, Any], kind: str, key: str, bad: Callable[..., None]
) -> list[str] | None:
    if key not in raw:
        return None
    value = raw[key]
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_TARGETS
        or not all(isinstance(item, str) and item for item in value)
    ):
        bad(
            f"{kind}.{key}",
            "type",
            f"{kind}.{key} must be a list of 1 to {MAX_TARGETS} non-empty strings",
        )
        return None
    return value


def _integer(
    raw: dict[str, Any],
    kind: str,
    key: str,
    bad: Callable[..., None],
    *,
    low: int,
    high: int | None = None,
    default: int | None = None,
) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        bad(f"{kind}.{key}", "range", f"{kind}.{key} must be an integer >= {low}")
        return None
    if high is not None and value > high:
        bad(f"{kind}.{key}", "range", f"{kind}.{key} must be an integer <= {high}")
        return None
    return value


def _number(
    raw: dict[str, Any],
    kind: str,
    key: str,
    bad: Callable[..., None],
    *,
    low: float,
    high: float,
) -> float | None:
    value = raw.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        bad(f"{kind}.{key}", "range", f"{kind}.{key} must be a number from {low:g} to {high:g}")
        return None
    return float(value)
