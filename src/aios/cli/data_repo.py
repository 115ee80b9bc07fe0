"""How ``aios data`` and ``aios backup`` find and open the data repository, and end
when the user made a mistake.

The repository is ``--repo URL_OR_PATH``, else ``$AIOS_DATA_REPO``, else
``$AIOS_HOME/data``: a URL with a scheme (``s3://bucket/prefix``) is an fsspec
filesystem, anything else a local directory. Its passphrase is
``$AIOS_DATA_PASSPHRASE``, else asked for without echo at a terminal, else the first
line of stdin, and only when the repository is encrypted; it is UTF-8 text, and its
Unicode form does not matter (:func:`aios.data.crypto.derive_key`). Commands are
registered through :func:`one_line`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec

import typer

from aios.cli.remote import FAILURE, INCOMPLETE, USAGE_ERROR, fail
from aios.errors import Busy, Conflict, InvalidInput, NotFound
from aios.resources.quantity import format_bytes

if TYPE_CHECKING:
    from aios.data.backend import Backend
    from aios.data.repository import Repository

__all__ = [
    "PASSPHRASE_ENV",
    "REPO_ENV",
    "RepoOption",
    "backend_for",
    "make_room",
    "one_line",
    "open_repository",
    "opened",
    "passphrase",
    "read_whole",
    "repo_location",
    "report_restore",
    "warn_incomplete",
    "warn_index_damage",
]

P = ParamSpec("P")
PASSPHRASE_ENV = "AIOS_DATA_PASSPHRASE"
REPO_ENV = "AIOS_DATA_REPO"

RepoOption = Annotated[
    str | None,
    typer.Option("--repo", help=f"The repository (default: ${REPO_ENV} or $AIOS_HOME/data)."),
]


def one_line(command: Callable[P, None]) -> Callable[P, None]:
    """``command``, with a user mistake (InvalidInput, NotFound, Conflict) printed as one
    ``aios: error:`` line and exit code 2; a repository that is busy (another process
    holds its lock) or damaged is one line and exit code 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        from aios.data.crypto import Damaged

        try:
            command(*args, **kwargs)
        except (InvalidInput, NotFound, Conflict) as exc:
            fail(str(exc), USAGE_ERROR)
        except (Busy, Damaged) as exc:
            fail(str(exc), FAILURE)

    return run


def repo_location(repo: str | None) -> str:
    """Where the repository is: ``--repo``, ``$AIOS_DATA_REPO`` or ``$AIOS_HOME/data``."""
    if repo:
        return repo
    if os.environ.get(REPO_ENV):
        return os.environ[REPO_ENV]
    home = os.environ.get("AIOS_HOME") or str(Path.home() / ".aios")
    return str(Path(home) / "data")


def _from_environment() -> str | None:
    """``$AIOS_DATA_PASSPHRASE``, or None; InvalidInput naming it if it is not UTF-8."""
    given = os.environ.get(PASSPHRASE_ENV)
    if given is not None and not _is_text(given):
        raise InvalidInput(f"{PASSPHRASE_ENV}: the passphrase is not valid UTF-8 text")
    return given


def _is_text(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8: bytes that were not UTF-8 (``\\xff``) come out
    of the environment or a terminal as lone surrogates, which do not."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def passphrase(*, confirm: bool = False) -> str:
    """``$AIOS_DATA_PASSPHRASE``, else asked for without echo at a terminal (twice for a
    new one), else the first line of stdin (:func:`_read_stdin`).

    Raises InvalidInput when the passphrase is not UTF-8 text, or when stdin ends before
    one is given (``< /dev/null``, an empty pipe, Ctrl-D). Ctrl-C at the prompt aborts.
    """
    given = _from_environment()
    if given is not None:
        return given
    if not sys.stdin.isatty():
        return _read_stdin()
    try:
        typed = str(
            typer.prompt("Repository passphrase", hide_input=True, confirmation_prompt=confirm)
        )
    except typer.Abort as exc:
        # Click turns both EOF and Ctrl-C into Abort; the one it caught is the context.
        if isinstance(exc.__context__, EOFError):
            raise InvalidInput(f"no passphrase given; type one, or set {PASSPHRASE_ENV}") from None
        raise
    except UnicodeDecodeError:
        raise InvalidInput("the passphrase typed is not valid UTF-8 text") from None
    if not _is_text(typed):
        raise InvalidInput("the passphrase typed is not valid UTF-8 text")
    return typed


def _read_stdin() -> str:
    """The passphrase on the first line of stdin, as restic reads it when stdin is not a
    terminal: a script pipes it in, once even for a new repository (a pipe makes no
    typos to confirm against), and there is no echo to hide, so getpass's warnings that
    it cannot hide it would only be noise on stderr."""
    line = sys.stdin.buffer.readline()
    if not line:
        raise InvalidInput(
            f"no passphrase: stdin ended before one was given; set {PASSPHRASE_ENV} or pipe it in"
        )
    try:
        return line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise InvalidInput("the passphrase on stdin is not valid UTF-8 text") from None


def backend_for(location: str) -> Backend:
    """The backend of a repository location: a URL with a scheme (``s3://bucket/x``) goes
    to fsspec, anything else is a local directory. Raises InvalidInput for a local path
    that is a file, or lies under one: a repository is a directory."""
    from aios.data.backend import FsspecBackend, LocalBackend
    from aios.data.safety import directory_or_missing

    if "://" in location and not location.startswith("file://"):
        return FsspecBackend(location)
    root = Path(location.removeprefix("file://")).expanduser()
    try:
        directory_or_missing(root)
    except InvalidInput as exc:
        raise InvalidInput(f"repository {exc}") from None
    return LocalBackend(root)


def make_room(backend: Backend) -> None:
    """Makes a local repository's directory (and its parents) for a new repository, so
    that a place none can be made (``/proc/x``, a read-only filesystem) is refused by
    name before keys are made or a byte is written; other backends need no room."""
    from aios.data.backend import LocalBackend

    if isinstance(backend, LocalBackend):
        try:
            backend.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = f"cannot be created ({exc.strerror})"
            raise InvalidInput(f"repository {backend.root}: {problem}") from None


def open_repository(location: str, secret: str | None = None) -> tuple[Repository, str | None]:
    """Opens the repository at ``location`` with ``secret``, else
    ``$AIOS_DATA_PASSPHRASE``, else (only if it is encrypted) a prompt; returns it with
    the passphrase that opened it, for a backup that must use the same."""
    from aios.data.crypto import WrongPassphrase
    from aios.data.repository import Repository

    backend = backend_for(location)
    given = secret if secret is not None else _from_environment()
    try:
        return Repository.open(backend, given), given
    except NotFound:
        raise NotFound(f"no repository at {location}; create one with 'aios data init'") from None
    except WrongPassphrase:
        if given is not None:
            raise WrongPassphrase(f"wrong passphrase for the repository at {location}") from None
    asked = passphrase()
    return Repository.open(backend, asked), asked


@contextlib.contextmanager
def opened(repo: str | None) -> Iterator[Repository]:
    """The repository at ``repo`` (or the default) for the block, closed (its lock
    released) however the block ends."""
    repository, _ = open_repository(repo_location(repo))
    try:
        yield repository
    finally:
        repository.close()


def warn_index_damage(repository: Repository) -> None:
    """Says on stderr that the index is damaged (a restore read around it through the
    pack headers), with the command that repairs it."""
    problem = repository.index_damage()
    if problem is not None:
        typer.echo(f"aios: warning: {problem}", err=True)


def report_restore(files: int, size: int, damaged: list[str]) -> None:
    """Prints what a restore wrote; names each damaged file it did not write on a line of
    its own on stderr (so a script can read them one per line) and exits 1."""
    summary = f"restored {files} files, {format_bytes(size)}"
    if damaged:
        summary += f"; {len(damaged)} damaged file(s) not restored"
    typer.echo(summary)
    if damaged:
        for path in damaged:
            typer.echo(f"aios: error: damaged, not restored: {path}", err=True)
        raise typer.Exit(FAILURE)


def read_whole(complete: bool, changed: int = 0, vanished: int = 0) -> str:
    """A version's ``COMPLETE`` cell: ``yes``, or ``no`` with how many files changed
    while they were read and how many vanished before."""
    if complete:
        return "yes"
    counts = [f"{n} {what}" for n, what in ((changed, "changed"), (vanished, "vanished")) if n]
    return "no: " + ", ".join(counts) if counts else "no"


def warn_incomplete(
    where: Callable[[str], str], changed: Sequence[str], vanished: Sequence[str]
) -> None:
    """Names on stderr, one line each, the files that changed while they were read and
    those that vanished before (``where`` turns a path in the version into the one to
    show), and exits :data:`~aios.cli.remote.INCOMPLETE` if there was any."""
    for path in changed:
        said = where(path)
        typer.echo(f"aios: warning: {said} changed while it was read; stored as read", err=True)
    for path in vanished:
        said = where(path)
        typer.echo(f"aios: warning: {said} vanished before it was read; not stored", err=True)
    if changed or vanished:
        raise typer.Exit(INCOMPLETE)
