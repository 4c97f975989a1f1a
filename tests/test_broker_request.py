"""Pure parts of the edge: paths, fields, uid, ip, redirects, config."""

from __future__ import annotations

import ipaddress

import pytest

from broker.config import ConfigError, EdgeConfig, from_env
from broker.redirects import host_allowed, unsafe_location
from broker.request import BadHit, ClientIP, parse_path, pick_uid, project_id, valid_uid


def test_parse_path() -> None:
    t = parse_path("/band/t4k/page.json")
    assert t.native and t.extension == "json" and t.segments == ["t4k", "page"]
    t = parse_path("/track/page/12?x=1")
    assert not t.native and t.extension == "" and t.segments == ["track", "page", "12"]
    assert parse_path("/pixel/open.GIF").extension == "gif"
    assert parse_path("/track/a.b").segments == ["track", "a.b"]  # unknown extension: stays, then 400
    with pytest.raises(BadHit):
        parse_path("/track/%ff")


def test_uid_and_project() -> None:
    assert pick_uid("x", 1234567890123, "9999999999") == "1234567890123"
    assert pick_uid(None, "12345678901234567890123") != "12345678901234567890123"  # 23 digits: too long
    assert project_id(None, "", "17") == 17
    assert project_id("abc") == 0 and project_id(True) == 0 and project_id(None) == 0


def test_client_ip_trusts_headers_only_from_proxies() -> None:
    ip = ClientIP((ipaddress.ip_network("10.0.0.0/8"),))
    spoof = {"X-Real-IP": "1.1.1.1", "X-Forwarded-For": "2.2.2.2, 10.0.0.1"}
    assert ip("203.0.113.5", spoof) == "203.0.113.5"
    assert ip("10.1.2.3", spoof) == "1.1.1.1"
    assert ip("10.1.2.3", {"X-Forwarded-For": "2.2.2.2, 10.0.0.1"}) == "2.2.2.2"
    assert ip("10.1.2.3", {"X-Real-IP": "garbage"}) == "10.1.2.3"


def test_redirect_safety() -> None:
    assert unsafe_location("https://a.example/x") is None
    assert unsafe_location("/local/path") is None
    for bad in ("javascript:alert(1)", "//evil.example/", "https://a.example/\r\nX: y", "data:text/html,x", "", "ftp://a/"):
        assert unsafe_location(bad) is not None, bad
    assert host_allowed("www.example.com", ("example.com",)) and not host_allowed("badexample.com", ("example.com",))
    assert host_allowed("anything.test", ())


def test_config_from_env() -> None:
    config = from_env({"PORT": "9000", "NATS_URL": "nats://a:4222, nats://b:4222", "EDGE_ENRICH_TIMEOUT_MS": "150", "EDGE_ALIASES": '{"x": "track"}',
                       "EDGE_COOKIE_SECURE": "false"})
    assert config.port == 9000 and config.nats_urls == ("nats://a:4222", "nats://b:4222")
    assert config.enrich_timeout_ms == 150 and config.aliases == {"x": "track"} and config.cookie_secure is False
    assert from_env({}, port=1).port == 1
    with pytest.raises(ConfigError, match="EDGE_MAX_BODY_BYTES"):
        from_env({"EDGE_MAX_BODY_BYTES": "lots"})
    with pytest.raises(ConfigError, match="aliases"):
        EdgeConfig(aliases={"a.b": "track"})
    tuned = EdgeConfig(enrich_timeouts={"in.gen.track": 50, "in.gen.track.page": 80})
    assert tuned.enrich_timeout_for("in.gen.track.page") == 0.08 and tuned.enrich_timeout_for("in.gen.track.x") == 0.05
    assert tuned.enrich_timeout_for("in.gen.other.x") == 0.2




def test_a_uid_past_64_bits_is_no_uid() -> None:
    """The SDK's pattern allows 22 digits; the store's uid is a UInt64, where every
    larger uid was stored as 0: one visitor made of strangers."""
    assert valid_uid("18446744073709551615") == "18446744073709551615"  # 2**64 - 1: the largest that fits
    for too_big in ("18446744073709551616", "99999999999999999999", "1234567890123456789012", 10**20):
        assert valid_uid(too_big) is None
        assert pick_uid(too_big) != str(too_big)
    assert valid_uid("00000000000000000000042") is None  # 23 characters: the pattern's limit
    assert valid_uid("0000000000000000000042") == "0000000000000000000042"  # 42 fits


def test_config_refuses_a_body_budget_below_one_body() -> None:
    assert from_env({"EDGE_BODY_BUDGET_BYTES": "16777216"}).body_budget_bytes == 16 * 1024 * 1024
    with pytest.raises(ConfigError, match=r"body_budget_bytes .* must be at least max_body_bytes"):
        EdgeConfig(body_budget_bytes=1000, max_body_bytes=2000)
