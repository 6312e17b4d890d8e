"""The process manager of the local stack: supervisord, configured under .stack/."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .config import LOG_DIR, ROOT, STACK_DIR, VENV_BIN

CONF = STACK_DIR / "supervisord.conf"
SOCKET = STACK_DIR / "supervisor.sock"


def _env_line(env: dict[str, str]) -> str:
    # supervisor expands %(...)s in values, so a literal % is doubled.
    return ",".join(f'{k}="{v.replace("%", "%%")}"' for k, v in env.items())


def write_config(processes) -> Path:
    """Render supervisord.conf from the process entries (0600: it carries secrets)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    lines = [
        "[unix_http_server]",
        f"file={SOCKET}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={LOG_DIR / 'supervisord.log'}",
        f"pidfile={STACK_DIR / 'supervisord.pid'}",
        f"childlogdir={LOG_DIR}",
        f"directory={ROOT}",
        "logfile_maxbytes=10MB",
        "minfds=4096",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{SOCKET}",
        "",
    ]
    for p in processes:
        lines += [
            f"[program:{p.name}]",
            "command=" + " ".join(p.command),
            # The checkout, wherever STACK_DIR is: commands use paths relative to it.
            f"directory={ROOT}",
            "autostart=false",
            f"autorestart={'true' if p.autorestart else 'false'}",
            "startsecs=2",
            "startretries=5",
            f"stopsignal={p.stopsignal}",
            f"stopwaitsecs={p.stopwaitsecs}",
            "stopasgroup=true",
            "killasgroup=true",
            f"stdout_logfile={LOG_DIR / (p.name + '.log')}",
            "stdout_logfile_maxbytes=50MB",
            "stdout_logfile_backups=2",
            "redirect_stderr=true",
        ]
        if p.user:
            lines.append(f"user={p.user}")
        if p.env:
            lines.append("environment=" + _env_line(p.env))
        lines.append("")
    CONF.write_text("\n".join(lines))
    CONF.chmod(0o600)
    return CONF


def running() -> bool:
    """True when this stack's supervisord answers on its socket."""
    if not SOCKET.exists():
        return False
    return ctl("pid", check=False).returncode == 0


def start_daemon() -> None:
    """Start supervisord (it daemonizes) or make a running one reread its config."""
    if running():
        ctl("reread", check=False, quiet=True)
        ctl("update", check=False, quiet=True)
        return
    SOCKET.unlink(missing_ok=True)
    subprocess.run([str(VENV_BIN / "supervisord"), "-c", str(CONF)], check=True)


def ctl(*args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
    """Run supervisorctl against this stack's socket."""
    return subprocess.run(
        [str(VENV_BIN / "supervisorctl"), "-c", str(CONF), *args],
        check=check,
        text=True,
        stdout=subprocess.PIPE if quiet or not check else None,
        stderr=subprocess.STDOUT if quiet or not check else None,
    )


def state(name: str) -> str:
    """RUNNING, STOPPED, FATAL, BACKOFF … of one program, or UNKNOWN."""
    out = ctl("status", name, check=False).stdout or ""
    parts = out.split()
    return parts[1] if len(parts) > 1 else "UNKNOWN"
