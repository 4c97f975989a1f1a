"""Bots through a real edge into the real store: the reason in the ``bot`` column of the
row (empty for a person) and the counts per reason in ``band store status``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.fakes import running_edge
from support.store import counted, start_store

from band import store
from band.cli.natsserver import NatsServer

pytest.importorskip("chdb")

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
HITS = [  # (User-Agent, Referer, the bot column expected)
    (CHROME, "", ""),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "", "crawler"),
    ("curl/8.4.0", "", "crawler"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36", "", "headless"),
    ("", "", "no_ua"),
    (CHROME, "https://semalt.com/", "spam_ref"),
]


async def test_the_reason_is_stored_in_the_bot_column_and_counted_in_status(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    proc = start_store(tmp_path, own_nats.url)
    try:
        async with running_edge(own_nats.url, stream_storage="file") as (client, _):
            for n, (ua, ref, _bot) in enumerate(HITS):
                headers = {"User-Agent": ua, **({"Referer": ref} if ref else {})}
                skip = [] if ua else ["User-Agent"]  # no header at all
                assert (await client.get(f"/track/page?n={n}", headers=headers if ua else {}, skip_auto_headers=skip)).status == 200
        await counted(len(HITS), proc)
        rows = await store.query("SELECT td_ua, td_ref, bot FROM stats.events")
        assert sorted((r["td_ua"], r["td_ref"], r["bot"]) for r in rows) == sorted(HITS)
        status = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "band", "store", "status", "--nats", own_nats.url],
            capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["bots"] == {"crawler": 2, "headless": 1, "no_ua": 1, "spam_ref": 1}
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]
