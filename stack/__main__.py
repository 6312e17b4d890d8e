"""`python -m stack up|down|status|logs|env`: the local stack without Docker."""

from __future__ import annotations

import argparse
import sys
import time

from . import config, postgres, supervisor
from .processes import Process, build


def _processes() -> list[Process]:
    sec = config.load_secrets()
    ep = config.endpoints(sec)
    config.write_stack_env(ep)
    return build(sec, ep)


def _tail(name: str, lines: int = 40) -> str:
    path = config.LOG_DIR / f"{name}.log"
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _await_ready(p: Process) -> None:
    deadline = time.monotonic() + p.ready_timeout
    started = time.monotonic()
    while time.monotonic() < deadline:
        if p.ready():
            print(f"  {p.name} ready after {time.monotonic() - started:.1f}s")
            return
        if supervisor.state(p.name) in ("FATAL", "EXITED", "STOPPED", "BACKOFF"):
            break
        time.sleep(0.5)
    raise SystemExit(
        f"{p.name} did not become ready within {p.ready_timeout:.0f}s "
        f"(state {supervisor.state(p.name)}); last lines of {config.LOG_DIR / p.name}.log:\n"
        f"{_tail(p.name)}"
    )


def up(only: list[str] | None = None) -> None:
    """Start every process in order (or just `only`), awaiting each one's readiness."""
    everything = _processes()
    processes = [p for p in everything if not only or p.name in only]
    if any(p.name == "postgres" for p in processes):
        postgres.ensure_cluster(config.load_secrets()["PG_ADMIN_PASSWORD"])
    supervisor.write_config(everything)
    supervisor.start_daemon()
    for p in processes:
        if supervisor.state(p.name) != "RUNNING":
            if p.before_start:
                p.before_start()
            supervisor.ctl("start", p.name, check=False, quiet=True)
        _await_ready(p)
        if p.after_ready:
            p.after_ready()
    print(f"stack is up; endpoints and the dev token are in {config.STACK_DIR / 'stack.env'}")


def down() -> None:
    """Stop what this stack started, and its supervisord."""
    if not supervisor.running():
        print("stack is not running")
        return
    supervisor.ctl("stop", "all", check=False)
    supervisor.ctl("shutdown", check=False)
    for _ in range(120):
        if not supervisor.running():
            break
        time.sleep(0.5)
    print("stack is down")


def status() -> int:
    """Each process's state and whether it answers its readiness check."""
    if not supervisor.running():
        print("stack is not running (make up starts it)")
        return 1
    healthy = True
    for p in _processes():
        st = supervisor.state(p.name)
        ok = st == "RUNNING" and p.ready()
        healthy &= ok
        print(f"{p.name:<16} {st:<10} {'healthy' if ok else 'NOT READY'}")
    return 0 if healthy else 1


def logs(lines: int) -> None:
    """The last lines of every process's log."""
    for p in _processes():
        print(f"==> {p.name} ({config.LOG_DIR / p.name}.log) <==")
        print(_tail(p.name, lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up")
    p_up.add_argument("names", nargs="*")
    sub.add_parser("down")
    sub.add_parser("status")
    p_logs = sub.add_parser("logs")
    p_logs.add_argument("-n", type=int, default=40)
    args = parser.parse_args(argv)
    if args.cmd == "up":
        up(args.names or None)
    elif args.cmd == "down":
        down()
    elif args.cmd == "status":
        return status()
    else:
        logs(args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
