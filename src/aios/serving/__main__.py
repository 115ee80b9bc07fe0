"""``python -m aios.serving ARGS`` is ``aios serve ARGS``: how a replica is launched
where the ``aios`` script is not on the PATH."""

from __future__ import annotations

from aios.serving.command import main

if __name__ == "__main__":
    main()
