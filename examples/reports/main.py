"""Reports over the store: every file in examples/queries/ is a report, run by name.

    band call reports report query=top_pages since=2024-05-01 limit:=5
    band call reports report query=new_vs_returning since=2024-05-01 by=cookie
    band call reports names
"""

from pathlib import Path
from typing import Any

from band import expose, response, store

QUERIES = Path(__file__).resolve().parent.parent / 'queries'


@expose()
async def names() -> list[str]:
    """The reports there are (the .sql files in examples/queries/)."""
    return sorted(p.stem for p in QUERIES.glob('*.sql'))


@expose()
async def report(query: str, since: str = '1970-01-01', limit: int = 10, by: str = 'person') -> Any:
    """Rows of queries/<query>.sql; `since`, `limit` and `by` (person or cookie, for the reports
    that count visitors: new_vs_returning) travel as server-side parameters."""
    path = QUERIES / f'{query}.sql'
    if not query.replace('_', '').isalnum() or not path.is_file():
        return response.error(f'no report {query!r}; try: band call reports names', 404)
    return await store.query(path.read_text(), since=since, limit=int(limit), by=by)
