"""`python -m conductor_workers submit|poller`: run one role's task workers."""

from __future__ import annotations

import argparse
import sys

from .runner import ROLES, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conductor_workers", description=__doc__)
    parser.add_argument("role", choices=sorted(ROLES))
    return run(parser.parse_args(argv).role)


if __name__ == "__main__":
    sys.exit(main())
