"""What the entry points cost to import: ``import aios.client`` (the SDK) and
``aios --help`` (the CLI), for this checkout against another (``--before SRC``, e.g. a
``git archive`` of an earlier commit's ``src``), interleaved in one run.

    python benchmarks/bench_imports.py --before /tmp/before/src --runs 7

Prints the median wall time of each, the ratio, and what ``import aios.client`` loads
(the number of modules, and whether SQLAlchemy, FastAPI, uvicorn and numpy are among
them). The baseline is a bare ``python -c pass``: the interpreter's own start.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("sqlalchemy", "fastapi", "uvicorn", "numpy")
PROBE = (
    "import sys, json; import aios.client; "
    f"print(json.dumps([len(sys.modules), [h for h in {HEAVY!r} if h in sys.modules]]))"
)


def _env(src: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="the src directory to compare with")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    sides: dict[str, Path | None] = {"after": None}
    if args.before is not None:
        sides = {"before": args.before, "after": None}
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import aios.client": [sys.executable, "-c", "import aios.client"],
        "aios --help": [str(Path(sys.executable).parent / "aios"), "--help"],
    }
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.runs):
        for side, src in sides.items():
            for name, argv in commands.items():
                times.setdefault((side, name), []).append(_timed(argv, _env(src)))
    for side, src in sides.items():
        out = subprocess.run(
            [sys.executable, "-c", PROBE], env=_env(src), check=True, capture_output=True
        )
        count, heavy = json.loads(out.stdout)
        print(f"{side}: import aios.client loads {count} modules; heavy: {heavy or 'none'}")
    for name in commands:
        row = [f"{name:22}"]
        medians = {}
        for side in sides:
            medians[side] = statistics.median(times[(side, name)])
            row.append(f"{side} {medians[side] * 1000:7.1f} ms")
        if "before" in medians:
            row.append(f"after/before {medians['after'] / medians['before']:.2f}")
        print("  ".join(row))


if __name__ == "__main__":
    main()
