"""Cost reports into the store: ``POST /costs/upload`` with a chunk of CSV in the form field ``csv``.

Each chunk starts with the header line ``date,source,campaign,clicks,cost``; its rows go
into the ``ad_costs`` table (examples/recipes/store.yml) with ``store.insert``. A chunk with
a bad line is refused whole, naming the line, so a retry of the fixed chunk adds nothing
twice. ``push.py`` beside this file sends a whole file in chunks.
"""

import csv
import datetime as dt
import io
from typing import Any

from band import expose, response, settings, store

COLUMNS = ["date", "source", "campaign", "clicks", "cost"]


def parse(text: str, upload: str) -> list[dict[str, Any]]:
    """The chunk's rows, typed; ValueError names the first bad line."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != COLUMNS:
        raise ValueError(f"the first line must be the header {','.join(COLUMNS)}, got {header!r}")
    rows = []
    for number, line in enumerate(reader, start=2):
        if not line:
            continue
        try:
            day, source, campaign, clicks, cost = (v.strip() for v in line)
            rows.append({"date": dt.date.fromisoformat(day).isoformat(), "source": source, "campaign": campaign,
                         "clicks": int(clicks), "cost": float(cost), "upload": upload})
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc} ({','.join(line)!r})") from None
    if len(rows) > int(settings.max_rows):
        raise ValueError(f"{len(rows)} rows in one chunk; send at most {settings.max_rows}")
    return rows


@expose.handler()
async def upload(data: dict[str, Any], id: str, **params: Any) -> Any:
    text = data.get("csv")
    if not isinstance(text, str) or not text.strip():
        return response.error("post the CSV chunk in the form field 'csv' (header line first)", 400)
    try:
        rows = parse(text, str(data.get("upload") or id))
    except ValueError as exc:
        return response.error(str(exc), 400)
    inserted = await store.insert("ad_costs", rows)
    return response.data({"inserted": inserted})
