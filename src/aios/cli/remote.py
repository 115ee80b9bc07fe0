"""How the CLI's commands reach a control plane, and how they end when it refuses.

The global options ``aios --url URL --token-file PATH`` become a :class:`Remote` on the
Click context; a command calls :func:`connect` for a :class:`~aios.client.Client`. What
is not given comes from the environment as the SDK reads it: ``AIOS_URL`` (default
``http://127.0.0.1:8470``), then ``AIOS_TOKEN``, else ``$AIOS_HOME/admin.token``. The
token is read from a file or the environment, never taken as an argument, which every
user of the machine can read.

The SDK (httpx, pydantic) is imported only when a command connects, so ``aios --help``
and ``aios simulate`` do not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from aios.errors import AiosError

if TYPE_CHECKING:
    from aios.client import Client

__all__ = [
    "FAILURE",
    "INCOMPLETE",
    "USAGE_ERROR",
    "Remote",
    "connect",
    "exit_code",
    "fail",
    "read_token",
]

USAGE_ERROR = 2
"""The exit code of a user mistake, as for Typer's (and Click's) own usage errors."""
FAILURE = 1
"""The exit code of a job that did not succeed, or of a control plane that cannot answer."""
INCOMPLETE = 3
"""The exit code of a data version stored but not read whole (restic's 3): a file
changed while it was read, or vanished before; the version is kept and marked."""


@dataclass(frozen=True, slots=True)
class Remote:
    """The control plane the user named on the command line; None: the environment's."""

    url: str | None = None
    token: str | None = None


def read_token(path: Path) -> str:
    """The token in the file ``path`` (its first line); ends the program with one line
    and exit code 2 when there is none to read."""
    try:
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        fail(f"--token-file: cannot read {str(path)!r}: {reason}", USAGE_ERROR)
    if not token or "\n" in token:
        fail(f"--token-file: {str(path)!r} holds no token (one line, the token alone)", USAGE_ERROR)
    return token


def connect(ctx: typer.Context) -> Client:
    """Returns a client for the control plane named by ``ctx``'s global options."""
    from aios.client import Client

    remote = ctx.find_object(Remote) or Remote()
    return Client(remote.url, remote.token)


def exit_code(exc: AiosError) -> int | None:
    """The exit code for an error the CLI reports in one line, or None for a bug.

    A refusal of the server (HTTP 4xx) is the user's mistake: :data:`USAGE_ERROR`. A
    server that cannot be reached (status 0) or that failed (5xx) is :data:`FAILURE`.
    """
    from aios.errors import InvalidInput

    if isinstance(exc, InvalidInput):
        return USAGE_ERROR
    from aios.client import ApiError

    if isinstance(exc, ApiError):
        return USAGE_ERROR if 400 <= exc.status < 500 else FAILURE
    return None


def fail(message: str, code: int) -> NoReturn:
    """Prints ``aios: error: <message>`` on one line of stderr and exits with ``code``."""
    typer.echo(f"aios: error: {' '.join(message.splitlines())}", err=True)
    raise typer.Exit(code)
