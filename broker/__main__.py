"""``python -m broker``: the edge (see :func:`broker.cli.main`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
