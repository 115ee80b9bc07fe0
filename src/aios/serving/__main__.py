"""``python -m aios.serving ARGS`` is ``aios serve ARGS``: how a replica is launched
where the ``aios`` script is not on the PATH."""

from __future__ import annotations

import typer

from aios.cli.main import reports_invalid_input
from aios.cli.serve import serve


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
    app.command()(reports_invalid_input(serve))
    app(prog_name="python -m aios.serving")


if __name__ == "__main__":
    main()
