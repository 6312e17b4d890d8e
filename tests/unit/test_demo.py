"""Tests of scripts/demo.py: following a run, the wait bound, the report, and the samples."""

from __future__ import annotations

import importlib.util
import io
import json
import re
from pathlib import Path

import pytest
import requests

from scripts import demo_report
from stack import config

REPO_ROOT = Path(__file__).resolve().parents[2]
GATEWAY = "http://gateway.test:18000"
TOKEN = "dev-test-token"
RUN_ID = "6f1c2a9e-7d0b-4a43-9a55-0d7f4c3b2e11"
RUN_URL = f"{GATEWAY}/api/v1/pipeline-runs/{RUN_ID}"


def _load_demo():
    spec = importlib.util.spec_from_file_location("demo_script", REPO_ROOT / "scripts/demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = _load_demo()


class FakeClock:
    """A monotonic clock that moves only when the follower sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def run_json(status: str, job: str | None = None, **extra) -> dict:
    """A run as the gateway renders it."""
    return {
        "id": RUN_ID,
        "pipeline": "demo-batch",
        "mode": "BATCH",
        "status": status,
        "workbench_job_id": job,
        "conductor_workflow_id": "wf-123",
        "error_message": None,
        "history": [],
        **extra,
    }


def answers(*runs: dict) -> list[dict]:
    return [{"json": run, "status_code": 200} for run in runs]


def follow(session=None, **kwargs):
    clock = FakeClock()
    out = io.StringIO()
    options = {"timeout": 120.0, "interval": 0.5, "out": out, "tty": False}
    options.update(kwargs)
    run = demo.follow(
        session or demo.make_session(TOKEN), RUN_URL, clock=clock, sleep=clock.sleep, **options
    )
    return run, out.getvalue(), clock


# ------------------------------------------------------------------------------ follow


def test_follow_prints_each_status_change_once_and_stops_at_the_terminal_status(requests_mock):
    job = "wb-" + "a" * 32
    getter = requests_mock.get(
        RUN_URL,
        answers(
            run_json("PENDING"),
            run_json("SUBMITTED", job),
            run_json("SUBMITTED", job),
            run_json("RUNNING", job),
            run_json("RUNNING", job),
            run_json("COMPLETED", job),
            run_json("COMPLETED", job),  # must never be asked for
        ),
    )

    run, text, clock = follow()

    assert run["status"] == "COMPLETED"
    assert getter.call_count == 6
    assert clock.sleeps == [0.5] * 5
    lines = text.splitlines()
    assert [line.split()[0] for line in lines] == ["PENDING", "SUBMITTED", "RUNNING", "COMPLETED"]
    assert "workbench job -" in lines[0]
    assert all(job in line for line in lines[1:])
    assert "\r" not in text and "\x1b" not in text
    assert "0.5s" in lines[1]  # elapsed seconds by the follower's clock
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in getter.request_history)


def test_follow_stops_at_failed_too(requests_mock):
    requests_mock.get(RUN_URL, answers(run_json("RUNNING", "wb-1"), run_json("FAILED", "wb-1")))

    run, text, _ = follow()

    assert run["status"] == "FAILED"
    assert text.splitlines()[-1].split()[0] == "FAILED"


def test_follow_on_a_tty_updates_one_line_in_place(requests_mock):
    requests_mock.get(
        RUN_URL,
        answers(run_json("SUBMITTED", "wb-9"), run_json("RUNNING", "wb-9"), run_json("COMPLETED")),
    )

    _, text, _ = follow(tty=True)

    assert text.count("\r\x1b[K") == 3
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "SUBMITTED" in text and "RUNNING" in text and "COMPLETED" in text


def test_follow_rides_out_transient_failures(requests_mock):
    requests_mock.get(
        RUN_URL,
        [
            {"exc": requests.ConnectionError("refused")},
            {"status_code": 503, "json": {"error": {"code": "unavailable", "message": "x"}}},
            *answers(run_json("COMPLETED", "wb-1")),
        ],
    )

    run, text, _ = follow()

    assert run["status"] == "COMPLETED"
    assert text.splitlines() == [demo.progress_line(run, 1.0)]


def test_follow_wait_bound_raises_with_a_clear_message(requests_mock):
    getter = requests_mock.get(RUN_URL, json=run_json("RUNNING", "wb-1"))

    with pytest.raises(demo.DemoError, match=r"did not finish within 2s \(still RUNNING\)"):
        follow(timeout=2.0)

    assert getter.call_count == 5  # at 0, 0.5, 1, 1.5 and 2 seconds


def test_follow_wait_bound_names_the_last_poll_failure(requests_mock):
    requests_mock.get(RUN_URL, exc=requests.ConnectionError("refused"))

    with pytest.raises(demo.DemoError, match="the last poll failed: ConnectionError"):
        follow(timeout=1.0)


def test_follow_gives_up_at_once_on_a_client_error(requests_mock):
    body = {"error": {"code": "not_found", "message": f"no run {RUN_ID}", "details": []}}
    getter = requests_mock.get(RUN_URL, status_code=404, json=body)

    with pytest.raises(demo.DemoError) as caught:
        follow()

    assert getter.call_count == 1
    assert "404" in str(caught.value) and f"no run {RUN_ID}" in str(caught.value)


# ------------------------------------------------------------------------------ submit


def test_submit_sends_token_and_key_and_resolves_the_location(requests_mock):
    poster = requests_mock.post(
        f"{GATEWAY}/api/v1/pipeline-runs",
        status_code=202,
        json=run_json("PENDING"),
        headers={"Location": f"/api/v1/pipeline-runs/{RUN_ID}"},
    )

    run, location = demo.submit(demo.make_session(TOKEN), GATEWAY + "/", {"a": 1}, "key-1")

    assert run["id"] == RUN_ID and location == RUN_URL
    sent = poster.last_request
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Idempotency-Key"] == "key-1"
    assert sent.json() == {"a": 1}


def test_submit_shows_the_error_json_of_a_non_2xx_answer(requests_mock):
    error = {
        "error": {
            "code": "validation_failed",
            "message": "the request has invalid fields",
            "details": [{"field": "input_path_prefix", "message": "must be a URI"}],
        }
    }
    requests_mock.post(f"{GATEWAY}/api/v1/pipeline-runs", status_code=422, json=error)

    with pytest.raises(demo.DemoError) as caught:
        demo.submit(demo.make_session(TOKEN), GATEWAY, {}, "k")

    assert "422" in str(caught.value)
    assert json.dumps(error, indent=2) in str(caught.value)


def test_submit_names_an_unreachable_gateway(requests_mock):
    requests_mock.post(f"{GATEWAY}/api/v1/pipeline-runs", exc=requests.ConnectionError("refused"))

    with pytest.raises(demo.DemoError, match=f"cannot reach the gateway at {GATEWAY}"):
        demo.submit(demo.make_session(TOKEN), GATEWAY, {}, "k")


# ------------------------------------------------------------------------------ report


def write_manifest(output_dir: Path, n_files: int = 3) -> dict:
    files = [
        {"path": f"file-{i}.csv", "size": 100 + i, "sha256": f"{i:064x}"} for i in range(n_files)
    ]
    manifest = {"job_id": "wb-1", "files": files, "total_files": n_files}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (output_dir / "_SUCCESS").write_bytes(b"")
    return manifest


def test_show_output_lists_the_files_and_pretty_prints_the_manifest(tmp_path):
    output_dir = tmp_path / "output"
    write_manifest(output_dir, n_files=1)
    out = io.StringIO()

    demo.show_output(output_dir.as_uri(), out)

    text = out.getvalue()
    assert re.search(r"^\s+0 B  _SUCCESS$", text, re.M)
    assert re.search(r"^\s+\d+ B  _manifest\.json$", text, re.M)
    assert '    "path": "file-0.csv",' in text  # indented, one key a line
    assert f'"sha256": "{0:064x}"' in text
    assert "more lines" not in text and "no _SUCCESS" not in text


def test_show_output_cuts_a_long_manifest(tmp_path):
    output_dir = tmp_path / "output"
    write_manifest(output_dir, n_files=20)
    out = io.StringIO()

    demo.show_output(output_dir.as_uri(), out)

    manifest_part = out.getvalue().split("_manifest.json:\n", 1)[1].splitlines()
    assert len(manifest_part) == demo_report.MANIFEST_MAX_LINES + 1
    assert re.fullmatch(r"  … \d+ more lines in .*_manifest\.json", manifest_part[-1])


def test_show_output_says_when_nothing_was_written(tmp_path):
    out = io.StringIO()

    demo.show_output((tmp_path / "missing").as_uri(), out)
    demo.show_output("s3://bucket/out", out)

    assert "does not exist" in out.getvalue()
    assert "not a local file:// prefix" in out.getvalue()


def test_show_run_prints_key_fields_and_history_table():
    history = [
        {"status": "PENDING", "previous_status": None, "at": "2024-03-01T09:00:00+00:00",
         "source": "gateway", "message": "run accepted", "details": {}},
        {"status": "SUBMITTED", "previous_status": "PENDING", "at": "2024-03-01T09:00:01+00:00",
         "source": "persist", "message": "Workbench job wb-1 started", "details": {}},
    ]  # fmt: skip
    out = io.StringIO()

    demo.show_run(run_json("COMPLETED", "wb-1", history=history, poll_failures=0), out)

    text = out.getvalue()
    assert re.search(r"^\s+status\s+COMPLETED$", text, re.M)
    assert re.search(r"^\s+conductor_workflow_id\s+wf-123$", text, re.M)
    # Every public field the API renders is shown when it has a value, none without one.
    assert re.search(r"^\s+poll_failures\s+0$", text, re.M)
    assert "error_message" not in text
    assert re.search(r"^\s+\S+\s+\(new\) → PENDING\s+gateway\s+run accepted$", text, re.M)
    assert re.search(r"PENDING → SUBMITTED\s+persist\s+Workbench job wb-1 started$", text, re.M)


def test_next_steps_give_a_ready_curl_and_the_make_targets():
    env = {
        "GATEWAY_URL": GATEWAY,
        "GATEWAY_API_TOKEN": TOKEN,
        "CONDUCTOR_SERVER_URL": "http://c/api",
    }
    out = io.StringIO()

    demo.show_next_steps(env, run_json("COMPLETED"), out)

    text = out.getvalue()
    assert f'curl -s -H "Authorization: Bearer {TOKEN}" \'{GATEWAY}/api/v1/pipeline-runs' in text
    assert "http://c/api/workflow/wf-123" in text
    for words in ("make status", "make logs", "make down", "left running", "UI"):
        assert words in text


# ------------------------------------------------------------------------------ setup and main


def test_load_env_without_stack_env_says_run_make_up_first(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "STACK_DIR", tmp_path)

    with pytest.raises(demo.DemoError, match="run `make up` first"):
        demo.load_env()


def test_prepare_dirs_copies_the_samples_next_to_a_fresh_output(tmp_path):
    input_dir, output_dir = demo.prepare_dirs(tmp_path)
    again, _ = demo.prepare_dirs(tmp_path)

    assert input_dir.parent == output_dir.parent and input_dir.parent.parent == tmp_path / "demo"
    assert not output_dir.exists()
    assert again != input_dir
    copied = sorted(p.name for p in input_dir.iterdir())
    assert copied == sorted(p.name for p in demo.SAMPLES.iterdir())
    body = demo.run_body(input_dir, output_dir)
    assert body["input_path_prefix"] == input_dir.as_uri()
    assert body["output_path_prefix"].startswith("file:///")
    assert demo_report.local_dir(body["output_path_prefix"]) == output_dir


def test_the_sample_files_exist_and_are_small():
    files = sorted(p for p in (REPO_ROOT / "samples" / "demo-input").iterdir() if p.is_file())
    names = {p.name for p in files}
    assert {"README.txt", "orders.csv", "events.jsonl"} <= names
    assert 0 < sum(p.stat().st_size for p in files) <= 16 * 1024
    rows = (REPO_ROOT / "samples/demo-input/orders.csv").read_text().splitlines()
    assert len(rows) >= 3 and len({len(r.split(",")) for r in rows}) == 1
    for line in (REPO_ROOT / "samples/demo-input/events.jsonl").read_text().splitlines():
        assert isinstance(json.loads(line), dict)


@pytest.fixture
def stack_dir(tmp_path, monkeypatch):
    """A stack.env naming a fake gateway, as `make up` writes it."""
    monkeypatch.setattr(config, "STACK_DIR", tmp_path)
    (tmp_path / "stack.env").write_text(
        f"GATEWAY_URL={GATEWAY}\nGATEWAY_API_TOKEN={TOKEN}\n"
        f"CONDUCTOR_SERVER_URL=http://conductor.test/api\nSTACK_DIR={tmp_path}\n"
    )
    return tmp_path


def mock_submission(requests_mock, get_answers):
    def created(request, context):
        context.headers["Location"] = f"/api/v1/pipeline-runs/{RUN_ID}"
        return run_json("PENDING", **request.json())

    requests_mock.get(f"{GATEWAY}/healthz", json={"status": "ok"})
    requests_mock.post(f"{GATEWAY}/api/v1/pipeline-runs", status_code=202, json=created)
    return requests_mock.get(RUN_URL, get_answers)


def test_main_follows_a_run_to_completion_and_reports_it(stack_dir, requests_mock, capsys):
    def completed(request, context):
        body = requests_mock.request_history[1].json()
        write_manifest(demo_report.local_dir(body["output_path_prefix"]))
        return run_json("COMPLETED", "wb-1", **body)

    mock_submission(requests_mock, [*answers(run_json("RUNNING", "wb-1")), {"json": completed}])

    assert demo.main(["--interval", "0.01"]) == 0

    out = capsys.readouterr().out
    assert f"run id              {RUN_ID}" in out
    assert f"Location            {RUN_URL}" in out
    assert "Conductor workflow  wf-123" in out
    assert "_manifest.json:" in out and '"total_files": 3' in out
    assert "stack is left running" in out
    sent = requests_mock.request_history[1]
    assert sent.headers["Idempotency-Key"].startswith("demo-")
    assert sent.json()["pipeline"] == "demo-batch" and sent.json()["mode"] == "BATCH"


def test_main_exits_non_zero_when_the_wait_bound_passes(stack_dir, requests_mock, capsys):
    mock_submission(requests_mock, answers(run_json("RUNNING", "wb-1")))

    assert demo.main(["--timeout", "0.2", "--interval", "0.05"]) == 1

    assert "did not finish within 0.2s (still RUNNING)" in capsys.readouterr().err


def test_main_exits_non_zero_when_the_run_failed(stack_dir, requests_mock, capsys):
    failed = run_json("FAILED", "wb-1", error_message="Workbench job wb-1 failed: boom")
    mock_submission(requests_mock, answers(failed))

    assert demo.main(["--interval", "0.01"]) == 1

    assert "The run FAILED: Workbench job wb-1 failed: boom" in capsys.readouterr().out


def test_main_names_an_unreachable_gateway_before_copying_anything(
    stack_dir, requests_mock, capsys
):
    requests_mock.get(f"{GATEWAY}/healthz", exc=requests.ConnectionError("refused"))

    assert demo.main([]) == 1

    assert f"cannot reach the gateway at {GATEWAY}" in capsys.readouterr().err
    assert not (stack_dir / "demo").exists()


def test_main_without_a_stack_says_run_make_up_first(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(config, "STACK_DIR", tmp_path)

    assert demo.main([]) == 1

    assert "run `make up` first" in capsys.readouterr().err


def test_a_refused_token_says_how_to_get_a_fresh_one(requests_mock):
    body = {"error": {"code": "unauthorized", "message": "a valid Bearer token is required"}}
    requests_mock.post(f"{GATEWAY}/api/v1/pipeline-runs", status_code=401, json=body)

    with pytest.raises(demo.DemoError, match=r"(?s)401.*valid Bearer token.*make up"):
        demo.submit(demo.make_session("stale"), GATEWAY, {}, "k")
