"""Cold start: whole-process time to import each handler module vs `import boto3` alone.

Each measurement is a fresh `python -S -c "import ..."` (interpreter start included, as a cold
Lambda pays it) with the variables Lambda's runtime sets (LAMBDA_ENVIRONMENT), whose path holds
only what a Lambda has: the layer's requirements installed for this machine (in .bench-layer/;
the layer pins boto3 too), the layer's `handoff` package and the function; none of the
development packages (moto, awscrt, ...) that the project's venv holds. Runs are interleaved so
that a noisy neighbour hits both sides alike; the figure is the median of `runs`.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def handler_modules() -> dict[str, str]:
    from samcli.yamlhelper import yaml_parse

    sam = yaml_parse((ROOT / "template.yaml").read_text())
    modules = {}
    for name, resource in sam["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            folder = Path(resource["Properties"]["CodeUri"]).name
            module = resource["Properties"]["Handler"].rsplit(".", 1)[0]
            modules[name] = f"functions.{folder}.{module}"
    return modules


LAYER = ROOT / ".bench-layer"


def layer_path() -> Path:
    """The layer's requirements (boto3 included) for this machine, installed once."""
    wanted = (ROOT / "shared" / "requirements.txt").read_text()
    stamp = LAYER / ".stamp"
    digest = hashlib.sha256(wanted.encode()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        requirements = LAYER.with_suffix(".txt")
        requirements.write_text(wanted)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade",
             "--target", str(LAYER), "-r", str(requirements)],
            check=True,
        )  # fmt: skip
        stamp.write_text(digest)
    return LAYER


# What Lambda's runtime sets (a subset). Libraries read them at import: the X-Ray SDK builds a
# centralised sampler with its own boto3 client (~130 ms here) unless LAMBDA_TASK_ROOT says it
# runs in Lambda, where it samples locally; Powertools' Tracer patches boto3 and requests only
# in Lambda. Without them the figure would include work Lambda never does, and miss some it does.
LAMBDA_ENVIRONMENT = {
    "LAMBDA_TASK_ROOT": "/var/task",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def timed_import(statement: str, function: str) -> float:
    path = [str(layer_path()), str(ROOT / "shared"), str(ROOT)]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONDONTWRITEBYTECODE": "1",
        **LAMBDA_ENVIRONMENT,
        "AWS_LAMBDA_FUNCTION_NAME": f"handoff-{function}",
    }
    program = f"import sys; sys.path[:0] = {path!r}; {statement}"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-S", "-c", program], env=env, check=True, cwd=ROOT)
    return time.perf_counter() - started


def measure(runs: int = 7) -> list[tuple[str, float, float, float]]:
    """(function, handler median s, boto3 median s, ratio) per function."""
    rows = []
    for function, module in sorted(handler_modules().items()):
        timed_import(f"import {module}", function)  # compile once: Lambda ships bytecode-compiled code too
        handler, baseline = [], []
        for _ in range(runs):
            baseline.append(timed_import("import boto3", function))
            handler.append(timed_import(f"import {module}", function))
        h, b = statistics.median(handler), statistics.median(baseline)
        rows.append((function, h, b, h / b))
    return rows


def main() -> None:
    print(
        "Cold start: import the handler module vs `import boto3` alone (fresh process, Lambda's variables, median of 7)"
    )
    print(f"  {'function':28} {'handler':>9} {'boto3':>9} {'ratio':>7}  (target <= 1.3)")
    for function, handler, baseline, ratio in measure():
        print(f"  {function:28} {handler * 1000:7.0f}ms {baseline * 1000:7.0f}ms {ratio:7.2f}")


if __name__ == "__main__":
    main()
