"""The local stack in a process of its own, for whoever must stand outside it (integration tests,
benchmarks): started with `python -m local.stack --ready-json`, stopped by closing its stdin."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class StackProcess:
    def __init__(self, *options: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603 (our own module, with our own options)
            [sys.executable, "-m", "local.stack", "--ready-json", "--until-stdin-closes", *options],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            text=True,
        )
        self.output: list[str] = []  # the stack's log lines so far
        self.urls: dict[str, Any] = {}
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("{") and '"api"' in line:
                self.urls = json.loads(line)
                break
        if not self.urls:
            raise RuntimeError("the local stack did not start:\n" + "".join(self.output[-30:]))
        threading.Thread(target=self._drain, daemon=True).start()  # a full pipe would stall the stack

    def _drain(self) -> None:
        assert self.process.stdout is not None
        self.output.extend(self.process.stdout)

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
