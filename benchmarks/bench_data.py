"""Data store throughput: ingest, a 1 % changed second version, restore, small files.

Usage: python benchmarks/bench_data.py [--size-mib 512] [--small-files 100000] [--repeats 1]

Rows, all on the same files in one tmp dir (written once, outside the timings):
- ingest of incompressible files (os.urandom, 8 MiB each) by `Repository.store_tree`
  (encrypted) + `save_snapshot`, against `restic backup` of the same files into a fresh
  restic repository (only the backup is timed; restic uses every core and its default
  compression), and against the in-memory limit: chunk + keyed BLAKE3 + compress
  decision + AES-GCM of the same bytes already in memory, on the same worker threads,
  with no I/O at all;
- three more versions, each with 1 % of the bytes overwritten in place, in runs of
  1 MiB, 64 KiB and 2 KiB at random offsets: new bytes stored, ours against restic's
  ``data_added`` (both chunk at ~1 MiB, so every run costs the chunks it touches);
- restore of the last version, ours against ``restic restore``;
- 100,000 files of 1 KiB in 100 dirs: files per second, ours against restic.

Wall-clock rates on the shared 2-core machine move with its load (printed before and
after); compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pyfastcdc import FastCDC

from aios.data import ChunkerParams, LocalBackend, Repository
from aios.data.crypto import Sealer

MIB = 1024 * 1024
PASSWORD = "benchmark passphrase"


def make_big_files(root: Path, size_mib: int) -> int:
    root.mkdir(parents=True)
    for i in range(size_mib // 8):
        (root / f"file{i:03d}.bin").write_bytes(os.urandom(8 * MIB))
    return size_mib * MIB


def change_one_percent(root: Path, run_bytes: int, seed: int) -> int:
    """Overwrites 1 % of the bytes in place, in runs of `run_bytes` at random offsets of
    random files, with new random bytes; returns the bytes changed."""
    rng = random.Random(seed)
    files = sorted(root.iterdir())
    size = files[0].stat().st_size
    target = sum(p.stat().st_size for p in files) // 100
    changed = 0
    while changed < target:
        with rng.choice(files).open("r+b") as handle:
            handle.seek(rng.randrange(size - run_bytes))
            handle.write(os.urandom(run_bytes))
        changed += run_bytes
    return changed


def make_small_files(root: Path, count: int) -> None:
    for d in range(100):
        folder = root / f"dir{d:03d}"
        folder.mkdir(parents=True)
        for f in range(count // 100):
            (folder / f"f{f:05d}.txt").write_bytes(os.urandom(1024))


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def in_memory_limit(root: Path, workers: int) -> float:
    """Seconds to chunk, hash, (decide to) compress and encrypt the files held in memory."""
    buffers = [p.read_bytes() for p in sorted(root.iterdir())]
    sealer = Sealer(os.urandom(32), os.urandom(32))
    params = ChunkerParams()

    def process(buf: bytes) -> int:
        cdc = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size)
        total = 0
        for chunk in cdc.cut_buf(buf):
            sealer.blob_id(chunk.data)
            total += len(sealer.seal(chunk.data))
        return total

    with ThreadPoolExecutor(workers) as pool:
        start = time.perf_counter()
        list(pool.map(process, buffers))
        return time.perf_counter() - start


def restic(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RESTIC_PASSWORD=PASSWORD, RESTIC_REPOSITORY=str(repo))
    return subprocess.run(["restic", *args], env=env, check=True, capture_output=True, text=True)


def restic_backup(repo: Path, source: Path) -> tuple[float, int]:
    """Seconds of one `restic backup` and the bytes it added (from its JSON summary)."""
    start = time.perf_counter()
    done = restic(repo, "backup", "--json", "--quiet", str(source))
    seconds = time.perf_counter() - start
    summary = [json.loads(line) for line in done.stdout.splitlines() if '"summary"' in line]
    return seconds, int(summary[-1]["data_added"]) if summary else -1


def rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--small-files", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-restic", action="store_true")
    args = parser.parse_args()
    has_restic = not args.no_restic and shutil.which("restic") is not None
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="aios-bench-data-") as tmp:
        base = Path(tmp)
        src = base / "big"
        total = make_big_files(src, args.size_mib)
        mb = total / 1e6

        limit = statistics.median(in_memory_limit(src, args.workers) for _ in range(args.repeats))
        ours: list[float] = []
        theirs: list[float] = []
        for run in range(args.repeats):
            repo = Repository.init(LocalBackend(base / f"repo{run}"), PASSWORD)

            def ingest(repo: Repository = repo) -> None:
                stored = repo.store_tree(src, workers=args.workers)
                repo.save_snapshot(stored.tree_id, paths=[str(src)], tags={}, meta={})

            ours.append(timed(ingest))
            if has_restic:
                restic(base / f"restic{run}", "init")
                theirs.append(restic_backup(base / f"restic{run}", src)[0])
        print(f"\n### Ingest of {args.size_mib} MiB incompressible ({total // (8 * MIB)} files)\n")
        print("| what | seconds | MB/s | / in-memory limit |")
        print("|---|---:|---:|---:|")
        print(
            f"| in-memory limit ({args.workers} threads) | {limit:.2f} | {rate(mb, limit)} | 1.00 |"
        )
        t = statistics.median(ours)
        print(f"| aios store_tree, encrypted | {t:.2f} | {rate(mb, t)} | {limit / t:.2f} |")
        if theirs:
            r = statistics.median(theirs)
            print(f"| restic 0.14 backup | {r:.2f} | {rate(mb, r)} | {limit / r:.2f} |")
            print(f"\naios / restic: {r / t:.2f}x")

        repo = Repository.open(LocalBackend(base / "repo0"), PASSWORD)
        print("\n### Next versions, each with 1 % of the bytes overwritten in place\n")
        print("| runs of | aios s | aios new bytes | / total | restic s | restic added | / total |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for seed, run_bytes in enumerate((MIB, 64 * 1024, 2048)):
            change_one_percent(src, run_bytes, seed)
            start = time.perf_counter()
            stored = repo.store_tree(src, workers=args.workers)
            snapshot = repo.save_snapshot(stored.tree_id, paths=[str(src)], tags={}, meta={})
            t2 = time.perf_counter() - start
            row = f"| {run_bytes // 1024} KiB | {t2:.2f} | {stored.new_bytes:,} | "
            row += f"{stored.new_bytes / total:.2%} |"
            if has_restic:
                r2, added = restic_backup(base / "restic0", src)
                row += f" {r2:.2f} | {added:,} | {added / total:.2%} |"
            print(row)

        out = base / "restore"
        t3 = timed(lambda: repo.restore(snapshot.tree, out))
        print("\n### Restore of the last version\n")
        print("| what | seconds | MB/s |")
        print("|---|---:|---:|")
        print(f"| aios restore (verifies every chunk) | {t3:.2f} | {rate(mb, t3)} |")
        if has_restic:
            shutil.rmtree(out)
            r3 = timed(lambda: restic(base / "restic0", "restore", "latest", "--target", str(out)))
            print(f"| restic restore | {r3:.2f} | {rate(mb, r3)} |")
        shutil.rmtree(out)
        shutil.rmtree(src)

        small = base / "small"
        make_small_files(small, args.small_files)
        n = (args.small_files // 100) * 100
        repo = Repository.init(LocalBackend(base / "repo-small"), PASSWORD)
        t4 = timed(lambda: repo.store_tree(small, workers=args.workers))
        print(f"\n### {n:,} files of 1 KiB in 100 dirs\n")
        print("| what | seconds | files/s |")
        print("|---|---:|---:|")
        print(f"| aios store_tree | {t4:.2f} | {rate(n, t4)} |")
        if has_restic:
            restic(base / "restic-small", "init")
            r4 = restic_backup(base / "restic-small", small)[0]
            print(f"| restic backup | {r4:.2f} | {rate(n, r4)} |")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
