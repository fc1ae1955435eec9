"""Writes the operator CLI's launcher, `make install`'s `.venv/bin/handoff`.

    python -m ops.launcher .venv/bin/handoff

A shell script that runs this checkout's ops/cli.py with the venv's Python, from any directory:
the checkout is put on PYTHONPATH and Python is started with -P, so a folder named `ops` (or
`handoff`) wherever the operator stands is never imported instead. No package metadata is
installed: `pip install -e .` would need a build backend from PyPI, and the repository is not a
distribution (its layer lives in shared/, its functions in functions/).
"""

from __future__ import annotations

import shlex
import stat
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def script(python: str, root: Path = ROOT) -> str:
    return (
        "#!/bin/sh\n"
        f"# The Handoff operator CLI (ops/cli.py in {root}), written by `make install`: README 'Operator CLI'.\n"
        f"PYTHONPATH={shlex.quote(str(root))}${{PYTHONPATH:+:$PYTHONPATH}} "
        f'exec {shlex.quote(python)} -P -m ops.cli "$@"\n'
    )


def write(path: Path, python: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script(python))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m ops.launcher <path of the launcher to write>")
    target = Path(sys.argv[1]).absolute()
    # The venv's own interpreter, as the venv names it (not the resolved symlink: that would run
    # the base Python, without the venv's packages).
    write(target, str(Path(sys.executable).absolute()))
    print(f"wrote {target}")
