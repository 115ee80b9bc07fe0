"""``aios up`` as a real process, and what the CLI says when there is no control plane."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from aios.cli.main import app
from tests.cli.cli_harness import DEADLINE, PLAIN, free_port, one_error_line

AIOS = [sys.executable, "-c", "from aios.cli.main import app; app()"]


def wait_healthy(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "aios up did not answer /healthz"
        time.sleep(0.05)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_up_serves_until_interrupted_then_exits_0(tmp_path: Path, stop: signal.Signals) -> None:
    """``aios up`` says where it serves and where the admin token is; the CLI finds the
    server and token through AIOS_URL and AIOS_HOME; Ctrl-C (or SIGTERM) ends it with 0."""
    home, port = tmp_path / "home", free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in {"AIOS_URL", "AIOS_TOKEN"}}
    process = subprocess.Popen(
        [*AIOS, "up", "--home", str(home), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_healthy(url, process)
        me = CliRunner(env={**PLAIN, "AIOS_URL": url, "AIOS_HOME": str(home)}).invoke(
            app, ["whoami"]
        )
        assert me.stdout == f"admin (admin) at {url}\n"

        started = time.monotonic()
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=DEADLINE)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, stderr
    assert took < 5, f"took {took:.1f} s to stop"
    assert f"control plane at {url}" in stdout
    assert f"admin token written to {home / 'admin.token'}" in stdout
    assert stdout.splitlines()[-1] == "aios: control plane stopped"
    assert "Traceback" not in stderr


def test_up_without_auth_on_a_public_address_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"

    result = CliRunner(env=PLAIN).invoke(
        app, ["up", "--no-auth", "--host", "0.0.0.0", "--home", str(home)]
    )

    assert result.exit_code == 2
    assert "--no-auth" in one_error_line(result)
    assert not home.exists()


@pytest.mark.parametrize("host", ["http://aios.example", "aios.example:8470", "a/b"])
def test_up_with_an_allowed_host_that_is_no_host_is_refused(tmp_path: Path, host: str) -> None:
    home = tmp_path / "home"

    result = CliRunner(env=PLAIN).invoke(
        app, ["up", "--home", str(home), "--port", str(free_port()), "--allowed-host", host]
    )

    assert result.exit_code == 2
    assert one_error_line(result).startswith(f"--allowed-host: {host!r} is not a host name")
    assert not home.exists()


def test_up_on_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = CliRunner(env=PLAIN).invoke(
            app, ["up", "--home", str(tmp_path / "home"), "--port", str(port)]
        )

    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in one_error_line(result)


@pytest.mark.parametrize("args", [["ps"], ["submit", "--", "true"], ["queue", "ls"]])
def test_a_control_plane_that_is_down_is_one_line_and_exit_1(args: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = CliRunner(env={**PLAIN, "AIOS_URL": url, "AIOS_TOKEN": "t"}).invoke(app, args)

    assert result.exit_code == 1
    assert one_error_line(result).startswith(f"cannot reach the control plane at {url}")


def test_url_option_overrides_the_environment() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = CliRunner(env={**PLAIN, "AIOS_URL": "http://127.0.0.1:1", "AIOS_TOKEN": "t"}).invoke(
        app, ["--url", url, "whoami"]
    )

    assert result.exit_code == 1
    assert url in one_error_line(result)
