"""``band sql`` and ``band store``: the store's own command line (``band.store.cli``)."""

from __future__ import annotations

from .parser import Commands


def register(commands: Commands) -> None:
    commands.add_own("sql", '"SELECT ..."', "query the store (every event, in ClickHouse); --format json|csv|tsv", sql)
    commands.add_own("store", "[replay|status]", "run the store service; re-read the stream into it; its health", store)


def sql(argv: list[str]) -> int:
    from ..store.cli import main

    return main(["sql", *argv])


def store(argv: list[str]) -> int:
    from ..store.cli import main

    return main(["store", *argv])
