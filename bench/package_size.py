"""Package size: each function's code and the layer, as `sam build` makes them (unzipped and zipped)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# SAM CLI runs from a venv of its own (Makefile: SAM_VENV, which it names in HANDOFF_SAM)
SAM = Path(os.environ.get("HANDOFF_SAM") or ROOT / ".venv-sam" / "bin" / "sam")


def sizes(folder: Path) -> tuple[int, int]:
    """(bytes on disk, bytes zipped) of a build folder."""
    raw, buffer = 0, io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                raw += path.stat().st_size
                archive.write(path, path.relative_to(folder))
    return raw, len(buffer.getvalue())


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        build = Path(scratch) / "build"
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "SAM_CLI_TELEMETRY": "0"}
        from bench.cold_start import RUNTIME_PYTHON, runtime_python

        bytecode = runtime_python()[1].startswith(RUNTIME_PYTHON + ".")
        if not bytecode:  # the build refuses without a python3.13; the sizes are then without .pyc files
            env["HANDOFF_NO_BYTECODE"] = "1"
        subprocess.run(
            [str(SAM), "build", "--build-dir", str(build), "--cache-dir", str(Path(scratch) / "cache")],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        print(
            "Package size, as sam build makes it (Lambda's limits: 50 MB zipped, 250 MB unzipped with layers)"
            + ("" if bytecode else f"; no python{RUNTIME_PYTHON} here: the layer WITHOUT its bytecode")
        )
        for folder in sorted(p for p in build.iterdir() if p.is_dir()):
            raw, zipped = sizes(folder)
            scale, unit = (1024, "KB") if raw < 1024 * 1024 else (1024 * 1024, "MB")
            print(f"  {folder.name:28} {raw / scale:8.1f} {unit} unzipped {zipped / scale:8.1f} {unit} zipped")


if __name__ == "__main__":
    main()
