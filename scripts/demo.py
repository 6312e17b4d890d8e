"""`make demo`: submit a sample pipeline run to the running local stack and follow it to the end.

Copies samples/demo-input/ to a fresh .stack/demo/<timestamp>/input, submits a `demo-batch`
run over HTTP with file:// prefixes, shows its progress until it is terminal, then prints
the run, its history, what the job wrote under the output prefix, and how to go on.

Exits 0 when the run COMPLETED; 1 when it FAILED, did not finish in time, or the stack
could not be used (with a message saying why).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urljoin

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.demo_report import (  # noqa: E402
    RUNS_PATH,
    show_next_steps,
    show_output,
    show_run,
    show_run_browser,
)
from stack import config  # noqa: E402  (stdlib only; finds .stack/ the way `make up` does)

SAMPLES = ROOT / "samples" / "demo-input"
PIPELINE = "demo-batch"
TERMINAL = frozenset({"COMPLETED", "FAILED"})
REQUIRED_ENV = ("GATEWAY_URL", "GATEWAY_API_TOKEN", "CONDUCTOR_SERVER_URL")
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 15.0


class DemoError(Exception):
    """Something the person running the demo must know about; main() prints it and exits 1."""


# ------------------------------------------------------------------------------ setup


def load_env() -> dict[str, str]:
    """The running stack's endpoints and dev token from .stack/stack.env."""
    path = config.STACK_DIR / "stack.env"
    env = config.read_stack_env()
    if not env:
        raise DemoError(f"no {path}: the local stack is not set up; run `make up` first")
    missing = [name for name in REQUIRED_ENV if not env.get(name)]
    if missing:
        raise DemoError(
            f"{path} lacks {', '.join(missing)}; run `make up` first to write it afresh"
        )
    env.setdefault("STACK_DIR", str(config.STACK_DIR))
    return env


def prepare_dirs(stack_dir: Path, samples: Path = SAMPLES) -> tuple[Path, Path]:
    """Copy the samples to a fresh demo/<timestamp>/input; return (input, output) dirs."""
    if not samples.is_dir() or not any(samples.iterdir()):
        raise DemoError(f"no sample input at {samples}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = stack_dir / "demo" / stamp
    suffix = 1
    while base.exists():  # two demos in one second each get their own folder
        suffix += 1
        base = stack_dir / "demo" / f"{stamp}-{suffix}"
    input_dir, output_dir = base / "input", base / "output"
    shutil.copytree(samples, input_dir)
    # The output directory is left for the job to create: what appears there is its work.
    return input_dir, output_dir


def make_session(token: str) -> requests.Session:
    """A session that sends the gateway's Bearer token with every request."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
    return session


def error_text(resp: requests.Response) -> str:
    """The gateway's error JSON pretty-printed, or the start of a non-JSON body."""
    try:
        return json.dumps(resp.json(), indent=2)
    except ValueError:
        return resp.text[:500] or "(empty body)"


def http_error(method: str, url: str, resp: requests.Response) -> DemoError:
    """A DemoError naming the request, its answer, and the error body."""
    hint = ""
    if resp.status_code == 401:
        hint = "\n(the token in stack.env was refused; `make down && make up` writes it afresh)"
    return DemoError(
        f"{method} {url} answered {resp.status_code} {resp.reason}:\n{error_text(resp)}{hint}"
    )


def unreachable(url: str, exc: requests.RequestException) -> DemoError:
    """A DemoError naming the gateway URL that could not be reached."""
    return DemoError(
        f"cannot reach the gateway at {url} ({type(exc).__name__}); "
        "is the stack up? `make status` shows it, `make logs` tells why"
    )


def check_gateway(gateway_url: str) -> None:
    """Make sure the gateway answers its liveness check before anything is prepared."""
    url = gateway_url.rstrip("/") + "/healthz"
    try:
        resp = requests.get(url, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
    except requests.RequestException as exc:
        raise unreachable(gateway_url, exc) from exc
    if not resp.ok:
        raise http_error("GET", url, resp)


def submit(
    session: requests.Session, gateway_url: str, body: dict[str, Any], key: str
) -> tuple[dict[str, Any], str]:
    """POST the run; return (run JSON, absolute URL of its Location)."""
    url = gateway_url.rstrip("/") + RUNS_PATH
    try:
        resp = session.post(
            url,
            json=body,
            headers={"Idempotency-Key": key},
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
        )
    except requests.RequestException as exc:
        raise unreachable(gateway_url, exc) from exc
    if not resp.ok:
        raise http_error("POST", url, resp)
    try:
        run = resp.json()
    except ValueError as exc:
        raise DemoError(f"POST {url} answered {resp.status_code} without JSON") from exc
    location = resp.headers.get("Location") or f"{RUNS_PATH}/{run['id']}"
    return run, urljoin(gateway_url.rstrip("/") + "/", location)


class TransientError(Exception):
    """A poll that may well succeed next time (network failure, 5xx)."""


def get_run(session: requests.Session, url: str) -> dict[str, Any]:
    """GET one run; TransientError for what retrying may fix, DemoError for the rest."""
    try:
        resp = session.get(url, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
    except requests.RequestException as exc:
        raise TransientError(f"{type(exc).__name__} on GET {url}") from exc
    if resp.status_code >= 500:
        raise TransientError(f"GET {url} answered {resp.status_code}: {error_text(resp)}")
    if not resp.ok:
        raise http_error("GET", url, resp)
    try:
        return resp.json()
    except ValueError as exc:
        raise DemoError(f"GET {url} answered {resp.status_code} without JSON") from exc


# ------------------------------------------------------------------------------ progress


def progress_line(run: dict[str, Any], elapsed: float) -> str:
    """One line of progress: status, seconds since submission, Workbench job id."""
    job = run.get("workbench_job_id") or "-"
    return f"  {run.get('status', '?'):<10} {elapsed:6.1f}s   workbench job {job}"


def follow(
    session: requests.Session,
    url: str,
    *,
    timeout: float = 120.0,
    interval: float = 0.5,
    out: TextIO | None = None,
    tty: bool | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll the run until it is terminal, showing progress; DemoError after `timeout` seconds."""
    out = out if out is not None else sys.stdout
    tty = out.isatty() if tty is None else tty
    started = clock()
    shown: tuple[str, str | None] | None = None
    run: dict[str, Any] = {}
    last_problem = ""
    while True:
        elapsed = clock() - started
        try:
            run = get_run(session, url)
        except TransientError as exc:
            # The gateway may be restarting; keep trying until the deadline.
            last_problem = f"; the last poll failed: {exc}"
        else:
            last_problem = ""
            state = (run.get("status"), run.get("workbench_job_id"))
            if tty:
                out.write("\r\x1b[K" + progress_line(run, elapsed))
                out.flush()
            elif state != shown:
                out.write(progress_line(run, elapsed) + "\n")
                out.flush()
            shown = state
            if run.get("status") in TERMINAL:
                if tty:
                    out.write("\n")
                return run
        if clock() - started >= timeout:
            if tty:
                out.write("\n")
            status = run.get("status", "unknown")
            raise DemoError(
                f"the run did not finish within {timeout:g}s (still {status}{last_problem}); "
                f"look at `make logs`, or GET {url} later"
            )
        sleep(interval)


# ------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options: wait bound, poll interval, and a simulated failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (120)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between polls")
    parser.add_argument(
        "--fail", action="store_true", help="ask the Workbench simulator to fail the job"
    )
    return parser.parse_args(argv)


def run_body(input_dir: Path, output_dir: Path, fail: bool = False) -> dict[str, Any]:
    """The POST body of the demo run over the given local folders."""
    parameters: dict[str, Any] = {"source": "make demo"}
    if fail:
        parameters["simulate"] = {
            "outcome": "FAILED",
            "error_message": "failure asked for by demo.py --fail",
        }
    return {
        "pipeline": PIPELINE,
        "mode": "BATCH",
        "input_path_prefix": input_dir.as_uri(),
        "output_path_prefix": output_dir.as_uri(),
        "parameters": parameters,
    }


def demo(args: argparse.Namespace) -> int:
    """Submit, follow and report one demo run; the exit status."""
    env = load_env()
    check_gateway(env["GATEWAY_URL"])
    input_dir, output_dir = prepare_dirs(Path(env["STACK_DIR"]))
    body = run_body(input_dir, output_dir, fail=args.fail)
    print(f"Sample input copied to {input_dir}")
    print(f"Submitting a {PIPELINE} run to {env['GATEWAY_URL']} …")
    session = make_session(env["GATEWAY_API_TOKEN"])
    key = f"demo-{input_dir.parent.name}-{uuid.uuid4().hex[:8]}"
    run, location = submit(session, env["GATEWAY_URL"], body, key)
    print(f"  run id              {run.get('id')}")
    print(f"  Location            {location}")
    print(f"  Conductor workflow  {run.get('conductor_workflow_id') or '(not yet assigned)'}")
    print(f"\nFollowing it (every {args.interval:g}s, at most {args.timeout:g}s):")
    run = follow(session, location, timeout=args.timeout, interval=args.interval)
    show_run(run)
    if run["status"] == "FAILED":
        print(f"\nThe run FAILED: {run.get('error_message') or '(no reason recorded)'}")
        print("`make logs` shows what the workers and the simulator saw.")
        show_run_browser(env, run)
        return 1
    show_output(run.get("output_path_prefix") or body["output_path_prefix"])
    show_next_steps(env, run)
    show_run_browser(env, run)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the demo; print a clear message and return 1 on any error."""
    args = parse_args(argv)
    try:
        return demo(args)
    except DemoError as exc:
        sys.stdout.flush()
        print(f"\ndemo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted; the run goes on in the stack", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
