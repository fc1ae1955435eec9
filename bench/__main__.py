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


def main() -> int:
    for name in sys.argv[1:] or SECTIONS:
        started = time.monotonic()
        importlib.import_module(name).main()
        print(f"  ({name} took {time.monotonic() - started:.0f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
