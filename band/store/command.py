"""``band sql``, ``band store`` and ``band identity``: their entry in the ``band`` command (light: the store's
command line, ``band.store.cli``, is imported only when one runs)."""

from __future__ import annotations

from ..cli.parser import Commands


def register(commands: Commands) -> None:
    """``band sql``, ``band store``, ``band identity`` and ``band schemas`` (the schemas of the events it keeps)."""
    from ..cli import schemas

    schemas.register(commands)
    commands.add_own("sql", '"SELECT ..."', "query the store (every event, in ClickHouse); --format json|csv|tsv", sql)
    commands.add_own("store", "[replay|status|check|import|replay-failed]",
                     "run the store service; re-read the stream into it; its health; check nothing was lost; import events; "
                     "store failed events that pass today's schemas", store)
    commands.add_own("identity", "show|merge|split ...", "a person by any identifier, as JSON; merge two persons; "
                     "split an identifier off (docs/identity.md)", identity)


def sql(argv: list[str]) -> int:
    from .cli import main

    return main(["sql", *argv])


def store(argv: list[str]) -> int:
    from .cli import main

    return main(["store", *argv])


def identity(argv: list[str]) -> int:
    from .identity_cli import main

    return main(argv)


__all__ = ["identity", "register", "sql", "store"]
