"""04: one user's history, by SQL and by the history service's RPC, against the generated events (docs/tutorials/04-user-history.md)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import tutorial_truth as truth
from tutorial_store import answers, events, history_visitor, query


def expected(uid: str, evs: list[dict] | None = None) -> list[tuple[str, int, str, str, str]]:  # type: ignore[type-arg]
    """(dateTime, session, name, page, channel) of each of the visitor's events, in time order."""
    mine = sorted((e for e in (events() if evs is None else evs) if e["uid"] == uid), key=lambda e: (e["time"], int(e["id"])))
    return [(dt.datetime.fromtimestamp(e["time"] // 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
             e["data"]["sess"]["num"], e["name"], urlsplit(e["data"]["page"]["url"]).path, truth.channel_of(e)) for e in mine]


def as_tuples(rows: list[dict]) -> list[tuple[str, int, str, str, str]]:  # type: ignore[type-arg]
    return [(r["dateTime"], int(r["session"]), r["name"], r["page"], r["channel"]) for r in rows]


def test_the_sql_gives_every_event_of_the_visitor_in_order() -> None:
    uid, _ = history_visitor()
    rows = query("04-user-history.sql")
    assert as_tuples(rows) == expected(uid)
    assert len({r["session"] for r in rows}) >= 4 and len({r["dateTime"][:10] for r in rows}) >= 2
    buy = next(r for r in rows if r["name"] == "purchase")
    revenue = next(e for e in events() if e["uid"] == uid and e["name"] == "purchase")["data"]["data"]["revenue"]
    assert f"revenue={revenue}" in buy["details"]
    scroll = next(r for r in rows if r["name"] == "scroll")
    assert scroll["details"].startswith("scrolled ") and scroll["details"].endswith(" px")


def test_the_visitors_of_a_user_id() -> None:
    uid, _ = history_visitor()
    rows = query("04-uids-of-user.sql")
    assert [str(r["uid"]) for r in rows] == [uid]


def test_the_history_service_by_uid_and_by_user_id() -> None:
    uid, _ = history_visitor()
    by_uid = answers("history uid")
    assert by_uid["uids"] == [uid]
    assert as_tuples(by_uid["events"]) == expected(uid)
    assert by_uid["sessions"] == sum(1 for e in events() if e["uid"] == uid and e["name"] == "session")
    assert answers("history user_id") == by_uid
    code, message = answers("history nothing")
    assert code == 400 and "uid=" in message
