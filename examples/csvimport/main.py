"""CSV import: upload CSV files, get back how many rows and which columns each has.

The edge streams the upload into the JetStream object store; the handler gets
references in ``files`` and reads each file through a temporary copy, because the
``csv`` module wants a file. Form fields sent beside the file arrive in ``data``:

    curl --progress-bar -F file=@customers.csv -F delimiter=';' \\
        http://localhost:8080/upload/csvimport/rows | cat
"""

import csv
from pathlib import Path
from typing import Any

from band import blocking, expose, logger, response, settings
from band.files import FileRef, local_copy


@blocking()
def count_rows(path: Path, delimiter: str, name: str) -> dict[str, Any]:
    """Rows after the header, and the header's columns; a running count in the log."""
    every = int(settings.get("progress_every", 100_000))
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f, delimiter=delimiter)
        columns = next(reader, [])
        rows = 0
        for rows, _ in enumerate(reader, 1):
            if rows % every == 0:
                logger.info("counting", file=name, rows=rows)
    return {"name": name, "columns": columns, "rows": rows}


@expose.handler(name="rows", timeout=300_000)  # a big file takes a while: the edge waits up to 5 min
async def rows(files: list[FileRef], data: dict[str, Any]) -> Any:
    """``POST /upload/csvimport/rows``: one entry per uploaded file."""
    delimiter = str(data.get("delimiter") or ",")
    if len(delimiter) != 1:
        return response.error(f"delimiter must be one character, got {delimiter!r}", 400)
    counted = []
    for ref in files:
        async with local_copy(ref) as path:
            counted.append(await count_rows(path, delimiter, ref["name"]))
        logger.info("imported", file=ref["name"], rows=counted[-1]["rows"], bytes=ref["size"])
    return {"files": counted}
