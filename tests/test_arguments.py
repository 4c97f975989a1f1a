"""A call's arguments that do not fit the function are the caller's fault: 400 naming them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from band import App, RemoteError, blocking
from band._core.rpc import RPC
from band.testing import serve

CRM = Path(__file__).resolve().parents[1] / "examples" / "crm"


async def test_a_mistyped_argument_is_a_400_naming_it(nats_url: str, nc: Any) -> None:
    """`band call crm by_phone phone:=79161234567`: an int where ``phone: str`` is declared."""
    rpc = RPC(lambda: nc)
    async with serve(CRM, nats_url):
        with pytest.raises(RemoteError) as caught:
            await rpc.request("crm", "by_phone", phone=79161234567)
        assert caught.value.code == 400
        assert "'phone'" in caught.value.message and "must be a string" in caught.value.message
        with pytest.raises(RemoteError) as missing:
            await rpc.request("crm", "by_phone")
        assert missing.value.code == 400 and "phone" in missing.value.message
        assert await rpc.request("crm", "by_phone", phone="+7 916 000-00-00") is None  # a str still works


async def test_annotations_are_judged_only_when_they_are_json_types(nats_url: str, nc: Any) -> None:
    app = App("argcheck")

    @app.expose()
    async def typed(n: int, ratio: float, tags: list[str], extra: dict[str, Any] | None = None, anything: Any = None) -> str:
        return f"{n} {ratio} {len(tags)}"

    @app.expose()
    async def buggy(text: str) -> str:
        return text + 1  # type: ignore[operator]  # the service's own bug: stays a 500

    @app.expose()
    @blocking()
    def threaded(count: int) -> int:
        return count * 2

    rpc = RPC(lambda: nc)
    async with serve(app, nats_url):
        assert await rpc.request("argcheck", "typed", n=1, ratio=2, tags=[], anything=object.__name__) == "1 2 0"
        assert await rpc.request("argcheck", "threaded", count=4) == 8
        for params, named in (
            ({"n": True, "ratio": 1.0, "tags": []}, "'n' must be an integer, got true or false"),
            ({"n": 1, "ratio": "1", "tags": []}, "'ratio' must be a number, got a string"),
            ({"n": 1, "ratio": 1, "tags": {}}, "'tags' must be an array, got an object"),
            ({"n": 1, "ratio": 1, "tags": [], "extra": []}, "'extra' must be an object or null, got an array"),
        ):
            with pytest.raises(RemoteError) as caught:
                await rpc.request("argcheck", "typed", **params)
            assert caught.value.code == 400 and named in caught.value.message, caught.value.message
        with pytest.raises(RemoteError) as wrong:
            await rpc.request("argcheck", "threaded", count="4")
        assert wrong.value.code == 400 and "'count'" in wrong.value.message
        with pytest.raises(RemoteError) as bug:
            await rpc.request("argcheck", "buggy", text="x")
        assert bug.value.code == 500


async def test_a_positional_only_parameter_named_by_keyword_is_a_400(nats_url: str, nc: Any) -> None:
    app = App("argbind")

    @app.expose()
    async def strict(a: int, /, **rest: Any) -> int:
        return a

    rpc = RPC(lambda: nc)
    async with serve(app, nats_url):
        with pytest.raises(RemoteError) as caught:
            await rpc.request("argbind", "strict", a=1)
        assert caught.value.code == 400 and "'a'" in caught.value.message, caught.value.message
