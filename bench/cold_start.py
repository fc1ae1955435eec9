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

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PYTHON = "3.13"  # the functions' runtime (template.yaml)


def handler_modules() -> dict[str, str]:
    from local.cfn_yaml import yaml_parse

    sam = yaml_parse((ROOT / "template.yaml").read_text())
    modules = {}
    for name, resource in sam["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            folder = Path(resource["Properties"]["CodeUri"]).name
            module = resource["Properties"]["Handler"].rsplit(".", 1)[0]
            modules[name] = f"functions.{folder}.{module}"
    return modules


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


def timed_import(python: str, layer: Path, statement: str, function: str) -> float:
    path = [str(layer), str(ROOT)]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONDONTWRITEBYTECODE": "1",
        **LAMBDA_ENVIRONMENT,
        "AWS_LAMBDA_FUNCTION_NAME": f"handoff-{function}",
    }
    program = f"import sys; sys.path[:0] = {path!r}; {statement}"
    started = time.perf_counter()
    subprocess.run([python, "-S", "-c", program], env=env, check=True, cwd=ROOT)
    return time.perf_counter() - started


def measure(python: str, layer: Path, runs: int = 7) -> tuple[list[tuple[str, float, float, float, float]], float]:
    """([(function, handler s, boto3 s, anchor s, handler / boto3)], anchor / boto3), medians."""
    rows = []
    anchors = []
    for function, module in sorted(handler_modules().items()):
        handler, baseline, anchor = [], [], []
        for _ in range(runs):
            baseline.append(timed_import(python, layer, "import boto3", function))
            anchor.append(timed_import(python, layer, f"exec({ANCHOR!r})", function))
            handler.append(timed_import(python, layer, f"import {module}", function))
        h, b, a = statistics.median(handler), statistics.median(baseline), statistics.median(anchor)
        anchors.append(a / b)
        rows.append((function, h, b, a, h / b))
    return rows, statistics.median(anchors)


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
    print(f"  {'function':28} {'handler':>9} {'boto3':>9} {'anchor':>9} {'ratio':>7}  (anchor {anchor_ratio:.2f})")
    for function, handler, baseline, anchor, ratio in rows:
        print(f"  {function:28} {handler * 1000:7.0f}ms {baseline * 1000:7.0f}ms {anchor * 1000:7.0f}ms {ratio:7.2f}")
    ratios = [row[4] for row in rows]
    print(
        f"  median ratio {statistics.median(ratios):.2f}, highest {max(ratios):.2f}; the minimal Powertools anchor "
        f"{anchor_ratio:.2f} x import boto3 (a function heavier than the anchor imports more than it needs)"
    )


if __name__ == "__main__":
    main()
