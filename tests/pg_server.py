"""A throwaway PostgreSQL server for the tests: the server binaries Debian installs, a
cluster in a temporary directory, listening on a free loopback port, and a fresh
database for each test made by copying a template (much faster than a new cluster).

PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs
to, and the server runs as, the ``postgres`` OS user the Debian package creates."""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PostgresServer", "PostgresUnavailable", "server_binaries"]

DEBIAN_BINARIES = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
MIGRATED = "aios_migrated"
# A throwaway cluster need not survive a power cut: skipping fsync makes creating a
# database and each commit cost a fraction of what they cost durably.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class PostgresUnavailable(Exception):
    """No PostgreSQL server can be started here (the reason says why)."""


def server_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: Debian's newest
    ``/usr/lib/postgresql/<version>/bin``, else wherever ``initdb`` is on ``PATH``."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name))

    debian = sorted(DEBIAN_BINARIES.glob("*/bin/initdb"), key=version)
    if debian:
        return debian[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """A running cluster: :meth:`start` it, :meth:`create_database` per test, then
    :meth:`stop` it (which deletes the cluster)."""

    def __init__(self, binaries: Path, root: Path, owner: pwd.struct_passwd | None) -> None:
        self.binaries = binaries
        self.root = root
        self.owner = owner
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        self._migrated = False

    @classmethod
    def start(cls, binaries: Path) -> PostgresServer:
        """Initialises a cluster in a new temporary directory and starts its server on a
        free loopback port; raises :class:`PostgresUnavailable` when it cannot."""
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root and there is no {SUPERUSER!r} OS user to run the "
                    "PostgreSQL server as (PostgreSQL refuses to run as root)"
                ) from None
        root = Path(tempfile.mkdtemp(prefix="aios-postgres-"))
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        server = cls(binaries, root, owner)
        try:
            server._initdb()
            server._serve()
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, program: str, arguments: Sequence[str]) -> None:
        """Runs one of the server's programs as the cluster's owner; a failure raises
        :class:`PostgresUnavailable` with the program's output and the server's log."""
        owner = self.owner
        result = subprocess.run(
            [str(self.binaries / program), *arguments],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            user=None if owner is None else owner.pw_uid,
            group=None if owner is None else owner.pw_gid,
            extra_groups=None if owner is None else [],
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise PostgresUnavailable(
                f"{program} {' '.join(arguments)} exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}{log}"
            )

    def _initdb(self) -> None:
        self._run(
            "initdb",
            [
                *("-D", str(self.data), "-U", SUPERUSER, "--auth=trust"),
                *("-E", "UTF8", "--no-locale", "--no-sync"),
            ],
        )

    def _serve(self, attempts: int = 3) -> None:
        """Starts the server on a free port, trying another when the one chosen was
        taken between choosing and binding."""
        options = " ".join(f"-c {key}={value}" for key, value in SETTINGS.items())
        for attempt in range(attempts):
            self.port = _free_port()
            try:
                self._run(
                    "pg_ctl",
                    [
                        *("start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60"),
                        *("-o", f"-p {self.port} -k {self.root} {options}"),
                    ],
                )
                return
            except PostgresUnavailable:
                if attempt == attempts - 1:
                    raise

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, template: str | None = None, name: str | None = None) -> str:
        """Creates a new database (a copy of ``template`` when given, else an empty one)
        named ``name``, or uniquely when none is given, and returns its URL."""
        import psycopg
        from psycopg import sql

        name = name or f"test_{next(self._names)}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        with psycopg.connect(self.url(SUPERUSER), autocommit=True) as admin:
            admin.execute(statement)
        return self.url(name)

    def create_migrated_database(self) -> str:
        """Creates a new database already holding the newest schema (a copy of a template
        migrated on the first call) and returns its URL: opening it migrates nothing."""
        if not self._migrated:
            from aios.store import Database

            Database(self.create_database(name=MIGRATED)).close()
            self._migrated = True
        return self.create_database(template=MIGRATED)

    def stop(self) -> None:
        """Stops the server at once (its data is thrown away) and deletes the cluster."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", ["stop", "-D", str(self.data), "-m", "immediate", "-w"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
