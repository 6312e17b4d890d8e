"""Last of the e2e tier (by its name): no secret of the stack is in any of its logs.

By now the whole tier has run through the stack: good and bad tokens, injected faults,
a PostgreSQL restart, Conductor stopped. Every file under .stack/logs/ is scanned for the
gateway and Workbench tokens and the database passwords (from .stack/secrets.env and
stack.env), as given and percent-encoded, and for the near-misses of the gateway token
that the security tests send as wrong tokens (a logged near-miss gives away all but a
character of the real one). A hit is reported by file, line and secret name, never value.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit


def stack_secrets(stack_env) -> dict[str, str]:
    """name -> value of every secret of the running stack."""
    stack_dir = Path(stack_env["STACK_DIR"])
    found = {}
    for line in (stack_dir / "secrets.env").read_text().splitlines():
        name, _, value = line.partition("=")
        if value:
            found[name] = value
    for name in ("GATEWAY_API_TOKEN", "WORKBENCH_API_TOKEN"):
        found[name] = stack_env[name]
    for name in ("DATABASE_URL", "PG_ADMIN_URL", "CONDUCTOR_DATABASE_URL"):
        password = urlsplit(stack_env.get(name, "")).password
        if password:
            found[f"password of {name}"] = password
    return found


def needles(secrets: dict[str, str]) -> dict[bytes, str]:
    """The byte strings to look for, each with a description that does not reveal it."""
    found: dict[bytes, str] = {}
    for name, value in secrets.items():
        found[value.encode()] = name
        found[quote(value, safe="").encode()] = f"{name} (percent-encoded)"
    token = secrets["GATEWAY_API_TOKEN"]
    for variant, value in (
        ("truncated", token[:-1]),
        ("swapped case", token.swapcase()),
        ("upper case", token.upper()),
        ("lower case", token.lower()),
    ):
        if value != token:
            found[value.encode()] = f"GATEWAY_API_TOKEN ({variant})"
    # Shorter strings would match ordinary text by chance.
    return {needle: name for needle, name in found.items() if len(needle) >= 12}


def test_no_secret_appears_in_any_log_line(stack_env):
    log_dir = Path(stack_env["STACK_DIR"]) / "logs"
    files = sorted(path for path in log_dir.rglob("*") if path.is_file())
    names = {path.name for path in files}
    assert {"gateway.log", "submit-workers.log", "poller.log", "workbench.log"} <= names, names
    gateway_log = (log_dir / "gateway.log").read_bytes()
    assert b'" 401 ' in gateway_log, "the gateway log shows no refused request: wrong file?"

    wanted = needles(stack_secrets(stack_env))
    hits = []
    for path in files:
        data = path.read_bytes()
        for needle, name in wanted.items():
            at = data.find(needle)
            while at >= 0:
                line = data.count(b"\n", 0, at) + 1
                hits.append(f"{path.relative_to(log_dir)}:{line}: {name}")
                at = data.find(needle, at + 1)
    assert not hits, "secrets in the logs:\n" + "\n".join(hits[:50])
