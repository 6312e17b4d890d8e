"""`make demo` ends with the run browser's page of the demo run and how to sign in."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


def _load_demo():
    spec = importlib.util.spec_from_file_location("demo_script_ending", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_names_the_run_page_and_the_sign_in_token():
    demo = _load_demo()
    out = io.StringIO()
    env = {"GATEWAY_URL": "http://127.0.0.1:18000/", "GATEWAY_API_TOKEN": "dev-token-123"}

    demo.show_run_browser(env, {"id": "run-1"}, out)

    assert out.getvalue().splitlines()[-2:] == [
        "The run in the run browser: http://127.0.0.1:18000/ui/runs/run-1",
        "  sign in with the dev token (GATEWAY_API_TOKEN): dev-token-123",
    ]


def test_both_endings_of_the_demo_print_it_last():
    source = SCRIPT.read_text()
    body = source[source.index("def demo(") :]
    for ending in ("        return 1\n", "    return 0\n"):
        before = body[: body.index(ending)].rstrip().splitlines()[-1]
        assert before.strip() == "show_run_browser(env, run)", ending
