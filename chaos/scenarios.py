"""The fault scenarios of `make chaos`, each bounded in time and count."""

from __future__ import annotations

import threading
import time

from stack import supervisor

from .cancels import cancel_races
from .harness import Load, Stack, verify
from .hostile import hostile_workbench
from .webhooks import webhook_receiver_down


def _in_background(load: Load, seconds: float) -> threading.Thread:
    thread = threading.Thread(target=load.run, args=(seconds,), daemon=True)
    thread.start()
    return thread


def process_kills(stack: Stack, rate: float = 10.0, seconds: float = 60.0) -> dict:
    """Gateway worker, submission workers and poller SIGKILLed three times each under load.

    Runs arrive at a steady rate; supervisord (and gunicorn) restart what was killed.
    """
    load = Load(stack, rate)
    loader = _in_background(load, seconds)
    kills = 0
    victims = ("gateway-worker", "submit-workers", "poller") * 3
    for victim in victims:
        time.sleep(seconds / (len(victims) + 1))
        if victim == "gateway-worker":
            kills += stack.kill_gateway_worker()
        else:
            stack.kill(victim)
            kills += 1
    loader.join()
    result = verify(stack, load.accepted, timeout=420)
    return {**result, "faults_injected": kills, "answers": dict(load.answers)}


def ambiguous_submits(stack: Stack) -> dict:
    """Lost submit answers, and workers killed between the Workbench answer and the commit.

    Still exactly one Workbench job per run.
    """
    stack.faults(lose_submit_answer={"count": 10})
    lost = Load(stack, rate_per_second=5)
    lost.run(4)
    stack.clear_faults()
    stack.faults(slow={"seconds": 5, "count": 5, "only": "submit"})
    killed = Load(stack, rate_per_second=5)
    killed.run(1)
    time.sleep(2.5)  # the jobs exist now; their answers are still on the way
    stack.kill("submit-workers")
    stack.clear_faults()
    result = verify(stack, lost.accepted + killed.accepted, timeout=300)
    return {**result, "faults_injected": 10 + 5 + 1}


def postgres_crash(stack: Stack, rate: float = 4.0) -> dict:
    """PostgreSQL stopped immediately for 10 s, then its backends killed every 2 s for 60 s.

    The gateway answers 503 (never 500, never hangs) and no service of ours is restarted to
    recover. Killed backends can kill Conductor's unack processor (conductor-oss/conductor#326):
    the stack's conductor-watch then restarts Conductor, and the reconciler repairs what was
    stuck meanwhile; both are counted.
    """
    before = {n: stack.pid(n) for n in ("gateway", "submit-workers", "poller")}
    restarts_before = stack.conductor_restarts()
    load = Load(stack, rate)
    loader = _in_background(load, 85)
    time.sleep(5)
    supervisor.ctl("signal", "QUIT", "postgres", check=False, quiet=True)  # immediate shutdown
    supervisor.ctl("stop", "postgres", check=False, quiet=True)
    time.sleep(10)
    supervisor.ctl("start", "postgres", check=False, quiet=True)
    faults = 1
    for _ in range(30):
        time.sleep(2)
        try:
            stack.sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname IN ('pipelines', 'conductor') AND pid <> pg_backend_pid()",
                url_key="PG_ADMIN_URL",
            )
            faults += 1
        except Exception:  # noqa: BLE001 - the server may still be starting
            pass
    loader.join()
    # A stuck queue is detected 180 s after the fault and cured about two minutes later.
    result = verify(stack, load.accepted, timeout=540)
    after = {n: stack.pid(n) for n in before}
    return {
        **result,
        "faults_injected": faults,
        "conductor_restarts": stack.conductor_restarts() - restarts_before,
        "stuck_workflows_repaired": stack.runs_repaired_by_reconciler(load.accepted),
        "answers": dict(load.answers),
        "answers_500": load.answers.get("500", 0),
        "slowest_answer_s": round(load.slowest_answer_s, 2),
        "services_restarted": sum(before[n] != after[n] for n in before),
    }


def workbench_degraded(stack: Stack, rate: float = 5.0) -> dict:
    """30 % of Workbench calls fail (5xx, or 429 with Retry-After), then 60 s refused.

    No run fails before its retry budget is spent; all finish after recovery.
    """
    fired_before = stack.sim_faults_injected()
    stack.faults(
        error_5xx={"status": 503, "rate": 0.15}, rate_limit={"rate": 0.15, "retry_after": 2}
    )
    load = Load(stack, rate)
    load.run(40)
    stack.clear_faults()
    stack.faults(refuse_connections={"seconds": 60})
    load.run(20)
    time.sleep(40)
    stack.clear_faults()
    result = verify(stack, load.accepted, timeout=420)
    early = (
        stack.sql(
            "SELECT count(*) FROM pipeline_runs WHERE id = ANY(%s::uuid[]) AND status = 'FAILED' "
            "AND workbench_job_id IS NULL AND coalesce((error_details->>'attempts')::int, 0) < 5",
            (load.accepted,),
        )[0][0]
        if load.accepted
        else 0
    )
    fired = stack.sim_faults_injected() - fired_before
    return {**result, "faults_injected": fired, "runs_failed_before_retry_budget": early}


def conductor_restart(stack: Stack, rate: float = 4.0) -> dict:
    """The Conductor server stopped and started again while runs keep arriving.

    Runs accepted before, during and after all finish.
    """
    load = Load(stack, rate)
    loader = _in_background(load, 70)
    time.sleep(15)
    supervisor.ctl("stop", "conductor", check=False, quiet=True)
    time.sleep(5)
    supervisor.ctl("start", "conductor", check=False, quiet=True)
    stack.await_ready(
        "conductor", stack.env["CONDUCTOR_SERVER_URL"].removesuffix("/api") + "/health"
    )
    loader.join()
    result = verify(stack, load.accepted, timeout=360)
    return {**result, "faults_injected": 1, "answers": dict(load.answers)}


def conductor_kill(stack: Stack, rate: float = 4.0, kills: int = 2) -> dict:
    """The Conductor server SIGKILLed (not stopped) twice under load; supervisord restarts it.

    Runs accepted before, during and after all finish, each with one Workbench job, and no
    ended run's workflow is left running.
    """
    load = Load(stack, rate)
    loader = _in_background(load, 90)
    killed = 0
    for _ in range(kills):
        time.sleep(15)
        stack.kill("conductor")
        killed += 1
        stack.conductor_ready()
    loader.join()
    result = verify(stack, load.accepted, timeout=420)
    return {
        **result,
        "faults_injected": killed,
        "answers": dict(load.answers),
        "answers_500": load.answers.get("500", 0),
        "stuck_workflows_repaired": stack.runs_repaired_by_reconciler(load.accepted),
    }


SCENARIOS = {
    "process_kills": process_kills,
    "ambiguous_submits": ambiguous_submits,
    "postgres_crash": postgres_crash,
    "workbench_degraded": workbench_degraded,
    "conductor_restart": conductor_restart,
    "conductor_kill": conductor_kill,
    "hostile_workbench": hostile_workbench,
    "webhook_receiver_down": webhook_receiver_down,
    "cancel_races": cancel_races,
}
