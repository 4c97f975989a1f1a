"""``band privacy``: forget a person, export a person (docs/privacy.md). The work runs in
the store (:mod:`band.store.forget`); this package is its command line."""

__all__: list[str] = []
