"""The layers hold at run time: what each entry point loads.

import-linter (``make lint``) holds the static imports; these tests hold what a process
really loads, lazy imports included, in a fresh interpreter each.
"""

from __future__ import annotations

import json
import subprocess
import sys

SERVER = ("sqlalchemy", "fastapi", "uvicorn", "starlette")


def loaded_after(statement: str) -> set[str]:
    """The top-level packages and ``aios.*`` modules a fresh interpreter has loaded
    after running ``statement``."""
    probe = (
        f"{statement}\n"
        "import json, sys\n"
        "names = {n.split('.')[0] for n in sys.modules} | "
        "{n for n in sys.modules if n.startswith('aios.')}\n"
        "print(json.dumps(sorted(names)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_the_sdk_loads_no_server_code_and_no_numpy() -> None:
    loaded = loaded_after("import aios.client")
    assert not loaded & {*SERVER, "numpy"}
    control_side = {m for m in loaded if m.startswith(("aios.control.", "aios.deployments."))}
    assert control_side <= {"aios.control.specs", "aios.deployments.specs"}


def test_the_sdk_client_class_loads_no_server_code() -> None:
    loaded = loaded_after("from aios import Client, job\nClient('http://127.0.0.1:1')")
    assert not loaded & {*SERVER, "numpy"}


def test_a_replica_loads_neither_the_cli_nor_the_control_plane() -> None:
    loaded = loaded_after("import aios.serving.command\nimport aios.serving.server")
    assert not {m for m in loaded if m.startswith(("aios.cli", "aios.control", "aios.deployments"))}
    assert "sqlalchemy" not in loaded


def test_the_cli_starts_without_the_database_or_numpy() -> None:
    loaded = loaded_after("import aios.cli.main")
    assert not loaded & {"sqlalchemy", "numpy"}
