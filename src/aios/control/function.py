"""Runs a Python function submitted from the SDK: ``python -m aios.control.function
FILE`` loads ``(function, args, kwargs)`` pickled by cloudpickle, calls it, and writes
its return value to ``result.pkl`` beside FILE (atomically). An exception ends the
process with exit code 1 after printing its traceback to stderr."""

from __future__ import annotations

import os
import secrets
import sys
import traceback
from pathlib import Path

RESULT_FILE = "result.pkl"


def main(argv: list[str]) -> int:
    import cloudpickle

    if len(argv) != 1:
        print("usage: python -m aios.control.function FILE", file=sys.stderr)
        return 2
    source = Path(argv[0])
    function, args, kwargs = cloudpickle.loads(source.read_bytes())
    try:
        value = function(*args, **kwargs)
    except BaseException:
        traceback.print_exc()
        return 1
    target = source.with_name(RESULT_FILE)
    # Each replica of a gang writes the result: each through a file of its own (named
    # by more than the pid: each replica's sandbox numbers its processes from 1).
    partial = target.with_name(f"{target.stem}.{secrets.token_hex(8)}.tmp")
    with partial.open("wb") as out:
        cloudpickle.dump(value, out)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
