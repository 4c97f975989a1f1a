"""qs-style query strings and form bodies (broker/qs.py), alone and through a real edge."""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qs_codec import DecodeOptions, decode
from support.fakes import running_edge, unique
from support.sdk import arrivals

from broker.qs import FORM, QUERY, QsError, parse


def q(text: str, **kw: Any) -> dict[str, Any]:
    return parse(text, QUERY, max_fields=kw.get("max_fields", 1000), max_depth=kw.get("max_depth", 32))


def f(text: str) -> dict[str, Any]:
    return parse(text, FORM, max_fields=1000, max_depth=32)


def test_query_nests_objects_and_arrays() -> None:
    assert q("data[target][tag]=a&user[ts]=1700000000000&n=1") == {"data": {"target": {"tag": "a"}}, "user": {"ts": "1700000000000"}, "n": "1"}
    assert q("a[]=1&a[]=2&b=1&b=2") == {"a": ["1", "2"], "b": ["1", "2"]}
    assert q("a%5Bb%5D=c") == {"a": {"b": "c"}}  # encoded brackets are brackets, as in qs
    assert q("x=a+b&y=%E2%9C%93&z") == {"x": "a b", "y": "✓", "z": ""}
    # deeper than 5: the rest of the key stays literal, as qs.parse does
    assert q("a[b][c][d][e][f][g]=1") == {"a": {"b": {"c": {"d": {"e": {"f": {"[g]": "1"}}}}}}}


def test_form_is_depth_two_without_arrays() -> None:
    assert f("data[target][tag]=a") == {"data": {"target": {"tag": "a"}}}
    assert f("a[]=x") == {"a": {"0": "x"}}
    assert f("a[b][c][d]=1") == {"a": {"b": {"c": {"[d]": "1"}}}}


def test_limits_name_the_problem() -> None:
    with pytest.raises(QsError, match="not valid UTF-8"):
        q("a=%FF")
    with pytest.raises(QsError, match="not valid UTF-8"):
        q("a[b]=%FF")
    with pytest.raises(QsError, match=r"too many query fields \(limit 10\)"):
        q("&".join(f"k{i}[x]=1" for i in range(11)), max_fields=10)
    with pytest.raises(QsError, match="nested deeper than 32 levels"):
        q("a" + "[a]" * 33 + "=1")
    assert q("&&&a=1&&") == {"a": "1"}  # empty parts are not fields
    assert q("a[x]=1" + "&" * 50 + "&b[y]=2", max_fields=10) == {"a": {"x": "1"}, "b": {"y": "2"}}  # nor do they push fields out


flat_text = st.lists(
    st.tuples(st.text("abcxyz_.-+%2041é", min_size=0, max_size=4), st.text("abc =&+%2041é", max_size=4)), max_size=6
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))


@settings(max_examples=300, deadline=None)
@given(flat_text)
def test_fast_path_reads_as_qs_does(text: str) -> None:
    """Bracket-free text skips qs-codec: the result must be the one qs-codec gives."""
    try:
        ours = q(text)
    except QsError:
        return  # invalid UTF-8 (%2 followed by an invalid byte etc.): qs-codec would replace it, we refuse
    assert ours == decode(text, DecodeOptions(depth=5))


bracket_text = st.lists(
    st.tuples(st.sampled_from(["a", "b", "a[x]", "a[]", "b[y][z]", "c[0]", "c[1]", "d[e][f][g][h][i][j]", "a[x][y]", "e["]), st.text("xy1", max_size=2)),
    max_size=8,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))


@settings(max_examples=300, deadline=None)
@given(bracket_text)
def test_mixed_text_reads_as_qs_does(text: str) -> None:
    """Only bracketed parameters go through qs-codec: the union must be qs-codec's whole answer."""
    assert q(text) == decode(text, DecodeOptions(depth=5))
    assert f(text) == decode(text, DecodeOptions(depth=2, parse_lists=False))


async def test_image_transport_and_form_arrive_nested(nc: Any, nats_url: str) -> None:
    svc = unique("qs")
    async with running_edge(nats_url) as (client, _edge), arrivals(nc, f"in.gen.{svc}.>") as seen:
        query = "data[target][tag]=a&user[ts]=1700000000000&sess[marks][utm_source]=ads&list[]=1&list[]=2"
        resp = await client.get(f"/band/{svc}/page.gif?{query}")
        assert resp.status == 200
        form = urlencode({"data[target][tag]": "b", "deep[a][b][c]": "1", "arr[]": "x"})
        resp = await client.post(f"/{svc}/form", data=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert resp.status == 200
        image, posted = await seen.take(2)
    assert image["data"]["data"] == {"target": {"tag": "a"}}
    assert image["data"]["user"] == {"ts": "1700000000000"}
    assert image["data"]["sess"] == {"marks": {"utm_source": "ads"}}
    assert image["data"]["list"] == ["1", "2"]
    assert posted["data"] == {"data": {"target": {"tag": "b"}}, "deep": {"a": {"b": {"[c]": "1"}}}, "arr": {"0": "x"}}


async def test_nesting_bombs_are_refused(nats_url: str) -> None:
    async with running_edge(nats_url, max_body_bytes=1024 * 1024) as (client, _edge):
        bomb = "a" + "[a]" * 200 + "=1"
        resp = await client.get(f"/qs/bomb?{bomb}")
        assert resp.status == 400 and "nested deeper" in (await resp.json())["message"]
        body = "a" + "[a]" * 300_000 + "=1"  # ~900 KB, under the body limit
        resp = await client.post("/qs/bomb", data=io.BytesIO(body.encode()), headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert resp.status == 400 and "nested deeper" in (await resp.json())["message"]
        over = "a=" + "[a]" * 400_000
        resp = await client.post("/qs/bomb", data=io.BytesIO(over.encode()), headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert resp.status == 413
        many = "&".join(f"k{i}[x]=1" for i in range(1500))
        resp = await client.post("/qs/many", data=many, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert resp.status == 400 and "too many form fields" in json.dumps(await resp.json())
