"""Issue 10.11: every fault with a call count that a stack test arms on the shared simulator is
aimed at the test's own runs, so the stack's own poller and workers cannot use it up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
STACK_TIERS = ("integration", "e2e")
AIMS = {"run_ids", "job_ids", "input_path_prefixes"}


def fault_calls(tree: ast.AST) -> list[ast.Call]:
    """Every `<something>.faults(...)` call in a module."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "faults"
    ]


def unaimed_counted_faults(call: ast.Call) -> list[str]:
    """The faults of `call` written with a literal count and no aim at all.

    A call whose arguments are spread (`**armed`) is built elsewhere and not judged here; a
    fault whose own dict is spread (`{**aimed, ...}`) may carry its aim inside.
    """
    names = {k.arg for k in call.keywords}
    if None in names or names & AIMS:
        return []
    unaimed = []
    for keyword in call.keywords:
        fault = keyword.value
        if not isinstance(fault, ast.Dict) or None in fault.keys:
            continue
        keys = {k.value for k in fault.keys if isinstance(k, ast.Constant)}
        if "count" in keys and not keys & AIMS:
            unaimed.append(keyword.arg)
    return unaimed


def stack_test_modules() -> list[Path]:
    return sorted(path for tier in STACK_TIERS for path in (TESTS / tier).glob("*.py"))


def test_the_check_sees_the_stack_tiers_fault_calls():
    calls = [c for p in stack_test_modules() for c in fault_calls(ast.parse(p.read_text()))]
    assert len(calls) >= 10, "the stack tests arm faults through Simulator.faults"


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ('sim.faults(error_5xx={"status": 503, "count": 1})', ["error_5xx"]),
        ('sim.faults(slow={"seconds": 1, "count": 2, "only": "status"})', ["slow"]),
        ('sim.faults(error_5xx={"count": 1}, run_ids=[run_id])', []),
        ('sim.faults(error_5xx={"count": 1, "job_ids": [job]})', []),
        ('sim.faults(slow={"seconds": 4, "rate": 1.0})', []),  # no count to use up
        ("sim.faults(**armed)", []),
        ('sim.faults(error_5xx={"count": 1, **aimed})', []),
    ],
)
def test_the_check_flags_only_counted_faults_without_an_aim(source, flagged):
    (call,) = fault_calls(ast.parse(source))
    assert unaimed_counted_faults(call) == flagged


def test_issue_10_11_every_counted_fault_of_a_stack_test_is_aimed_at_its_own_runs():
    found = [
        f"{path.relative_to(TESTS)}:{call.lineno}: {', '.join(names)}"
        for path in stack_test_modules()
        for call in fault_calls(ast.parse(path.read_text()))
        if (names := unaimed_counted_faults(call))
    ]
    assert not found, "counted faults the stack's own calls can use up:\n" + "\n".join(found)
