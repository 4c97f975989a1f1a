"""band's tracker in headless Chromium into a real store: ``rstat('identify', ...)`` and
``rstat('alias', ...)`` make one person of the browser's uid and both user ids, with the
traits on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.browser import needs_chromium, snippet
from support.fakes import running_edge
from support.poll import wait_for
from support.sdk import site
from support.store import start_store

from band import RPCError, identity, store
from band.cli.natsserver import NatsServer

pytestmark = [needs_chromium, pytest.mark.slow]
pytest.importorskip("chdb")

PAGE = """<!doctype html><html><head><title>Login</title>%(snippet)s</head><body>
<button id=login onclick="rstat('identify', 'user-7', {tier: 'gold'}); rstat('alias', 'old-login-7', 'user-7')">login</button>
</body></html>"""




async def test_identify_and_alias_from_the_page(browser: Any, tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    proc = start_store(tmp_path, own_nats.url)
    try:
        async with running_edge(own_nats.url, cookie_secure=False) as (client, _):
            edge = str(client.make_url("")).rstrip("/")
            async with site({"/login": PAGE % {"snippet": snippet(edge)}}) as origin:
                ctx = await browser.new_context()
                page = await ctx.new_page()
                await page.goto(origin.replace("127.0.0.1", "localhost") + "/login")
                await wait_for(lambda: page.evaluate("typeof rstat.doCall === 'function'"), 10, "the tracker")
                uid = await page.evaluate("rstat('getUid')")
                await page.click("#login")

                async def one_person() -> bool:
                    try:
                        person = await identity.show("user:user-7")
                    except RPCError:
                        return False
                    return sorted(i["identifier"] for i in person["identifiers"]) == sorted(
                        [f"uid:{uid}", "user:user-7", "user:old-login-7"])

                await wait_for(one_person, 60, "one person of the page's uid and both user ids", procs=[proc])
                await ctx.close()
        person = await identity.show(f"uid:{uid}")
        assert person["person_id"] == int(uid) and person["traits"] == {"tier": "gold"}
        assert [(m["action"], m["by"]) for m in person["merges"]] == [("identify", "track"), ("alias", "track")]
        rows = await store.query("SELECT DISTINCT person_id FROM stats.events_people WHERE uid = {u:UInt64}", u=int(uid))
        assert rows == [{"person_id": int(uid)}]
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]
