"""Send a cost CSV to the edge in chunks: ``python examples/recipes/costs/push.py costs.csv``.

Each chunk (``--lines`` rows, the header repeated) is one ``POST /costs/upload`` with the
form field ``csv``; the running count goes to stderr; a refused chunk stops the upload
with the edge's reason and the line to fix.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid


def chunks(lines: list[str], size: int) -> list[list[str]]:
    header, body = lines[0], [line for line in lines[1:] if line.strip()]
    return [[header, *body[i : i + size]] for i in range(0, len(body), size)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    p.add_argument("--edge", default="http://127.0.0.1:8080", help="the edge (default http://127.0.0.1:8080)")
    p.add_argument("--lines", type=int, default=1000, help="rows per chunk (default 1000)")
    args = p.parse_args(argv)
    with open(args.file, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if len(lines) < 2:
        print(f"push.py: {args.file} has no rows under its header", file=sys.stderr)
        return 1
    upload = uuid.uuid4().hex
    done = 0
    for number, chunk in enumerate(chunks(lines, max(1, args.lines)), start=1):
        body = urllib.parse.urlencode({"csv": "\n".join(chunk) + "\n", "upload": f"{upload}-{number}"}).encode()
        request = urllib.request.Request(args.edge.rstrip("/") + "/costs/upload", data=body, method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                done += int(json.loads(resp.read())["inserted"])
        except urllib.error.HTTPError as exc:
            print(f"\npush.py: chunk {number} refused ({exc.code}): {exc.read().decode(errors='replace')}", file=sys.stderr)
            return 1
        except (urllib.error.URLError, OSError) as exc:
            print(f"\npush.py: no edge at {args.edge} ({exc}); start it with 'make run'", file=sys.stderr)
            return 1
        print(f"\rinserted {done} rows ({number} chunks)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
