"""Register the task definitions, then the workflows, with the Conductor server (see --help).

Kept where the design brief names it; an installed package runs the same command as
`python -m batchcore.register` or `batchcore-register`.
"""

from __future__ import annotations

import sys

from batchcore.register import main

if __name__ == "__main__":
    sys.exit(main(prog="python scripts/register_workflows.py"))
