"""The identity graph's rules in memory (band/store/identity_graph.py), against plain
expectations: who wins a join, what a split leaves, what a reload restores, and the
identifiers of the contract refused or accepted as documented."""

from __future__ import annotations

import datetime as dt

import pytest

from band import wire
from band.store.identity import change_of
from band.store.identity_graph import LAST_SEEN_STEP_MS, Change, Graph, Rows, natural_id


def run(graph: Graph, *changes: tuple[str, str, str], start: int = 1) -> Rows:
    rows = Rows()
    for seq, (action, a, b) in enumerate(changes, start):
        graph.apply(Change(action, a, b, None, "test"), seq, 1_700_000_000_000 + seq, 9000 + seq, rows)
    return rows


def ms(text: object) -> int:
    return int(dt.datetime.strptime(str(text), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.UTC).timestamp() * 1000)


def people(graph: Graph) -> dict[str, int]:
    return {name: entry.person for name, entry in graph.entries.items()}


def test_the_older_person_wins_a_join_and_its_members_move() -> None:
    graph = Graph()
    run(graph, ("identify", "uid:1", "user:a"), ("identify", "uid:2", "user:b"), ("identify", "uid:3", "user:b"))
    assert people(graph) == {"uid:1": 1, "user:a": 1, "uid:2": 2, "user:b": 2, "uid:3": 2}
    rows = run(graph, ("merge", "user:b", "user:a"), start=4)  # the younger first: the older still wins
    assert set(people(graph).values()) == {1}
    assert [(r["action"], r["winner"], r["loser"]) for r in rows.identity_log] == [("merge", 1, 2)]
    assert sorted(r["identifier"] for r in rows.identities) == ["uid:2", "uid:3", "user:b"]  # the loser's moved
    assert sorted((r["uid"], r["person_id"]) for r in rows.person_of_uid) == [(2, 1), (3, 1)]


def test_a_join_inside_one_person_writes_nothing_and_an_applied_sequence_is_skipped() -> None:
    graph = Graph()
    run(graph, ("identify", "uid:1", "user:a"))
    assert len(run(graph, ("identify", "uid:1", "user:a"), start=2)) == 0
    assert len(run(graph, ("identify", "uid:9", "user:z"), start=2)) == 0  # sequence 2 is applied already
    assert "uid:9" not in graph.entries


def test_last_seen_moves_at_most_once_a_step() -> None:
    graph = Graph()
    run(graph, ("identify", "uid:1", "user:a"))
    rows = Rows()
    graph.apply(Change("identify", "uid:1", "user:a", None, "t"), 2, 1_700_000_000_001 + LAST_SEEN_STEP_MS - 10, 1, rows)
    assert len(rows) == 0
    graph.apply(Change("identify", "uid:1", "user:a", None, "t"), 3, 1_700_000_000_001 + LAST_SEEN_STEP_MS, 1, rows)
    assert sorted(r["identifier"] for r in rows.identities) == ["uid:1", "user:a"]


def test_a_split_of_the_oldest_member_leaves_the_rest_their_oldest_remaining_id() -> None:
    graph = Graph()
    run(graph, ("identify", "uid:1", "user:a"), ("identify", "uid:2", "user:a"), ("link", "uid:2", "phone:555"))
    rows = run(graph, ("split", "uid:1", ""), start=4)
    a = natural_id("user:a")  # user:a joined at sequence 1 with uid:1, before uid:2: the oldest remaining
    assert people(graph) == {"uid:1": 1, "user:a": a, "uid:2": a, "phone:555": a}
    assert [(r["action"], r["winner"], r["loser"]) for r in rows.identity_log] == [("split", a, 1)]
    assert sorted((r["uid"], r["person_id"]) for r in rows.person_of_uid) == [(1, 1), (2, a)]
    rows = run(graph, ("split", "phone:555", ""), start=5)
    assert people(graph)["phone:555"] == natural_id("phone:555") and people(graph)["uid:2"] == a
    assert len(run(graph, ("split", "phone:555", ""), start=6)) == 0  # alone already: nothing


def test_a_reload_from_the_rows_gives_the_same_graph_and_the_same_next_rows() -> None:
    changes = [("identify", f"uid:{n}", f"user:u{n // 3}") for n in range(1, 30)]
    changes += [("alias", "user:u2", "user:u5"), ("merge", "user:u7", "uid:1"), ("split", "uid:4", "")]
    whole = Graph()
    rows = run(whole, *changes)
    latest: dict[str, dict[str, object]] = {}
    for r in rows.identities:  # what the store's load query reads from identities
        latest[str(r["identifier"])] = {**r, "seq": r["stream_seq"], "first_ms": ms(r["first_seen"]), "last_ms": ms(r["last_seen"])}
    again = Graph()
    again.load(list(latest.values()))
    assert people(again) == people(whole) and again.applied == whole.applied and again.oldest == whole.oldest
    tail = [("identify", "uid:100", "user:u1"), ("merge", "user:u9", "user:u2")]
    one, two = run(whole, *tail, start=100), run(again, *tail, start=100)
    assert [(r["identifier"], r["person_id"]) for r in one.identities] == [(r["identifier"], r["person_id"]) for r in two.identities]
    assert one.identity_log == two.identity_log


@pytest.mark.parametrize("value,bare,expected", [
    ("uid:123", "", "uid:123"), ("123", "auto", "uid:123"), ("bob", "auto", "user:bob"), ("partner:acme:9f", "", "partner:acme:9f"),
    ("phone:15551234567", "", "phone:15551234567"), ("user:" + "x" * 512, "", "user:" + "x" * 512),
])
def test_identifiers_of_the_contract(value: str, bare: str, expected: str) -> None:
    assert wire.identifier(value, bare) == expected


@pytest.mark.parametrize("value,bare,words", [
    ("", "", "empty"), ("user:", "", "empty"), ("user:" + "x" * 10_000, "", "10000 characters"), ("uid:0", "", "not a visitor uid"),
    ("uid:18446744073709551616", "", "not a visitor uid"), ("fax:1", "", "kind:value"), ("phone:+1", "", "digits only"),
    ("partner:acme", "", "partner:<partner>:<id>"), (None, "auto", "must be text"),
])
def test_wrong_identifiers_are_refused_naming_the_problem(value: object, bare: str, words: str) -> None:
    with pytest.raises(wire.IdentifierError, match=words.replace("+", r"\+")):
        wire.identifier(value, bare)


def test_which_events_change_the_graph() -> None:
    page = {"service": "track", "name": "page", "uid": "6462464730849083392", "data": {"user": {"id": "42"}}}
    assert change_of(page) == Change("identify", "uid:6462464730849083392", "user:42", None, "track")
    tracker = {**page, "name": "identify", "data": {"user": {"id": "42"}, "data": {"traits": {"plan": "pro"}}}}
    assert change_of(tracker) == Change("identify", "uid:6462464730849083392", "user:42", {"plan": "pro"}, "track")
    alias = {**page, "name": "alias", "data": {"data": {"previous_id": "old", "user_id": "42"}}}
    assert change_of(alias) == Change("alias", "user:old", "uid:42", None, "track")  # bare digits: a uid
    assert change_of({**page, "data": {"user": {"id": ""}}}) is None
    assert change_of({**page, "uid": "0"}) is None  # no visitor: nothing to join
    merge = {"service": "identity", "name": "merge", "uid": "", "data": {"a": "user:1", "b": "user:2", "by": "cli"}}
    assert change_of(merge) == Change("merge", "user:1", "user:2", None, "cli")
    assert change_of({**merge, "name": "drop"}) is None
    assert change_of({**merge, "data": {"a": "", "b": "user:2"}}) is None
