"""The panel in a real browser over a real ``band up``: NATS, the edge, services and the panel
as processes. Headless Chromium (the system's, never a downloaded one) logs in, watches a
service disappear and come back, sees a hit in the live tail, runs SQL, opens a visitor's history, restarts a service,
and saves a screenshot of every page into docs/panel/."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.fakes import BROWSER
from support.poll import wait_for

from band.cli.ports import free_port

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
# The screenshots in docs/panel.md come from this test: BAND_PANEL_SHOTS=docs/panel refreshes them;
# otherwise they go to a temporary folder, so a test run leaves the tree as it was.
SERVICES = Path(__file__).parent / "panel_services"
TOKEN = "browser-token-0123456789"
VIEWPORT = {"width": 1366, "height": 800}
VISITOR = "1234567890123"  # the uid of the User page's visitor
LAPTOP = "1234567890999"  # the same person's second device, joined by a login
SHOPPER = "shopper-1"  # the user id both devices log in with
HELLO = {"hello": "panel"}  # the greeter's answer the edge passes on

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """``band up`` of the greeter and an enricher (band up adds the store), with the panel on a free port."""
    services = tmp_path / "services"
    for name in ("greeter", "tagger"):
        shutil.copytree(SERVICES / name, services / name)
    edge, panel = free_port(), free_port()
    lines: list[str] = []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "band", "up", str(services), "--port", str(edge), "--data", str(tmp_path / ".band"),
        env={**{k: v for k, v in os.environ.items() if k != "NATS_URL"}, "PANEL_TOKEN": TOKEN, "PANEL_PORT": str(panel)},  # band up starts its own NATS
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            lines.append(line.decode("utf-8", "replace"))

    reader = asyncio.ensure_future(read())
    try:
        await wait_for(lambda: any("band is up" in line for line in lines), timeout=90, what="band up to start")
        yield {"edge": f"http://127.0.0.1:{edge}", "panel": f"http://127.0.0.1:{panel}", "lines": lines}
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        reader.cancel()


async def test_panel_in_a_browser(stack: dict[str, Any], tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    edge, base = stack["edge"], stack["panel"]
    assert f"panel: {base}/login" in "".join(stack["lines"])
    shots = Path(os.environ.get("BAND_PANEL_SHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    async with aiohttp.ClientSession(headers={"User-Agent": BROWSER}) as http:  # a person: the pages leave bots out

        async def hit(path: str, answer: Any = HELLO) -> bool:
            try:
                async with http.get(edge + path) as resp:
                    return resp.status == 200 and (answer is None or (await resp.json()) == answer)
            except (aiohttp.ClientError, ValueError):
                return False

        await wait_for(lambda: hit("/greeter/hello?who=panel"), timeout=60, what="greeter answering through the edge")
        for i in range(30):
            await hit(f"/greeter/hello?who=panel&n={i}")

        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = await browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)  # a loaded CI box; every wait still ends on its condition
            try:
                await run_pages(page, base, hit, shots)
            finally:
                await browser.close()


async def person_page(page: Any, hit: Any, shots: Path) -> None:
    """The visitor logs in on a second device: the User page finds the person by the user id with
    both devices; the operator splits the laptop off and merges it back, each confirmed and recorded."""
    devices = page.locator("#person-devices tr.device-row")
    deadline = asyncio.get_running_loop().time() + 60
    while await devices.count() < 2:  # the store applies the logins in its next batch
        assert asyncio.get_running_loop().time() < deadline, f"no person: {await page.locator('#user-status').inner_text()}"
        await hit(f"/track/page?uid={LAPTOP}&page[url]=https://shop.example/products/laptop", answer=None)
        await hit(f"/track/identify?uid={VISITOR}&user[id]={SHOPPER}&traits[plan]=gold", answer=None)
        await hit(f"/track/identify?uid={LAPTOP}&user[id]={SHOPPER}", answer=None)
        await page.fill("#user-id", SHOPPER)
        await page.click("#user-form button[type=submit]")
        await page.wait_for_timeout(700)
    await page.locator("#user-status", has_text=LAPTOP).wait_for(timeout=60_000)  # both devices' events in the timeline
    assert "gold" in await page.locator("#person-traits").inner_text()
    questions: list[str] = []

    async def accept(dialog: Any) -> None:
        questions.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    await page.locator(f'#person-ids button.split-id[data-id="uid:{LAPTOP}"]').click()
    await page.locator("#person-merges tr.merge-row", has_text="split").wait_for(timeout=60_000)
    await wait_for(lambda: _count_is(devices, 1), timeout=60, step=0.2, what="the laptop split off")
    await page.fill("#merge-with", LAPTOP)
    await page.click("#merge-form button[type=submit]")
    await page.locator("#person-merges tr.merge-row", has_text="merge").wait_for(timeout=60_000)
    await wait_for(lambda: _count_is(devices, 2), timeout=60, step=0.2, what="the laptop merged back")
    assert "panel:admin" in await page.locator("#person-merges").inner_text()
    assert len(questions) == 2 and questions[0].startswith("Split") and questions[1].startswith("Merge")
    page.remove_listener("dialog", accept)
    await page.locator("#toast.hidden").wait_for(state="attached", timeout=60_000)  # the merge's note gone
    await page.screenshot(path=str(shots / "person.png"), full_page=True)


async def _count_is(locator: Any, n: int) -> bool:
    return bool(await locator.count() == n)


async def run_pages(page: Any, base: str, hit: Any, shots: Path) -> None:
    """Every page in turn; ``hit(path)`` sends a hit to the edge; screenshots go to ``shots``."""
    # log in
    await page.goto(f"{base}/")
    assert page.url.endswith("/login")
    await page.screenshot(path=str(shots / "login.png"))
    await page.fill("input[name=token]", TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")

    # overview: the services, their rates
    greeter = page.locator('.service[data-service="greeter"][data-status="up"]')
    await greeter.wait_for(timeout=60_000)
    await page.locator('.service[data-service="store"]').wait_for(timeout=60_000)
    for i in range(20):
        await hit(f"/greeter/hello?who=panel&m={i}")
    for i in range(3):  # past the enrich deadline: enricher timeouts on the charts
        await hit(f"/greeter/hello?who=panel&slow=1&n={i}")
    await hit("/greeter/fail?why=demo")  # the picky listener dead-letters it (the panel keeps BAND_DLQ by now)
    await page.locator(".edge").first.wait_for(timeout=60_000)
    await page.wait_for_timeout(2500)  # let two samples pass so the rates have something to show
    # the last hour's reconciliation: the greeter's events stored, beside what the edge accepted
    await page.wait_for_function("() => { const b = document.querySelector('#reconcile [data-count=stored] b');"
                                 " return b !== null && !['—', '0'].includes(b.textContent); }", timeout=60_000)
    assert await page.locator("#reconcile svg.reconcile").count() == 1
    await page.locator("#reconcile").screenshot(path=str(shots / "reconcile.png"))
    await page.screenshot(path=str(shots / "overview.png"), full_page=False)

    # events: a hit appears in the live tail
    await page.click("a[data-page=events]")
    await page.locator("#tail-status", has_text=re.compile("following|live")).wait_for(timeout=60_000)
    deadline = asyncio.get_running_loop().time() + 60
    row = page.locator("#tail tr.event-row", has_text="in.gen.greeter.hello")
    while await row.count() == 0:
        assert asyncio.get_running_loop().time() < deadline, "no hit reached the live tail"
        await hit("/greeter/hello?who=panel&live=1")
        await page.wait_for_timeout(200)
    for i in range(8):
        await hit(f"/greeter/hello?who=panel&page=/products/{i}")
    await page.locator("#tail tr.event-row").nth(6).wait_for(timeout=60_000)
    await row.first.click()
    await page.locator("#tail-detail pre.json").wait_for(timeout=60_000)
    assert "in.gen.greeter.hello" in await page.locator("#tail-detail").inner_text()
    await page.locator("#tail-detail .enriched", has_text="segment").wait_for(timeout=10_000)  # the enricher's part, highlighted
    await page.screenshot(path=str(shots / "events.png"))

    # charts
    charts: list[str] = []
    page.on("response", lambda r: charts.append(r.url.split("?")[0].rsplit("/", 1)[-1]) if "/api/charts/" in r.url and r.status == 200 else None)
    await page.click("a[data-page=charts]")
    await wait_for(lambda: {"events.svg", "statuses.svg", "timeouts.svg"} <= set(charts), timeout=60, what="the three charts")
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=str(shots / "charts.png"), full_page=True)

    # store: a SQL query, its table
    await page.click("a[data-page=store]")
    await page.locator("#saved button").first.wait_for(timeout=60_000)
    # greeter's events are not track/* ones: the store routes them to the webhooks table
    await page.fill("#sql", "SELECT service, name, count() AS events FROM stats.webhooks GROUP BY service, name ORDER BY events DESC")
    deadline = asyncio.get_running_loop().time() + 60
    while not await page.locator("#sql-result td", has_text="greeter").count():  # the store writes in batches
        assert asyncio.get_running_loop().time() < deadline, "the store never showed greeter's events"
        await page.click("#sql-run")
        await page.wait_for_timeout(500)
    assert "rows in" in await page.locator("#sql-status").inner_text() or "row in" in await page.locator("#sql-status").inner_text()
    await page.screenshot(path=str(shots / "store.png"))
    # a big answer: the first 1,000 rows and how many there are; Download CSV saves every row
    await page.fill("#sql", "SELECT number AS n, toString(number * 7) AS s FROM numbers(200000)")
    await page.click("#sql-run")
    await page.locator("#sql-status", has_text="200,000 rows: showing the first 1,000").wait_for(timeout=60_000)
    assert await page.locator("#sql-result tbody tr").count() == 1_000
    await page.screenshot(path=str(shots / "store-big.png"))
    async with page.expect_download(timeout=60_000) as started:
        await page.click("#sql-csv")
    download = await started.value
    assert download.suggested_filename == "query.csv" and await download.failure() is None
    lines = Path(await download.path()).read_bytes().splitlines()
    assert len(lines) == 200_001 and lines[0] == b"n,s" and lines[-1] == b"199999,1399993"

    # user: a visitor's track hits in the live tail; their uid opens the visitor's history
    await page.click("a[data-page=events]")
    await page.locator("#tail-status", has_text=re.compile("following|live")).wait_for(timeout=60_000)
    visit = page.locator("#tail tr.event-row", has_text="in.gen.track.page").locator("a.uid", has_text=VISITOR)
    deadline = asyncio.get_running_loop().time() + 60
    while await visit.count() == 0:
        assert asyncio.get_running_loop().time() < deadline, "the visitor's hit never reached the live tail"
        for n in range(2):
            await hit(f"/track/page?uid={VISITOR}&page[url]=https://shop.example/products/{n}", answer=None)
        await page.wait_for_timeout(300)
    await visit.first.click()
    await page.wait_for_url(re.compile(f"#user/{VISITOR}$"))
    deadline = asyncio.get_running_loop().time() + 60
    while await page.locator("#user-timeline tr.user-row").count() < 2:  # the store writes in batches
        assert asyncio.get_running_loop().time() < deadline, f"no history: {await page.locator('#user-status').inner_text()}"
        await page.wait_for_timeout(500)
        await page.click("#user-form button[type=submit]")
    await page.locator("#user-status", has_text=VISITOR).wait_for(timeout=60_000)  # the last answer is in
    assert "/products/" in await page.locator("#user-timeline").inner_text()
    await page.screenshot(path=str(shots / "user.png"))
    await person_page(page, hit, shots)

    # dead letters: the picky listener's failure, inspected
    await page.click("a[data-page=deadletters]")
    letter = page.locator("#dlq tr.dlq-row", has_text="in.gen.greeter.fail")
    await letter.first.wait_for(timeout=60_000)
    await letter.first.locator("td").first.click()
    await page.locator("#dlq-detail pre.json").wait_for(timeout=60_000)
    await page.screenshot(path=str(shots / "deadletters.png"))

    # control: restart greeter, then stop it (it disappears) and start it (it comes back)
    await page.click("a[data-page=control]")
    card = page.locator('.proc[data-proc="greeter"]')
    await card.wait_for(timeout=60_000)
    await card.locator("button[data-ctl=restart]").click()
    await page.locator('.proc[data-proc="greeter"][data-state="running"]', has_text="restarts 1").wait_for(timeout=60_000)
    await page.screenshot(path=str(shots / "control.png"))
    await card.locator("button[data-ctl=stop]").click()
    await page.locator('.proc[data-proc="greeter"][data-state="stopped"]').wait_for(timeout=60_000)
    await page.click("a[data-page=overview]")
    await page.locator('.service[data-service="greeter"][data-status="down"]').wait_for(timeout=60_000)
    await page.click("a[data-page=control]")
    await page.locator('.proc[data-proc="greeter"] button[data-ctl=start]:not([disabled])').click()
    await page.click("a[data-page=overview]")
    await page.locator('.service[data-service="greeter"][data-status="up"]').wait_for(timeout=60_000)
