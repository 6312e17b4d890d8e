"""The browser tests' setup: a missing chromium or axe-core fails loudly, never skips."""

from __future__ import annotations

import pytest

from stack import browser as browser_setup
from tests.browser import support


def test_browser_tests_fail_loudly_without_chromium(monkeypatch, tmp_path):
    monkeypatch.setattr(browser_setup, "CHROMIUM", tmp_path / "no-chromium")
    with pytest.raises(AssertionError, match=r"no-chromium.*make browser"):
        support.launch()


def test_browser_tests_fail_loudly_without_axe_core(monkeypatch, tmp_path):
    monkeypatch.setattr(browser_setup, "AXE_SCRIPT", tmp_path / "axe.min.js")
    with pytest.raises(AssertionError, match=r"axe\.min\.js.*make browser"):
        support.launch()


def test_chromium_is_installed_with_apt_only_when_missing(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(browser_setup.subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    present = tmp_path / "chromium"
    present.touch()
    monkeypatch.setattr(browser_setup, "CHROMIUM", present)
    assert browser_setup.ensure_chromium() == present
    assert calls == []

    monkeypatch.setattr(browser_setup, "CHROMIUM", tmp_path / "missing")
    monkeypatch.setattr(browser_setup.os, "geteuid", lambda: 0)
    with pytest.raises(SystemExit, match="still missing"):
        browser_setup.ensure_chromium()
    assert calls == [["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]]


def test_without_root_the_setup_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(browser_setup, "CHROMIUM", tmp_path / "missing")
    monkeypatch.setattr(browser_setup.os, "geteuid", lambda: 1000)
    with pytest.raises(SystemExit, match="sudo apt-get install chromium"):
        browser_setup.ensure_chromium()


def test_axe_core_is_pinned_with_a_lock_file():
    lock = (browser_setup.BROWSER_DIR / "package-lock.json").read_text()
    package = (browser_setup.BROWSER_DIR / "package.json").read_text()
    assert '"axe-core": "4.14.1"' in package and '"version": "4.14.1"' in lock
    assert '"integrity": "sha512-' in lock
