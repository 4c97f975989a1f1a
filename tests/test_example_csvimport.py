"""examples/csvimport end to end: a real edge receives CSV uploads, the example counts rows."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
from e2e.test_examples import example
from support.fakes import routed, running_edge, unique

from band.testing import serve


def csv_form(name: str, body: bytes, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for key, value in fields.items():
        form.add_field(key, value)
    form.add_field("file", io.BytesIO(body), filename=name, content_type="text/csv")
    return form


async def test_csvimport_counts_rows_of_uploaded_files(nats_url: str, nc: Any) -> None:
    async with serve(example("csvimport"), nats_url), running_edge(nats_url, upload_bucket=unique("csv")) as (client, edge):
        await routed(edge, "in.gen.csvimport.rows")
        # a header, a quoted field holding a newline and the delimiter, a BOM from Excel
        small = '\ufeffid;name;note\n1;Anna;"line one\nline two; still one field"\n2;Boris;\n'.encode()
        resp = await client.post("/upload/csvimport/rows", data=csv_form("customers.csv", small, delimiter=";"))
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {"files": [{"name": "customers.csv", "columns": ["id", "name", "note"], "rows": 2}]}

        big = b"n,square\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(250_000))  # ~3.6 MB, many chunks
        form = csv_form("squares.csv", big)
        form.add_field("file", io.BytesIO(small.replace(b";", b",")), filename="again.csv", content_type="text/csv")
        resp = await client.post("/upload/csvimport/rows", data=form)
        assert resp.status == 200, await resp.text()
        counted = (await resp.json())["files"]
        assert [(f["name"], f["rows"]) for f in counted] == [("squares.csv", 250_000), ("again.csv", 2)]

        resp = await client.post("/upload/csvimport/rows", data=csv_form("x.csv", small, delimiter="::"))
        assert resp.status == 400 and "one character" in (await resp.json())["message"]
