"""The store's schema and row building, as documented in docs/storage.md (no I/O here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from band.errors import ConfigError
from band.store.config import StoreConfig, load
from band.store.migrate import statements
from band.store.rows import BadRow, RowBuilder
from band.store.schema import build_tables, merge

UID = "6462464730849083392"
# 2018-10-31 23:30:00 UTC: a local-time or 0-based-month writer gets the date wrong
LATE_EVENING_MS = 1541028600000


def builder(**overlay: Any) -> RowBuilder:
    return RowBuilder(StoreConfig.from_mapping(merge(load().raw, overlay)))


def sdk_page_event() -> dict[str, Any]:
    """What the edge broadcasts for a web-SDK page view, enriched by uaparser and fpid."""
    return {
        "key": "in.gen.track.page", "service": "track", "name": "page", "channel": "webch", "projectId": 3, "uid": UID,
        "td": {"ip": "109.252.93.158", "ua": "Mozilla/5.0 (iPad)", "ref": "https://google.com/", "host": "example.com"},
        "data": {
            "page": {"url": "https://example.com/?utm_source=google&x=1", "title": "Home", "domain": "example.com",
                     "query": {"utm_source": "google", "x": "1"}},
            "sess": {"type": "campaign", "num": 2, "hasMarks": True, "pageNum": 5, "marks": {"utm_source": "google", "has_gclid": False}},
            "browser": {"w": 1024, "h": 768},
            "lib": {"id": "web-sdk", "v": 3.1},
            "user": {"id": "u-1", "plan": "pro"},
            "data": {"button": "buy", "price": 9.5},
            "uaparser": {"os_family": "iOS", "os_version": [12, 1], "is_tablet": True, "is_mob": False, "is_bot": False},
            "fpid": "1234567890123",
            "shape": {"deep": {"leaf": "x"}},
        },
        "id": "6462464730849083393", "time": LATE_EVENING_MS,
    }


def extras(row: dict[str, Any], base: str) -> dict[str, str]:
    return dict(zip(row[f"{base}.key"], row[f"{base}.value"], strict=True))


def test_web_sdk_page_event_lands_in_events_with_rockstat_columns() -> None:
    table, row = builder().build(sdk_page_event())
    assert table == "events"
    assert row["id"] == 6462464730849083393 and row["uid"] == int(UID) and row["projectId"] == 3
    assert (row["name"], row["service"], row["channel"]) == ("page", "track", "webch")
    assert row["td_ip"] == "109.252.93.158" and row["td_ref"] == "https://google.com/"
    assert row["page_url"].startswith("https://example.com/") and row["page_title"] == "Home"
    assert row["page_query_utm_source"] == "google"
    assert row["sess_num"] == 2 and row["sess_hasMarks"] == 1 and row["sess_marks_utm_source"] == "google"
    assert row["sess_marks_has_gclid"] == 0
    assert row["browser_w"] == 1024 and row["lib_v"] == 3.1 and row["user_id"] == "u-1"
    assert row["uaparser_os_version"] == [12, 1] and row["uaparser_is_tablet"] == 1
    assert row["td_fpid"] == 1234567890123, "td_fpid filled from data.fpid"
    # dates in UTC from the event's time: 23:30 UTC on Oct 31 is still Oct 31
    assert row["date"] == "2018-10-31" and row["dateTime"] == LATE_EVENING_MS // 1000 and row["timestamp"] == LATE_EVENING_MS
    # unknown fields: the nearest <prefix>_extra, key relative to it
    assert extras(row, "page_query_extra") == {"x": "1"}
    assert extras(row, "user_extra") == {"plan": "pro"}
    assert extras(row, "data_extra") == {"button": "buy", "price": "9.5"}
    assert extras(row, "td_extra") == {"host": "example.com"}
    # nested unknown fields with no _extra of their own: the root extra, never dropped
    assert extras(row, "extra")["shape_deep_leaf"] == "x"
    assert extras(row, "extra")["fpid"] == "1234567890123"


def test_the_stock_geoip_enricher_fills_rockstats_geo_columns() -> None:
    """The panel's "Countries" preset reads sxgeo_country_iso: examples/geoip's answer fills it."""
    event = sdk_page_event()
    event["data"]["geoip"] = {"country_code": "DE", "country_name": "Germany", "network": "5.1.0.0/16", "asn_name": "X"}
    _, row = builder().build(event)
    assert (row["sxgeo_country_iso"], row["sxgeo_country_en"]) == ("DE", "Germany")
    sxgeo = sdk_page_event()
    sxgeo["data"]["sxgeo"] = {"country": {"iso": "RU", "name_en": "Russia"}}
    _, row = builder().build(sxgeo)
    assert (row["sxgeo_country_iso"], row["sxgeo_country_en"]) == ("RU", "Russia"), "Rockstat's own enricher still fills them"


def test_routing_by_service_and_name_then_default_then_other() -> None:
    b = builder()
    assert b.route("track", "page") == "events"
    assert b.route("track", "Scroll") == "activity"
    assert b.route("track", "activity") == "activity"
    assert b.route("track", "hello") == "ping" and b.route("track", "ping") == "ping"
    assert b.route("webhook", "payment") == "webhooks"
    custom = builder(destinations={"shop/order paid": "webhooks", "shop/default": "events"})
    assert custom.route("shop", "Order  Paid") == "webhooks", "lower-cased, whitespace to _"
    assert custom.route("shop", "other") == "events"


def test_webhook_fields_go_to_the_root_extra() -> None:
    table, row = builder().build({"service": "webhook", "name": "payment", "channel": "http", "uid": UID,
                                  "data": {"amount": 10, "order": {"id": "A-1", "items": [{"sku": "x"}]}, "ok": True},
                                  "id": "77", "time": 1_700_000_000_000})
    assert table == "webhooks"
    assert extras(row, "extra") == {"amount": "10", "order_id": "A-1", "order_items": '[{"sku":"x"}]', "ok": "1"}
    assert row["date"] == "2023-11-14" and row["id"] == 77


def test_a_value_that_does_not_fit_its_column_is_kept_in_extra() -> None:
    event = sdk_page_event()
    event["data"]["sess"]["num"] = "lots"  # text into UInt16
    event["data"]["browser"]["w"] = 70000  # out of Int16
    event["data"]["user"]["ts"] = "yesterday"
    _, row = builder().build(event)
    assert "sess_num" not in row and "browser_w" not in row
    assert extras(row, "extra")["sess_num"] == "lots" and extras(row, "extra")["browser_w"] == "70000"
    assert extras(row, "user_extra")["ts"] == "yesterday"


def test_a_huge_string_makes_a_bad_row() -> None:
    event = sdk_page_event()
    event["data"]["page"]["title"] = "x" * 100_000
    b = builder()
    with pytest.raises(BadRow, match=r"page\.title is 100000 bytes"):
        b.build(event)
    table, row = b.bad_row(event, "events", "too big", 1, 2)
    assert table == "bad_rows" and row["id"] == 6462464730849083393 and '"title"' in row["message"]


def test_the_edges_bot_reason_goes_to_the_bot_column_of_every_table_and_bad_rows() -> None:
    b = builder()
    for event, table in ((sdk_page_event(), "events"), ({**sdk_page_event(), "service": "hook", "name": "in"}, "webhooks")):
        assert b.build(event)[1].get("bot") in (None, "")  # a person: the column's default, empty
        routed, row = b.build({**event, "bot": "crawler"})
        assert routed == table and row["bot"] == "crawler"
    big = {**sdk_page_event(), "bot": "headless"}
    big["data"]["page"]["title"] = "x" * 100_000
    assert b.bad_row(big, "events", "too big", 1, 2)[1]["bot"] == "headless"


def test_missing_id_and_time_come_from_the_stream_message() -> None:
    table, row = builder().build({"service": "x", "name": "y", "data": {}}, fallback_id=99, fallback_ms=86_400_000)
    assert (table, row["id"], row["date"], row["timestamp"]) == ("webhooks", 99, "1970-01-02", 86_400_000)


def test_stream_seq_comes_from_the_stream_never_from_the_event() -> None:
    b = builder(destinations={"shop/default": "orders"}, tables={"orders": {"order_total": "Float64"}})
    table, row = b.build({"service": "shop", "name": "paid", "id": "5", "data": {"stream_seq": 1, "order": {"total": 2}}},
                         seq=77)
    assert table == "orders" and row["stream_seq"] == 77, "a table of one's own gets the column too"
    assert extras(row, "extra")["stream_seq"] == "1", "the event's own stream_seq is kept, in extra"
    assert b.bad_row({"id": "5"}, "orders", "why", 1, 2, seq=78)[1]["stream_seq"] == 78
    with pytest.raises(ConfigError, match="stream_seq is the store's own column"):
        builder(tables={"webhooks": {"stream_seq": "String"}})


def test_custom_table_in_a_few_lines_of_yaml() -> None:
    b = builder(destinations={"shop/default": "orders"},
                tables={"orders": {"_options": {"extend": "base", "order_by": "(date, id)"},
                                   "order_total": "Float64", "order_currency": "LowCardinality(String)"}})
    table, row = b.build({"service": "shop", "name": "paid", "uid": UID, "id": "5", "time": LATE_EVENING_MS,
                          "data": {"order": {"total": "12.50", "currency": "EUR", "coupon": "X"}}})
    assert table == "orders" and row["order_total"] == 12.5 and row["order_currency"] == "EUR"
    assert extras(row, "extra") == {"order_coupon": "X"}
    sql = b.config.tables["orders"].create_sql("stats")
    assert "PARTITION BY toYYYYMM(date)" in sql and "ORDER BY (date, id)" in sql and "`extra.key` Array(String)" in sql


def test_schema_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="circle"):
        build_tables({"a": {"_options": {"extend": "b"}}, "b": {"_options": {"extend": "a"}}})
    with pytest.raises(ConfigError, match="not defined"):
        build_tables({"a": {"_options": {"extend": "nope"}}})
    with pytest.raises(ConfigError, match="unknown _options"):
        build_tables({"a": {"_options": {"extends": "b"}}})
    with pytest.raises(ConfigError, match="needs a ClickHouse type"):
        build_tables({"a": {"x": 3}})
    with pytest.raises(ConfigError, match="names table 'nowhere'"):
        builder(destinations={"x/default": "nowhere"})


def test_default_tables_use_todays_engine_syntax() -> None:
    tables = load().tables
    assert set(tables) == {"events", "activity", "webhooks", "ping", "bad_rows", "failed_events",
                           "identities", "person_of_uid", "person_traits", "identity_log"}
    events = tables["events"].create_sql("stats")
    assert "ENGINE = MergeTree\nPARTITION BY toYYYYMM(date)\nORDER BY (intHash32(uid), date)" in events
    assert "`name` LowCardinality(String)" in events and "`char_ls` Int16 DEFAULT -1" in events
    assert "`data_extra.key` Array(String)" in events
    assert set(tables["activity"].columns) == set(tables["events"].columns)
    assert "id__" in tables["ping"].columns and "ORDER BY (service, name, date)" in tables["ping"].create_sql("stats")


def test_overlay_file_merges_over_the_defaults(tmp_path: Path) -> None:
    overlay = tmp_path / "store.yml"
    overlay.write_text("tables:\n  events:\n    page_lang: LowCardinality(String)\nbatch_rows: 100\n")
    config = load(overlay=overlay)
    assert "page_lang" in config.tables["events"].columns and "page_url" in config.tables["events"].columns
    assert config.batch_rows == 100 and config.migrations == tmp_path / "migrations"
    with pytest.raises(ConfigError, match="does not exist"):
        load(overlay=tmp_path / "missing.yml")


def test_migration_files_split_into_statements() -> None:
    sql = "-- a view\nCREATE VIEW v AS SELECT 1;\n\nALTER TABLE t\n  ADD COLUMN x String;\n-- only a comment\n"
    assert statements(sql) == ["-- a view\nCREATE VIEW v AS SELECT 1", "ALTER TABLE t\n  ADD COLUMN x String"]


@pytest.mark.parametrize("uid", ["18446744073709551616", "99999999999999999999", "abc", -1])
def test_a_uid_that_does_not_fit_makes_a_bad_row(uid: Any) -> None:
    """Not ``extra`` as other misfits: the uid column would take its default 0, shared by
    every such event, merging strangers into one visitor."""
    event = sdk_page_event()
    event["uid"] = uid
    with pytest.raises(BadRow, match="does not fit the uid column"):
        builder().build(event)
    fits = sdk_page_event()
    fits["uid"] = "18446744073709551615"
    assert builder().build(fits)[1]["uid"] == 2**64 - 1
    for none in (None, ""):  # no uid at all (store.insert from a service): the default, as before
        fits["uid"] = none
        assert "uid" not in builder().build(fits)[1]
