"""Data store throughput: ingest, versions with 1 % changed in place, restore, small files.

Usage: python benchmarks/bench_data.py [--size-mib 512] [--small-files 100000] [--repeats 1]
       [--chunker MIN,AVG,MAX ...]

Rows, all on the same files in one tmp dir (written once, outside the timings):
- ingest of incompressible files (os.urandom, 8 MiB each) by `Repository.store_tree`
  (encrypted) + `save_snapshot`, against `restic backup` of the same files into a fresh
  restic repository (only the backup is timed; restic uses every core and its default
  compression), and against the in-memory limit: chunk + keyed BLAKE3 + compress
  decision + AES-GCM of the same bytes already in memory, on the same worker threads,
  with no I/O at all;
- four more versions, each overwriting exactly 1 % of the bytes in place with new random
  bytes, under four change models: the 1 % as one contiguous region (a file's worth at
  most), as runs of 1 MiB, of 64 KiB, and as scattered 4 KiB writes (a page each), at
  random non-overlapping offsets of random files. New bytes stored, ours against
  restic's ``data_added``; the same for each extra ``--chunker`` (ours only);
- restore of the last version, ours against ``restic restore``;
- 100,000 files of 1 KiB in 100 dirs: files per second, ours against restic.

What a change costs. A content-defined chunker stores again every chunk a changed region
touches, and may move the boundary just after it. For k regions of length L each, at
random places far apart, the chunks around a region reach back to the previous boundary
and on to the next one: on average E[S^2]/E[S] beyond L, where S is the chunk size (the
chunk holding a random byte is a size-biased pick, larger than the mean chunk). So

    new bytes ~ k * (L + E[S^2]/E[S])  (+ a little for boundaries that move),

at most everything. With restic's bounds (512 KiB / 1 MiB / 8 MiB; pyfastcdc's chunks
then average ~1.25 MiB and E[S^2]/E[S] is ~1.5 MiB), 1 % of 512 MiB (5.1 MiB) costs ~1.3 %
as one region, ~2.8 % as six runs of at most 1 MiB, ~20 % as 82 runs of 64 KiB (regions
begin to share chunks) and nearly all of it as 1,311 scattered 4 KiB writes; halving
the chunk sizes roughly halves the cost per region, at twice the index entries. The
table prints "old chunks hit" — the bytes of the previous version's chunks that the
regions touch, from the files before the change — as the prediction to compare with.

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


Region = tuple[Path, int, int]
"""A changed region: the file, the offset and the length."""

CHANGE_MODELS: tuple[tuple[str, int | None], ...] = (
    ("one region", None),
    ("1 MiB runs", MIB),
    ("64 KiB runs", 64 * 1024),
    ("4 KiB writes", 4 * 1024),
)
"""Ways to change 1 % of the bytes: the run length (None: the whole 1 % in one run)."""


def one_percent(root: Path, run_bytes: int | None, seed: int) -> list[Region]:
    """Exactly 1 % of the bytes as runs of `run_bytes` (the last one shorter; None: one
    run, at most a file) at random, non-overlapping offsets of random files."""
    rng = random.Random(seed)
    files = sorted(root.iterdir())
    size = files[0].stat().st_size
    left = len(files) * size // 100
    run = min(run_bytes or left, size)
    regions: list[Region] = []
    taken: dict[Path, list[tuple[int, int]]] = {}
    while left > 0:
        length = min(run, left)
        path = rng.choice(files)
        offset = rng.randrange(size - length + 1)
        if any(offset < end and start < offset + length for start, end in taken.get(path, [])):
            continue
        taken.setdefault(path, []).append((offset, offset + length))
        regions.append((path, offset, length))
        left -= length
    return regions


def overwrite(regions: list[Region]) -> None:
    """Writes new random bytes over each region, in place."""
    for path, offset, length in regions:
        with path.open("r+b") as handle:
            handle.seek(offset)
            handle.write(os.urandom(length))


def chunk_lengths(data: bytes, params: ChunkerParams) -> list[int]:
    cdc = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size)
    return [chunk.length for chunk in cdc.cut_buf(data)]


def chunks_hit(regions: list[Region], params: ChunkerParams) -> int:
    """Bytes of the chunks the files have now that `regions` will touch: what a change
    there must store again, before any boundary after it moves."""
    by_file: dict[Path, list[tuple[int, int]]] = {}
    for path, offset, length in regions:
        by_file.setdefault(path, []).append((offset, offset + length))
    hit = 0
    for path, spans in by_file.items():
        start = 0
        for length in chunk_lengths(path.read_bytes(), params):
            end = start + length
            if any(a < end and start < b for a, b in spans):
                hit += length
            start = end
    return hit


def chunk_sizes(root: Path, params: ChunkerParams) -> tuple[float, float]:
    """The mean chunk size of the files under `root`, and E[S^2]/E[S]: the mean size of
    the chunk that holds a random byte."""
    lengths = [n for p in sorted(root.iterdir()) for n in chunk_lengths(p.read_bytes(), params)]
    return statistics.mean(lengths), sum(n * n for n in lengths) / sum(lengths)


def parse_chunker(text: str) -> ChunkerParams:
    """``MIN,AVG,MAX`` in KiB, e.g. ``64,256,1024``."""
    low, avg, high = (int(part) * 1024 for part in text.split(","))
    return ChunkerParams(min_size=low, avg_size=avg, max_size=high)


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
    parser.add_argument(
        "--chunker",
        type=parse_chunker,
        action="append",
        default=[],
        metavar="MIN,AVG,MAX",
        help="also measure the change models with these chunk bounds (KiB)",
    )
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

        print("\n### Next versions, each with exactly 1 % of the bytes overwritten in place\n")
        seed = 0
        for params in [ChunkerParams(), *args.chunker]:
            if params == ChunkerParams():
                repo = Repository.open(LocalBackend(base / "repo0"), PASSWORD)
                with_restic = has_restic
            else:
                repo = Repository.init(
                    LocalBackend(base / f"repo-{params.avg_size}"), PASSWORD, chunker=params
                )
                stored = repo.store_tree(src, workers=args.workers)
                repo.save_snapshot(stored.tree_id, paths=[str(src)], tags={}, meta={})
                with_restic = False
            mean, biased = chunk_sizes(src, params)
            print(
                f"chunker min/avg/max {params.min_size // 1024}/{params.avg_size // 1024}/"
                f"{params.max_size // 1024} KiB: chunks average {mean / MIB:.2f} MiB, the "
                f"chunk around a random byte {biased / MIB:.2f} MiB ({len(repo.index.blobs):,} "
                "blobs in the repository)\n"
            )
            header = "| change | regions | changed | old chunks hit | aios new bytes | / total |"
            rule = "|---|---:|---:|---:|---:|---:|"
            if with_restic:
                header += " restic added | / total |"
                rule += "---:|---:|"
            print(header)
            print(rule)
            for model, run_bytes in CHANGE_MODELS:
                seed += 1
                regions = one_percent(src, run_bytes, seed)
                changed = sum(length for _, _, length in regions)
                hit = chunks_hit(regions, params)
                overwrite(regions)
                stored = repo.store_tree(src, workers=args.workers)
                snapshot = repo.save_snapshot(stored.tree_id, paths=[str(src)], tags={}, meta={})
                if params == ChunkerParams():
                    restore_from = (repo, snapshot)  # the version restic has too
                row = f"| {model} | {len(regions):,} | {changed / total:.2%} | "
                row += (
                    f"{hit / total:.2%} | {stored.new_bytes:,} | {stored.new_bytes / total:.2%} |"
                )
                if with_restic:
                    added = restic_backup(base / "restic0", src)[1]
                    row += f" {added:,} | {added / total:.2%} |"
                print(row)
            print()

        out = base / "restore"
        repo, snapshot = restore_from
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
