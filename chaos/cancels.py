"""The cancel_races scenario (issue 13): runs cancelled at every moment, workers SIGKILLed."""

from __future__ import annotations

import collections
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import requests

from .harness import Stack

MOMENTS = ("before_submit", "during_submit", "queued", "running", "at_end")
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
ACTIVE_JOB = ("QUEUED", "RUNNING")
# Runs cancelled "during submit" have inputs under this prefix: the simulator holds their
# submit's answer (after creating the job) so the cancel lands while the submit is in flight.
HELD_PREFIX = "s3://chaos-cancel-held/"
HOLD_SECONDS = 3.0
# Programs SIGKILLed in turn while the runs arrive (supervisord restarts them).
VICTIMS = ("submit-workers", "poller") * 3


@dataclass(frozen=True)
class Plan:
    """One run: its job's times and outcome, when it is cancelled, and whether twice."""

    moment: str
    queue_seconds: float
    duration_seconds: float
    cancel_seconds: float
    outcome: str
    # Where in its moment's window the cancel lands (0..1), and for "at_end" how far from
    # the job's scheduled end.
    fraction: float
    end_offset: float
    # A second cancel: None for none, 0 for both at once, else seconds after the first.
    again_after: float | None


def plan_runs(count: int, rng: random.Random) -> list[Plan]:
    """`count` plans, the moments in equal shares, ≈20 % cancelled twice."""
    plans = []
    for i in range(count):
        moment = MOMENTS[i % len(MOMENTS)]
        cancel_seconds = rng.uniform(0, 3)
        twice = rng.random() < 0.2
        plans.append(
            Plan(
                moment=moment,
                queue_seconds=round(rng.uniform(1 if moment == "queued" else 0, 3), 2),
                duration_seconds=round(rng.uniform(0.5, 20), 2),
                cancel_seconds=round(cancel_seconds, 2),
                outcome="FAILED" if rng.random() < 0.15 else "SUCCEEDED",
                fraction=rng.random(),
                end_offset=rng.uniform(-(cancel_seconds + 1.5), 2.5),
                again_after=(rng.choice((0.0, rng.uniform(0.2, 4))) if twice else None),
            )
        )
    rng.shuffle(plans)
    return plans


def judge(run_ids: list[str], runs: dict[str, dict], jobs: dict[str, list[dict]]) -> dict:
    """Each run against the simulator's record of its jobs.

    `runs` maps a run id to its status, workbench_job_id and cancel_reason. Lost: not ended.
    A job left running: a run with a job still QUEUED/RUNNING, a CANCELLED run whose job ran
    to its own end, or a run whose outcome is not its job's (COMPLETED⇔SUCCEEDED; FAILED⇔
    FAILED, or CANCELLED when the run was not cancelled by a client: its deadline, or a job
    found after the run ended), or that names another job than the Workbench's.
    """
    lost = left = duplicates = active = mismatched = 0
    statuses: collections.Counter = collections.Counter()
    for run_id in run_ids:
        run = runs.get(run_id) or {"status": "MISSING"}
        run_jobs = jobs.get(run_id, [])
        statuses[run["status"]] += 1
        duplicates += len(run_jobs) > 1
        still_active = any(j["status"] in ACTIVE_JOB for j in run_jobs)
        active += still_active
        if run["status"] not in TERMINAL:
            lost += 1
            left += still_active
            continue
        named = run.get("workbench_job_id")
        wrong = (
            not all(_agrees(run, job) for job in run_jobs)
            or (not run_jobs and run["status"] == "COMPLETED")
            or (named is not None and named not in {job["job_id"] for job in run_jobs})
        )
        mismatched += wrong and not still_active
        left += still_active or wrong
    return {
        "runs_accepted": len(run_ids),
        "runs_terminal": len(run_ids) - lost,
        "runs_lost": lost,
        "jobs_left_running": left,
        "duplicate_workbench_jobs": duplicates,
        "jobs_active_at_end": active,
        "runs_outcome_mismatched": mismatched,
        "runs_completed": statuses["COMPLETED"],
        "runs_failed": statuses["FAILED"],
        "runs_cancelled": statuses["CANCELLED"],
        "runs_cancelled_without_job": sum(
            runs.get(i, {}).get("status") == "CANCELLED" and not jobs.get(i) for i in run_ids
        ),
    }


def offending(run_ids: list[str], runs: dict[str, dict], jobs: dict[str, list[dict]]) -> list:
    """The runs that make the verdict fail: lost, with a job left running, or two jobs."""
    zeros = ("runs_lost", "jobs_left_running", "duplicate_workbench_jobs")
    return [i for i in run_ids if any(judge([i], runs, jobs)[k] for k in zeros)]


def _agrees(run: dict, job: dict) -> bool:
    """Whether an ended run's outcome is this job's."""
    if run["status"] == "CANCELLED":
        return job["status"] == "CANCELLED"
    if run["status"] == "COMPLETED":
        return job["status"] == "SUCCEEDED"
    if job["status"] == "CANCELLED":
        return run.get("cancel_reason") in ("deadline", "ended")
    return job["status"] == "FAILED"


class JobWatch:
    """One reader of the simulator's job list for every run waiting on its job to appear."""

    def __init__(self, stack: Stack, every: float = 0.4):
        self.stack, self.every = stack, every
        self.created: dict[str, float] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-watch", daemon=True)

    def __enter__(self) -> JobWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                items = requests.get(f"{self.stack.admin}/_sim/jobs", timeout=10).json()["items"]
            except (requests.RequestException, ValueError):
                continue
            with self._changed:
                for job in items:
                    self.created.setdefault(job["pipeline_run_id"], _epoch(job["created_at"]))
                self._changed.notify_all()

    def job_created_at(self, run_id: str, timeout: float) -> float | None:
        """When the Workbench created the run's job (epoch seconds), None if not in time."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while run_id not in self.created:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)
            return self.created[run_id]


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@dataclass
class Tally:
    """What the clients saw: the runs accepted with their plans, and every answer."""

    accepted: dict[str, Plan]
    answers: collections.Counter
    lock: threading.Lock

    def count(self, key: str) -> None:
        with self.lock:
            self.answers[key] += 1


def _body(plan: Plan) -> dict:
    tag = uuid.uuid4().hex
    held = plan.moment == "during_submit"
    return {
        "pipeline": "demo-batch",
        "mode": "BATCH",
        "input_path_prefix": f"{HELD_PREFIX if held else 's3://chaos-in/'}{tag}",
        "output_path_prefix": f"s3://chaos-out/{tag}",
        "parameters": {
            "simulate": {
                "outcome": plan.outcome,
                "queue_seconds": plan.queue_seconds,
                "duration_seconds": plan.duration_seconds,
                "cancel_seconds": plan.cancel_seconds,
            }
        },
    }


def _cancel_at(plan: Plan, created: float) -> float:
    """The epoch second the plan's cancel is due, from when its job was created."""
    started = created + plan.queue_seconds
    if plan.moment == "during_submit":
        return created + plan.fraction * HOLD_SECONDS * 0.6
    if plan.moment == "queued":
        return created + plan.fraction * plan.queue_seconds
    if plan.moment == "running":
        return started + plan.fraction * plan.duration_seconds
    return started + plan.duration_seconds + plan.end_offset


POST_ATTEMPTS = 5


def _cancel(stack: Stack, tally: Tally, run_id: str, which: str) -> None:
    try:
        resp = stack.session.post(
            f"{stack.gateway}/api/v1/pipeline-runs/{run_id}/cancel", timeout=30
        )
    except requests.RequestException as exc:
        tally.count(f"{which}.{type(exc).__name__}")
        return
    status = resp.json().get("status") if resp.status_code == 202 else None
    tally.count(f"{which}.{resp.status_code}" + ("_cancelled_at_once" * (status == "CANCELLED")))


def _drive(stack: Stack, watch: JobWatch, tally: Tally, plan: Plan) -> None:
    """Post one run, wait for its moment, cancel it (twice for some)."""
    # As a client would: a 503 (Conductor or the database busy) is retried with the same
    # Idempotency-Key after its Retry-After, so every planned run is accepted in the end.
    body, key = _body(plan), f"cancel-races-{uuid.uuid4().hex}"
    for _ in range(POST_ATTEMPTS):
        try:
            resp = stack.session.post(
                f"{stack.gateway}/api/v1/pipeline-runs",
                json=body,
                headers={"Idempotency-Key": key},
                timeout=40,
            )
        except requests.RequestException as exc:
            tally.count(f"post.{type(exc).__name__}")
            time.sleep(2)
            continue
        tally.count(f"post.{resp.status_code}")
        if resp.status_code != 503:
            break
        time.sleep(float(resp.headers.get("Retry-After") or 2))
    else:
        return
    if resp.status_code not in (200, 202):  # 200: the key replays a run already accepted
        return
    run_id = resp.json()["id"]
    with tally.lock:
        tally.accepted[run_id] = plan
    if plan.moment != "before_submit":
        # A submit task killed with its worker is handed out again after its response timeout.
        created = watch.job_created_at(run_id, timeout=90)
        if created is None:
            tally.count("moment_missed_no_job")
        else:
            time.sleep(max(0.0, _cancel_at(plan, created) - time.time()))
    if plan.again_after == 0:
        both = threading.Thread(target=_cancel, args=(stack, tally, run_id, "cancel_again"))
        both.start()
        _cancel(stack, tally, run_id, "cancel")
        both.join()
        return
    _cancel(stack, tally, run_id, "cancel")
    if plan.again_after is not None:
        time.sleep(plan.again_after)
        _cancel(stack, tally, run_id, "cancel_again")


def _rows(stack: Stack, run_ids: list[str]) -> dict[str, dict]:
    rows = stack.sql(
        "SELECT id::text, status, workbench_job_id, cancel_reason FROM pipeline_runs "
        "WHERE id = ANY(%s::uuid[])",
        (run_ids,),
    )
    return {r[0]: {"status": r[1], "workbench_job_id": r[2], "cancel_reason": r[3]} for r in rows}


def _await(check, timeout: float) -> float:
    """Poll `check` until true or `timeout`; return the seconds waited."""
    started = time.monotonic()
    while not check() and time.monotonic() - started < timeout:
        time.sleep(1)
    return time.monotonic() - started


def _too_late(stack: Stack, run_ids: list[str]) -> tuple[int, int]:
    """(runs whose job ended before their cancel took, CANCELLED runs whose history yet says
    the cancel came too late, on an event that did not end them)."""
    return stack.sql(
        "SELECT count(DISTINCT e.run_id) FILTER (WHERE e.status IN ('COMPLETED', 'FAILED')),"
        " count(DISTINCT e.run_id) FILTER (WHERE r.status = 'CANCELLED')"
        " FROM pipeline_run_events e JOIN pipeline_runs r ON r.id = e.run_id"
        " WHERE e.run_id = ANY(%s::uuid[]) AND e.details->>'cancel_too_late' = 'true'",
        (run_ids,),
    )[0]


def _show(stack: Stack, run_ids: list[str], runs: dict, jobs: dict) -> None:
    """Print what a failed verdict is about: each offending run's history and its jobs."""
    for run_id in run_ids[:10]:
        resp = stack.session.get(f"{stack.gateway}/api/v1/pipeline-runs/{run_id}", timeout=10)
        print(f"   run {run_id}: {runs.get(run_id)}; jobs {jobs.get(run_id)}", flush=True)
        for event in resp.json().get("history", []) if resp.ok else []:
            print(f"     {event['at']} {event['source']}: {event['message']}", flush=True)


def cancel_races(stack: Stack, runs: int = 300, rate: float = 3.0, seed: int | None = None) -> dict:
    """300 runs cancelled at random moments (before, during submit, queued, running, at the end).

    About a fifth are cancelled twice; the submission workers and the poller are SIGKILLed
    three times each meanwhile. Every run ends; a CANCELLED run's job is CANCELLED (or none
    was created), every other run has its job's outcome, and no run has two jobs.
    """
    seed = random.randrange(2**32) if seed is None else seed
    plans = plan_runs(runs, random.Random(seed))
    tally = Tally({}, collections.Counter(), threading.Lock())
    fired_before = stack.sim_faults_injected()
    stack.faults(
        slow={
            "seconds": HOLD_SECONDS,
            "rate": 1.0,
            "only": "submit",
            "input_path_prefixes": [HELD_PREFIX],
        }
    )
    kills = 0
    kill_every = runs / rate / (len(VICTIMS) + 1)
    started = time.monotonic()
    with JobWatch(stack) as watch, ThreadPoolExecutor(200, "cancel-race") as pool:
        for i, plan in enumerate(plans):
            due = started + i / rate
            while kills < len(VICTIMS) and started + (kills + 1) * kill_every <= due:
                time.sleep(max(0.0, started + (kills + 1) * kill_every - time.monotonic()))
                stack.kill(VICTIMS[kills])
                kills += 1
            time.sleep(max(0.0, due - time.monotonic()))
            pool.submit(_drive, stack, watch, tally, plan)
    stack.clear_faults()
    run_ids = list(tally.accepted)

    def ended() -> bool:
        return all(r["status"] in TERMINAL for r in _rows(stack, run_ids).values())

    waited = _await(ended, timeout=420)

    # The jobs of ended runs are cancelled at the poller's next sweeps, then take effect.
    def settled() -> bool:
        jobs = stack.sim_jobs()
        return not any(j["status"] in ACTIVE_JOB for i in run_ids for j in jobs.get(i, []))

    settle = _await(settled, timeout=60)
    ended_ids = [i for i, r in _rows(stack, run_ids).items() if r["status"] in TERMINAL]
    _await(lambda: not stack.open_workflows(ended_ids), timeout=60)
    runs_now, jobs = _rows(stack, run_ids), stack.sim_jobs()
    verdict = judge(run_ids, runs_now, jobs)
    _show(stack, offending(run_ids, runs_now, jobs), runs_now, jobs)
    answers = dict(tally.answers)
    too_late, told_too_late = _too_late(stack, run_ids) if run_ids else (0, 0)
    return {
        **verdict,
        "workflows_left_running": len(stack.open_workflows(ended_ids)),
        "runs_cancelled_at_workbench": sum(
            runs_now.get(i, {}).get("status") == "CANCELLED" and bool(jobs.get(i)) for i in run_ids
        ),
        "runs_cancel_too_late": too_late,
        "runs_cancelled_yet_told_too_late": told_too_late,
        "cancelled_at_once": sum(v for k, v in answers.items() if k.endswith("_at_once")),
        "repeat_cancels_409": answers.get("cancel_again.409", 0),
        "moments": dict(collections.Counter(p.moment for p in tally.accepted.values())),
        "cancelled_twice": sum(p.again_after is not None for p in tally.accepted.values()),
        "answers": answers,
        "process_kills": kills,
        "faults_injected": kills + stack.sim_faults_injected() - fired_before,
        "seconds_to_terminal": round(waited),
        "seconds_to_settle": round(settle),
        "seed": str(seed),
    }
