"""What the browser tests need: Debian's chromium (apt) and axe-core (npm, project-local).

`python -m stack.browser` installs what is missing and does nothing else (`make browser`,
run by `make test`); the tests themselves fail loudly when either is absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .config import ROOT

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
BROWSER_DIR = ROOT / "tests" / "browser"
AXE_SCRIPT = BROWSER_DIR / "node_modules" / "axe-core" / "axe.min.js"


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0:
        raise SystemExit(
            f"missing {', '.join(packages)}; run: sudo apt-get install {' '.join(packages)}"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"installing {', '.join(packages)} with apt-get")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True, env=env)


def ensure_chromium() -> Path:
    """Install Debian's chromium when it is missing; return its path."""
    if not CHROMIUM.exists():
        _apt_install("chromium")
    if not CHROMIUM.exists():
        raise SystemExit(f"chromium is still missing at {CHROMIUM} after installing it")
    return CHROMIUM


def ensure_axe() -> Path:
    """Install the pinned axe-core (tests/browser/package-lock.json) when it is missing."""
    if AXE_SCRIPT.exists():
        return AXE_SCRIPT
    if shutil.which("npm") is None:
        _apt_install("npm")
    print(f"installing axe-core into {BROWSER_DIR / 'node_modules'} with npm ci")
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(BROWSER_DIR)], check=True
    )
    if not AXE_SCRIPT.exists():
        raise SystemExit(f"npm ci did not install {AXE_SCRIPT}")
    return AXE_SCRIPT


def main() -> None:
    """Install what is missing and say where it is."""
    print(f"browser tests: chromium at {ensure_chromium()}, axe-core at {ensure_axe()}")


if __name__ == "__main__":
    main()
