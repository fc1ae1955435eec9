"""Cold start: whole-process time to import each handler module vs `import boto3` alone, and vs
a minimal Powertools handler (the anchor: Logger + a validating resolver + one pydantic model +
one boto3 client), as ratios.

The layer measured is the one `sam build` ships: shared/Makefile's build-SharedLayer, run into
.bench-layer/ for this machine's platform (the deployed layer is arm64) and compiled by the
runtime's Python as the build does (bytecode: unchecked-hash .pyc for python3.13). It is imported
with that same python3.13 (its .pyc and its binary wheels are for 3.13 only); the figure says
which Python it imported with. With no python3.13 here, the layer is built for and imported with
this Python instead, which the header says: a stand-in, not what ships.

Each measurement is a fresh `python -S -c "import ..."` (interpreter start included, as a cold
Lambda pays it) with the variables Lambda's runtime sets (LAMBDA_ENVIRONMENT), whose path holds
only what a Lambda has: the layer (its requirements, boto3 included, and the `handoff` package)
and the function; none of the development packages (moto, awscrt, ...) that the project's venv
holds. Nothing is written while measuring (PYTHONDONTWRITEBYTECODE, /opt is read-only in Lambda).
Runs are interleaved (boto3, anchor, handler) so that a noisy neighbour hits all alike; the figure
is the median of `runs`.

Memory: each handler process's peak RSS (ru_maxrss, from wait4) and CPU time (user + system) are
measured too, and printed beside the function's MemorySize (template.yaml). Lambda gives a function
CPU in proportion to its memory, one vCPU at 1,769 MB; the estimated cold start at MemorySize
assumes the deployed arm64 core is as fast as this machine's and scales the measured CPU time by
1769 / MemorySize (below 1,769 MB). Peak RSS is the import's (what a cold start holds before the
first request): a request's own data comes on top of it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PYTHON = "3.13"  # the functions' runtime (template.yaml)


def _functions() -> dict[str, dict[str, Any]]:
    from local.cfn_yaml import yaml_parse

    sam = yaml_parse((ROOT / "template.yaml").read_text())
    default_memory = sam.get("Globals", {}).get("Function", {}).get("MemorySize", 128)
    functions = {}
    for name, resource in sam["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            properties = resource["Properties"]
            functions[name] = {**properties, "MemorySize": properties.get("MemorySize", default_memory)}
    return functions


def handler_modules() -> dict[str, str]:
    modules = {}
    for name, properties in _functions().items():
        folder = Path(properties["CodeUri"]).name
        module = properties["Handler"].rsplit(".", 1)[0]
        modules[name] = f"functions.{folder}.{module}"
    return modules


def memory_sizes() -> dict[str, Any]:
    """function -> its MemorySize (MB) in template.yaml (a number, or a {"!Ref": parameter})."""
    return {name: properties["MemorySize"] for name, properties in _functions().items()}


# The targets (issue 17): no function heavier than the minimal anchor.
TARGET_EACH, TARGET_MEDIAN = 2.2, 2.0
ONE_VCPU_MB = 1769  # Lambda: a function gets one vCPU's worth of CPU at 1,769 MB, in proportion below


LAYER = ROOT / ".bench-layer"


def runtime_python() -> tuple[str, str]:
    """(interpreter, its version): the runtime's python3.13 when one runs here, else this one."""
    found = shutil.which(f"python{RUNTIME_PYTHON}")
    if found is not None:
        probe = subprocess.run(
            [found, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0 and probe.stdout.startswith(RUNTIME_PYTHON + "."):
            return found, probe.stdout.strip()
    return sys.executable, platform.python_version()


def layer_path(python: str, version: str) -> Path:
    """The layer as shared/Makefile builds it, for this machine and `python`; rebuilt when its
    inputs (requirements, the Makefile, the handoff package) change."""
    shared = ROOT / "shared"
    minor = ".".join(version.split(".")[:2])
    inputs = [shared / "requirements.txt", shared / "Makefile", *sorted((shared / "handoff").rglob("*.py"))]
    digest = hashlib.sha256(python.encode() + b"".join(p.read_bytes() for p in inputs)).hexdigest()
    stamp = LAYER / ".stamp"
    if not stamp.exists() or stamp.read_text() != digest:
        shutil.rmtree(LAYER, ignore_errors=True)
        machine = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
        subprocess.run(
            ["make", "--no-print-directory", "-C", str(shared), "build-SharedLayer", f"ARTIFACTS_DIR={LAYER}",
             f"LAYER_PYTHON={minor}", f"LAYER_COMPILER={python}", f"PIP={sys.executable} -m pip",
             f"LAYER_PLATFORM=manylinux2014_{machine[platform.machine().lower()]}"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        stamp.write_text(digest)
    return LAYER / "python"


# The anchor: the least a Powertools API handler with one typed route and one AWS client imports.
ANCHOR = (
    "import boto3\n"
    "from pydantic import BaseModel\n"
    "from aws_lambda_powertools import Logger\n"
    "from aws_lambda_powertools.event_handler import APIGatewayRestResolver\n"
    "logger = Logger()\n"
    "app = APIGatewayRestResolver(enable_validation=True)\n"
    "class Item(BaseModel):\n"
    "    name: str\n"
    "client = boto3.client('dynamodb')\n"
    "@app.post('/items')\n"
    "def create(item: Item) -> dict:\n"
    "    return {'name': item.name}\n"
)

LAMBDA_ENVIRONMENT = {
    "LAMBDA_TASK_ROOT": "/var/task",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class Run:
    """One fresh process: wall seconds, CPU seconds (user + system) and peak RSS (MB)."""

    def __init__(self, wall: float, cpu: float, rss_mb: float) -> None:
        self.wall, self.cpu, self.rss_mb = wall, cpu, rss_mb


def timed_import(python: str, layer: Path, statement: str, function: str) -> float:
    return measured_import(python, layer, statement, function).wall


def measured_import(python: str, layer: Path, statement: str, function: str) -> Run:
    path = [str(layer), str(ROOT)]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONDONTWRITEBYTECODE": "1",
        **LAMBDA_ENVIRONMENT,
        "AWS_LAMBDA_FUNCTION_NAME": f"handoff-{function}",
    }
    program = f"import sys; sys.path[:0] = {path!r}; {statement}"
    started = time.perf_counter()
    process = subprocess.Popen([python, "-S", "-c", program], env=env, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, program)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)  # ru_maxrss: KB on Linux


class Row:
    """One function's medians: handler, boto3 and anchor wall seconds; the handler's CPU seconds
    and peak RSS (MB)."""

    def __init__(self, function: str, handler: list[Run], baseline: list[float], anchor: list[float]) -> None:
        self.function = function
        self.handler = statistics.median(r.wall for r in handler)
        self.baseline = statistics.median(baseline)
        self.anchor = statistics.median(anchor)
        self.cpu = statistics.median(r.cpu for r in handler)
        self.rss_mb = max(r.rss_mb for r in handler)
        self.ratio = self.handler / self.baseline


def measure(python: str, layer: Path, runs: int = 7) -> tuple[list[Row], float]:
    """([Row per function], anchor / boto3 (median over the functions))."""
    rows = []
    anchors = []
    for function, module in sorted(handler_modules().items()):
        handler: list[Run] = []
        baseline: list[float] = []
        anchor: list[float] = []
        for _ in range(runs):
            baseline.append(timed_import(python, layer, "import boto3", function))
            anchor.append(timed_import(python, layer, f"exec({ANCHOR!r})", function))
            handler.append(measured_import(python, layer, f"import {module}", function))
        row = Row(function, handler, baseline, anchor)
        anchors.append(row.anchor / row.baseline)
        rows.append(row)
    return rows, statistics.median(anchors)


def _memory_mb(value: Any) -> int | None:
    return value if isinstance(value, int) else None  # a parameter (!Ref): not known here


def main() -> None:
    python, version = runtime_python()
    ships = version.startswith(RUNTIME_PYTHON + ".")
    layer = layer_path(python, version)
    compiled = any(layer.glob("botocore/__pycache__/*.pyc"))
    print(
        "Cold start: import the handler module vs `import boto3` alone and vs the minimal Powertools anchor "
        "(fresh process, Lambda's variables, median of 7, interleaved)"
    )
    print(
        f"  layer: as shared/Makefile builds it for sam build ({'with' if compiled else 'WITHOUT'} bytecode), "
        f"for this machine's {platform.machine()}; imported with Python {version} ({python})"
        + ("" if ships else f": NOT the runtime's {RUNTIME_PYTHON}, none runs here; a stand-in for what ships")
    )
    rows, anchor_ratio = measure(python, layer)
    memory = memory_sizes()
    print(
        f"  {'function':28} {'handler':>9} {'boto3':>9} {'anchor':>9} {'ratio':>7}  (anchor {anchor_ratio:.2f})"
        f" {'CPU':>8} {'peak RSS':>9} {'MemorySize':>10} {'init at MemorySize':>18}"
    )
    for row in rows:
        size = _memory_mb(memory[row.function])
        share = min(1.0, size / ONE_VCPU_MB) if size else None
        estimate = f"{row.cpu / share * 1000:6.0f}ms ({share:.2f} vCPU)" if share else "?"
        print(
            f"  {row.function:28} {row.handler * 1000:7.0f}ms {row.baseline * 1000:7.0f}ms {row.anchor * 1000:7.0f}ms"
            f" {row.ratio:7.2f}{'':16} {row.cpu * 1000:6.0f}ms {row.rss_mb:6.0f} MB {size or '?':>7} MB {estimate:>18}"
        )
    ratios = [row.ratio for row in rows]
    median, highest = statistics.median(ratios), max(ratios)
    met = median <= TARGET_MEDIAN and highest <= TARGET_EACH
    print(
        f"  median ratio {median:.2f}, highest {highest:.2f}; the minimal Powertools anchor "
        f"{anchor_ratio:.2f} x import boto3 (a function heavier than the anchor imports more than it needs); "
        f"target: each <= {TARGET_EACH}, median <= {TARGET_MEDIAN}: {'met' if met else 'MISSED'}"
    )
    print(
        "  CPU: the handler process's user + system time; peak RSS: its ru_maxrss (the import's; a request's data "
        f"comes on top); init at MemorySize: CPU x {ONE_VCPU_MB} / MemorySize, assuming an arm64 vCPU as fast as "
        "this machine's core (Lambda's CPU is in proportion to memory, one vCPU at 1,769 MB)"
    )


if __name__ == "__main__":
    main()
