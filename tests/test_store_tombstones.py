"""Tombstones: what an event names, the key kept once, and the writer's sift (drops and
counts only the forgotten person's events)."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from band import wire
from band.store.person import parse
from band.store.tombstones import Tombstones, identifiers_of, load_key


def item(seq: int, **event: Any) -> Any:
    return SimpleNamespace(msg=SimpleNamespace(data=wire.encode(event)), seq=seq)


def test_an_event_names_its_uid_its_user_id_and_what_an_identity_event_joins() -> None:
    assert identifiers_of({"uid": "6462464730849083392", "data": {"user": {"id": "u-1"}}}) == {
        "uid:6462464730849083392", "user:u-1"}
    assert identifiers_of({"uid": 0, "data": {"user": {"id": ""}}}) == set()
    assert identifiers_of({"uid": "0", "data": {"user": {"id": "u-3"}}}) == {"user:u-3"}  # no uid: the user id still counts
    alias = {"service": "identity", "name": "alias", "uid": "5", "data": {"previous_id": "6462464730849083392",
                                                                          "user_id": "u-2"}}
    assert identifiers_of(alias) == {"uid:5", "user:u-2", "uid:6462464730849083392"}
    link = {"service": "identity", "name": "link", "uid": "5", "data": {"identifier": "phone:15551234567"}}
    assert identifiers_of(link) == {"uid:5", "phone:15551234567"}
    assert identifiers_of({"service": "track", "uid": "5", "data": {"user_id": "not-an-identify"}}) == {"uid:5"}


def test_the_key_is_made_once_owner_only_and_a_setting_wins(tmp_path: Path) -> None:
    first = load_key("", tmp_path / "data")
    assert load_key(None, tmp_path / "data") == first and len(first) == 64
    assert stat.S_IMODE((tmp_path / "data" / "privacy.key").stat().st_mode) == 0o600
    assert load_key("from-the-setting", tmp_path / "data") == b"from-the-setting"
    log = structlog.get_logger()
    assert Tombstones(first, log).hash("uid:1") != Tombstones(b"other", log).hash("uid:1")
    assert Tombstones(first, log).hash("uid:1") == Tombstones(first, log).hash("uid:1")


def test_sift_drops_and_counts_only_the_forgotten_and_hands_their_sequences_on() -> None:
    stones = Tombstones(b"k", structlog.get_logger())
    erased: list[list[int]] = []
    stones.erase = erased.append
    items = [item(1, uid="111"), item(2, uid="222", data={"user": {"id": "gone"}}), item(3, uid="333"), item(4, uid="111")]
    assert stones.sift(items) is items  # nobody forgotten: untouched, nothing decoded
    stones.hashes |= {stones.hash("uid:111"), stones.hash("user:gone")}
    stones._verdicts.clear()
    assert [i.seq for i in stones.sift(items)] == [3]
    assert stones.dropped == 3 and erased == [[1, 2, 4]]
    undecodable = SimpleNamespace(msg=SimpleNamespace(data=b"not json"), seq=6)
    others = [item(5, uid="333"), undecodable]  # kept: a bad event goes to bad_rows as ever
    assert stones.sift(others) is others and stones.dropped == 3


@pytest.mark.parametrize(("args", "words"), [
    ({}, "exactly one"), ({"uid": "1", "user_id": "x"}, "exactly one"), ({"uid": "12a"}, "not a visitor uid"),
    ({"uid": str(2**64)}, "not a visitor uid"), ({"user_id": "x" * 513}, "at most 512"), ({"person": "0"}, "person id"),
])
def test_who_to_forget_is_one_identifier_checked(args: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse(**args)
    assert parse(uid="0042") == ("uid:42", 0) and parse(user_id="u") == ("user:u", 0) and parse(person="7") == (None, 7)

