"""No secret of the stack is in any of its logs, after this test has made every process log
what a leak would show up in.

The test needs nothing from other tests: it sends the gateway refused requests carrying
near-misses of the real token, the simulator a refused call with a near-miss of its token,
and one run through the gateway, the submit workers, the simulator and the poller to the
end; it waits until the logs show that traffic. Then every file under .stack/logs/ is
scanned for the gateway and Workbench tokens and the database passwords (from
.stack/secrets.env and stack.env), as given and percent-encoded, and for the near-misses of
the gateway token (a logged near-miss gives away all but a character of the real one). A
hit is reported by file, line and secret name, never value. (The gunicorn gateways the
integration tier starts have their own logs checked the same way, by running_gateway.)
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import requests

from tests.e2e.conftest import bad_authorizations, run_body
from tests.integration.helpers import await_true, secret_hits, secret_needles


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


def test_no_secret_appears_in_any_log_line(api, stack_env):
    log_dir = Path(stack_env["STACK_DIR"]) / "logs"
    token = stack_env["GATEWAY_API_TOKEN"]
    marker = f"log-check-{uuid.uuid4().hex}"
    refused_path = f"/api/v1/pipeline-runs/{marker}"
    variants = bad_authorizations(token)
    for variant, headers in variants.items():
        response = requests.get(f"{api.base}{refused_path}", headers=headers, timeout=10)
        assert response.status_code == 401, variant
    wrong_workbench_token = stack_env["WORKBENCH_API_TOKEN"].swapcase()
    refused_by_workbench = requests.get(
        f"{stack_env['WORKBENCH_API_URL']}/jobs/wb-{marker}",
        headers={"Authorization": f"Bearer {wrong_workbench_token}"},
        timeout=10,
    )
    assert refused_by_workbench.status_code == 401
    created = api.post_run(run_body(parameters={"simulate": {"duration_seconds": 1}}))
    assert created.status_code == 202, created.text
    run = api.await_status(created.json()["id"], "COMPLETED", timeout=120)

    def logged():
        def text(name):
            return (log_dir / name).read_text(errors="replace")

        gateway = text("gateway.log")
        refused = gateway.count(f'{refused_path} HTTP/1.1" 401 ')
        return (
            refused == len(variants)
            and f'/api/v1/pipeline-runs/{run["id"]} HTTP/1.1" 200 ' in gateway
            and run["id"] in text("submit-workers.log")
            and f'/jobs/wb-{marker}" 401 ' in text("workbench.log")
        )

    await_true(logged, 30, "the logs to show this test's requests and run", every=0.5)

    files = sorted(path for path in log_dir.rglob("*") if path.is_file())
    assert {"gateway.log", "submit-workers.log", "poller.log", "workbench.log"} <= {
        path.name for path in files
    }
    wanted = secret_needles(stack_secrets(stack_env), tokens=("GATEWAY_API_TOKEN",))
    hits = secret_hits(files, wanted)
    assert not hits, "secrets in the logs:\n" + "\n".join(hits[:50])
