"""``python -m band`` is the ``band`` command."""

from .cli import main

raise SystemExit(main())
