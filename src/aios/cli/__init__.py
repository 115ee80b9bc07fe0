"""The ``aios`` command line: :data:`aios.cli.main.app` is the console script."""
