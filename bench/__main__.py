"""make bench: every benchmark, one after the other; each prints its figures."""

from __future__ import annotations

import importlib
import sys
import time

SECTIONS = (
    "bench.cold_start",
    "bench.requests",
    "bench.local_stack",
    "bench.retry_path",
    "bench.package_size",
    "bench.cost",
)


USAGE = f"""usage: python -m bench [PART ...]

Runs every part of make bench one after the other (about six minutes), or only the PARTs named:
  {chr(10).join("  " + name for name in SECTIONS).strip()}
Each prints its figures with their floors or anchors (README "Performance and reliability")."""


def main() -> int:
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        print(USAGE)
        return 0
    unknown = [name for name in sys.argv[1:] if name not in SECTIONS]
    if unknown:
        print(f"bench: no part {', '.join(unknown)} (python -m bench --help lists them)", file=sys.stderr)
        return 2
    for name in sys.argv[1:] or SECTIONS:
        started = time.monotonic()
        importlib.import_module(name).main()
        print(f"  ({name} took {time.monotonic() - started:.0f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
