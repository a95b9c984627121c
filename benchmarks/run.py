"""Run every benchmark script (each in its own process), or only some: ``python benchmarks/run.py [--only NAME]``.

Each ``benchmarks/<name>.py`` (except ``_common`` and this runner) writes ``results/<name>.json`` and
regenerates ``docs/benchmarks.md``; a separate process per script keeps their imports, threads and memory
from leaking into each other's timings.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    """Benchmark names: every ``benchmarks/*.py`` except private modules and this runner."""
    return sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_") and p.stem != "run")


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks in order; return 0 when all succeeded, 1 otherwise (2: unknown name)."""
    names = available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="NAME", help=f"repeatable; one of {', '.join(names)}")
    parser.add_argument("--list", action="store_true", help="print the benchmark names and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(names))
        return 0
    chosen = args.only or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    failed = []
    for name in chosen:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        rc = subprocess.run([sys.executable, str(HERE / f"{name}.py")], cwd=HERE.parent).returncode
        print(f"== {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.perf_counter() - start:.0f} s",
              flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
