"""``python -m broker``: the edge (see :func:`broker.command.main`)."""

from .command import main

if __name__ == "__main__":
    raise SystemExit(main())
