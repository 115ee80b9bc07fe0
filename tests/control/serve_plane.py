"""Runs a control plane in the foreground, as ``aios up`` does, for tests that kill it:
``python serve_plane.py HOME PORT [POLICY] [DATABASE_URL]`` (default: SQLite in HOME)."""

from __future__ import annotations

import sys
from pathlib import Path

from aios.control import ControlPlane, Settings
from aios.resources import Node

if __name__ == "__main__":
    import os

    home, port = Path(sys.argv[1]), int(sys.argv[2])
    policy = sys.argv[3] if len(sys.argv) > 3 else "drf"
    db = sys.argv[4] if len(sys.argv) > 4 else None
    cores = len(os.sched_getaffinity(0))
    node = Node.build("local", cpus=cores, memory="8G", gpus=2, gpu_kind="T4")
    settings = Settings(home=home, db=db, port=port, policy=policy, tick=0.2, nodes=[node])
    ControlPlane(settings).serve()
