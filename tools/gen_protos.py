"""Regenerate ``src/pingthings/_proto`` from ``protos/`` with betterproto2.

Run ``python tools/gen_protos.py`` (or ``nox -s protos``) after editing a ``.proto`` file, and
``python tools/gen_protos.py --check`` to fail when the committed code is stale (a test does this).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ROOT / "protos"
TARGET = ROOT / "src" / "pingthings" / "_proto"
OPTIONS = "client_generation=async,server_generation=async"


def generate(into: Path) -> None:
    """Run protoc with the betterproto2 plugin, writing the package tree into ``into``."""
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    bindir = Path(sys.executable).parent
    env = {"PATH": f"{bindir}:/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}",
           f"--python_betterproto2_out={OPTIONS}:{into}", *sources]
    # Run from the output folder so the formatter the compiler calls finds no project config.
    subprocess.run(cmd, check=True, env=env, capture_output=True, cwd=into)


def differences(a: Path, b: Path) -> list[str]:
    """Return the relative paths of files that differ between two trees."""
    out: list[str] = []
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    for rel in sorted(files_a ^ files_b):
        out.append(str(rel))
    for rel in sorted(files_a & files_b):
        if not filecmp.cmp(a / rel, b / rel, shallow=False):
            out.append(str(rel))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        stale = differences(fresh, TARGET) if TARGET.exists() else ["(missing)"]
        if args.check:
            for rel in stale:
                print(f"stale: {rel}")
            return 1 if stale else 0
        if TARGET.exists():
            shutil.rmtree(TARGET)
        shutil.copytree(fresh, TARGET)
        print(f"generated {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
