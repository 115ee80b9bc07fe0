"""Resuming a killed `aios data add`, and `aios data check --read-data` against restic's.

Usage: python benchmarks/bench_resume.py [--size-mib 512] [--kill-at 0.5] [--repeats 3]
       [--no-restic]

On one tree of incompressible files (os.urandom, 8 MiB each, written before any timing):
- a full `aios data add` into a fresh repository: the bytes a run that starts over
  stores (the denominator);
- `aios data add` killed with SIGKILL once its packs hold `--kill-at` of the data, then
  run again to the end: the bytes of packs the rerun stores, as a fraction of the data
  (goal <= 60 % after a kill at 50 %). The same with the index cadence of the code
  before (an index file only after 32 packs, 512 MiB: `INDEX_BYTES` set to that, no time
  limit) is the baseline measured in the same run;
- `aios data check --read-data` of the full repository against `restic check
  --read-data` of a restic repository holding the same files (`restic backup` first,
  not timed), median of `--repeats`, in MB/s of file data. restic comes from Debian's
  package (`apt-get install restic`); without it those rows are skipped with a message.

Every `aios` command is a real process (the venv's `aios` entry point). Rates on the
shared 2-core machine move with its load (printed before and after): compare ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1024 * 1024
PASSPHRASE = "benchmark passphrase"

# Runs `aios` with the index written only after 512 MiB of packs and never for time:
# the cadence before mid-run index files (32 packs of 16 MiB).
_OLD_CADENCE = """
import sys
import aios.data.packer as packer
packer.INDEX_BYTES = 32 * packer.PACK_SIZE
packer.INDEX_SECONDS = float("inf")
from aios.cli.main import app
app(sys.argv[1:], prog_name="aios")
"""


def make_files(root: Path, size_mib: int) -> int:
    root.mkdir(parents=True)
    for i in range(size_mib // 8):
        (root / f"file{i:03d}.bin").write_bytes(os.urandom(8 * MIB))
    return (size_mib // 8) * 8 * MIB


def aios_command(old_cadence: bool) -> list[str]:
    if old_cadence:
        return [sys.executable, "-c", _OLD_CADENCE]
    return [str(Path(sys.executable).with_name("aios"))]


def env_for(repo: Path) -> dict[str, str]:
    return {**os.environ, "AIOS_DATA_REPO": str(repo), "AIOS_DATA_PASSPHRASE": PASSPHRASE}


def aios(repo: Path, *args: str, old_cadence: bool = False) -> float:
    """Runs one `aios` command to its end; returns its seconds."""
    start = time.perf_counter()
    done = subprocess.run(
        [*aios_command(old_cadence), *args],
        env=env_for(repo),
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"aios {' '.join(args)} failed:\n{done.stderr}")
    return seconds


def pack_bytes(repo: Path) -> int:
    """Bytes of the complete packs in a local repository (temporaries left out)."""
    total = 0
    for folder, _dirs, files in os.walk(repo / "data"):
        for name in files:
            if ".tmp-" not in name:
                try:
                    total += (Path(folder) / name).stat().st_size
                except FileNotFoundError:
                    continue
    return total


def killed_then_resumed(
    base: Path, name: str, src: Path, data: int, kill_at: float, *, old_cadence: bool
) -> tuple[int, int, float]:
    """`aios data add` killed once its packs hold `kill_at` of `data`, then run again:
    returns (bytes stored before the kill, bytes the rerun stored, rerun seconds)."""
    repo = base / name
    aios(repo, "data", "init")
    child = subprocess.Popen(
        [*aios_command(old_cadence), "data", "add", "files", str(src)],
        env=env_for(repo),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while child.poll() is None and pack_bytes(repo) < kill_at * data:
        time.sleep(0.01)
    if child.poll() is not None:
        raise SystemExit(f"{name}: the add ended before {kill_at:.0%} could be killed")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = pack_bytes(repo)
    seconds = aios(repo, "data", "add", "files", str(src), old_cadence=old_cadence)
    return before, pack_bytes(repo) - before, seconds


def has_restic() -> bool:
    if shutil.which("restic") is None:
        print("restic is not installed (apt-get install restic): its rows are skipped")
        return False
    return True


def restic(repo: Path, *args: str) -> None:
    env = {**os.environ, "RESTIC_PASSWORD": PASSPHRASE, "RESTIC_REPOSITORY": str(repo)}
    subprocess.run(["restic", *args], env=env, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--kill-at", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-restic", action="store_true")
    args = parser.parse_args()
    with_restic = not args.no_restic and has_restic()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="aios-bench-resume-") as tmp:
        base = Path(tmp)
        src = base / "src"
        data = make_files(src, args.size_mib)
        mb = data / 1e6

        full = base / "full"
        aios(full, "data", "init")
        full_seconds = aios(full, "data", "add", "files", str(src))
        full_bytes = pack_bytes(full)

        rows = [
            ("full add (starting over)", 0, full_bytes, full_seconds),
            (
                "rerun, index after 32 packs (before)",
                *killed_then_resumed(base, "old", src, data, args.kill_at, old_cadence=True),
            ),
            (
                "rerun, index every 32 MiB / 60 s",
                *killed_then_resumed(base, "new", src, data, args.kill_at, old_cadence=False),
            ),
        ]
        print(f"\n{args.size_mib} MiB incompressible, killed at {args.kill_at:.0%} of the data\n")
        print("| run | stored before the kill | stored by the run | / data | seconds |")
        print("|---|---:|---:|---:|---:|")
        for what, before, stored, seconds in rows:
            print(
                f"| {what} | {before / data:.0%} | {stored:,} | {stored / data:.1%} "
                f"| {seconds:.2f} |"
            )
        print(f"\nrerun / baseline rerun: {rows[2][2] / rows[1][2]:.2f}")

        ours = statistics.median(
            [aios(full, "data", "check", "--read-data") for _ in range(args.repeats)]
        )
        print(f"\ncheck --read-data of {mb:,.0f} MB, median of {args.repeats}\n")
        print("| what | seconds | MB/s |")
        print("|---|---:|---:|")
        print(f"| aios data check --read-data | {ours:.2f} | {mb / ours:,.0f} |")
        if with_restic:
            restic_repo = base / "restic"
            restic(restic_repo, "init")
            restic(restic_repo, "backup", "--quiet", str(src))
            theirs: list[float] = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                restic(restic_repo, "check", "--read-data")
                theirs.append(time.perf_counter() - start)
            r = statistics.median(theirs)
            print(f"| restic check --read-data | {r:.2f} | {mb / r:,.0f} |")
            print(f"\naios / restic: {r / ours:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
