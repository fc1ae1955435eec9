"""`make local` stops at once on Ctrl-C (SIGINT to the terminal's whole process group) and on
`kill <pid>` (SIGTERM): exit 0, no traceback from the stack or its function containers, nothing
left running (moto server, containers), the state file removed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT


def children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc")
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_the_stack_stops_at_once_and_leaves_nothing_behind(tmp_path: Path, how: str) -> None:
    # given `make local` running in a terminal of its own, a function container warm
    state_file = tmp_path / "state.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "local.stack", "--state-file", str(state_file), "--no-event-capture"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if "Ctrl-C stops" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(120), "".join(output)
        state = json.loads(state_file.read_text())
        event = json.loads((ROOT / "events/get_job/api_get.json").read_text())
        url = f"{state['lambda_endpoint']}/2015-03-31/functions/GetJobFunction/invocations"
        assert requests.post(url, json=event, timeout=60).status_code == 200
        started = children(process.pid)
        assert len(started) >= 2  # the moto server and at least one container

        # when it is interrupted
        if how == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()

    # then it exits 0 without a traceback, and nothing it started is left
    text = "".join(output)
    assert code == 0, text
    assert "Traceback" not in text
    assert "EOFError" not in text
    assert not state_file.exists()
    # (a child may still be on its way out when the stack's own process has exited)
    deadline = time.monotonic() + 10
    while [pid for pid in started if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in started if alive(pid)] == []
    host, port = state["aws_endpoint"].removeprefix("http://").split(":")
    with pytest.raises(ConnectionRefusedError), socket.create_connection((host, int(port)), timeout=2):
        pass
