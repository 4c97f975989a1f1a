"""``band identity``: a person from the shell.

``band identity show <identifier>`` prints the person of any identifier (``uid:123``,
``user:42``, ``partner:acme:9f``, ``phone:15551234567``; bare digits are a uid, other
bare text a user id) as JSON; ``band identity merge A B`` joins two persons (the older
one's id wins) and ``band identity split ID`` takes an identifier out of its person. Both
are recorded with ``by: cli`` and need the operator's credential (nats.conf: admin).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from .._runtime.state import nats_url
from ..errors import RPCError
from .cli import _call


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="band identity", description="People in the store: every identifier of a "
                                     "person, its traits and merges (docs/identity.md).")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="the person of an identifier, as JSON")
    show.add_argument("identifier", help="uid:123, user:42, partner:<partner>:<id>, phone:<digits>")
    merge = sub.add_parser("merge", help="join the persons of two identifiers (the older person's id wins)")
    merge.add_argument("a")
    merge.add_argument("b")
    split = sub.add_parser("split", help="take an identifier out of its person into a person of its own")
    split.add_argument("identifier")
    for each in (show, merge, split):
        each.add_argument("--nats", help="NATS URL(s) (default: $NATS_URL, then ./.band/nats.url)")
        each.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    return parser


_NEXT = {
    400: "check the identifier: kind:value, e.g. user:42 or uid:6462464730849083392",
    404: "look it up with: band sql \"SELECT identifier, person_id FROM stats.identities FINAL WHERE identifier LIKE '...%'\"",
    409: "see the person with: band identity show ...",
    503: "is the store running? band store status",
}


async def _main(args: argparse.Namespace) -> int:
    url = nats_url(args.nats)
    try:
        if args.action == "show":
            answer = await _call(url, "identity", args.timeout, identifier=args.identifier)
        elif args.action == "merge":
            answer = await _call(url, "merge", args.timeout, a=args.a, b=args.b, by="cli")
        else:
            answer = await _call(url, "split", args.timeout, identifier=args.identifier, by="cli")
    except RPCError as exc:
        hint = _NEXT.get(exc.code or 0, "")
        print(f"band identity {args.action}: {exc.message}" + (f"\n  next: {hint}" if hint else ""), file=sys.stderr)
        return 1
    if args.action != "show":
        person = answer.get("person_id")
        print(f"band identity {args.action}: stored (stream sequence {answer.get('stream_seq')}); the person is now "
              f"{person}: band identity show {args.identifier if args.action == 'split' else args.a}", file=sys.stderr)
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return 0


def main(argv: Sequence[str]) -> int:
    return asyncio.run(_main(_parser().parse_args(list(argv))))


__all__ = ["main"]
