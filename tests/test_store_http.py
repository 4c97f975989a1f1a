"""The store's ClickHouse HTTP interface, with real clients: clickhouse-connect, the official
JavaScript client run by node, and curl, against a real ``band store`` on real chDB with
real events in it."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lz4.frame
import nats
import pytest
from support.poll import wait_for
from support.processes import Proc
from support.store import counted, event, publish, start_store

from band import App
from band._core.app import reset_current, set_current
from band.cli.natsserver import NatsServer
from band.cli.ports import free_port
from band.errors import ConfigError
from band.store import http as store_http

EVENTS = 30
PASSWORD = "s3cret-pw"
JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Proc]]:
    """One nats-server and one store with its interface on a free port (with a password)."""
    root = tmp_path_factory.mktemp("storehttp")
    port = free_port()
    with NatsServer(store_dir=root / "js") as srv:
        proc = start_store(root, srv.url, STORE_HTTP_PORT=str(port), STORE_HTTP_PASSWORD=PASSWORD)
        try:
            yield srv.url, port, proc
        finally:
            proc.stop()


@pytest.fixture(scope="module")
def loaded(stack: tuple[str, int, Proc]) -> tuple[int, Proc]:
    """The stack with EVENTS page views stored."""
    url, port, proc = stack

    async def load() -> None:
        nc = await nats.connect(url)
        app = App("tester")
        app.nc = nc
        token = set_current(app)
        try:
            await publish(nc, [event(n) for n in range(EVENTS)])
            await counted(EVENTS, proc)
        finally:
            reset_current(token)
            await nc.close()

    asyncio.run(load())
    return port, proc


def curl(port: int, *args: str, path: str = "/", auth: bool = True) -> tuple[int, dict[str, str], bytes]:
    """``curl`` as a subprocess: status, headers (lower-case names) and the raw body."""
    command = ["curl", "-sS", "--max-time", "30", "-D", "-", "-o", "-"]
    if auth:
        command += ["-u", f"default:{PASSWORD}"]
    out = subprocess.run([*command, *args, f"http://127.0.0.1:{port}{path}"], capture_output=True, check=True).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def test_clickhouse_connect(loaded: tuple[int, Proc]) -> None:
    import clickhouse_connect

    port, _ = loaded
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, username="default", password=PASSWORD,
                                           compress=True)
    try:
        assert client.server_version and client.command("SELECT 1") == 1
        assert client.command("SELECT count() FROM events") == EVENTS  # unqualified: the default database is stats
        result = client.query("SELECT number AS n, toString(number) AS s FROM numbers({count:UInt32}) "
                              "WHERE number >= {start:UInt32}", parameters={"count": 5, "start": 2})
        assert result.result_rows == [(2, "2"), (3, "3"), (4, "4")]
        frame = client.query_df("SELECT page_url, uid FROM stats.events ORDER BY page_url")
        assert len(frame) == EVENTS and frame["page_url"].iloc[0] == "https://x.test/0"
        table = client.query_arrow("SELECT number AS x FROM numbers(100000)")
        assert table.num_rows == 100000
        assert client.compression  # it negotiated compression with the server
        with pytest.raises(Exception, match="read-only"):
            client.command("INSERT INTO events (id) VALUES (1)")
    finally:
        client.close()


@pytest.fixture(scope="module")
def js_client() -> Path:
    """``npm ci`` in tests/js once (the lockfile pins @clickhouse/client)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the JavaScript client's test (install Node.js 18+)")
    if not (JS_DIR / "node_modules" / "@clickhouse" / "client").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, capture_output=True, timeout=300)
    return JS_DIR


def test_javascript_client(loaded: tuple[int, Proc], js_client: Path) -> None:
    port, _ = loaded
    out = subprocess.run(["node", "query.mjs", f"http://127.0.0.1:{port}", PASSWORD], cwd=js_client,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["ping"] is True
    assert answer["rows"] == [{"n": 2, "s": "2"}, {"n": 3, "s": "3"}, {"n": 4, "s": "4"}]
    assert answer["events"] == [{"c": EVENTS}]
    assert answer["refused"]["code"] == "164" and "read-only" in answer["refused"]["message"]


@needs_curl
def test_curl_get_post_ping_and_headers(loaded: tuple[int, Proc]) -> None:
    port, _ = loaded
    assert curl(port, path="/ping", auth=False)[2] == b"Ok.\n"
    assert curl(port, path="/replicas_status", auth=False)[2] == b"Ok.\n"
    status, headers, body = curl(port, path="/?query=SELECT%20count()%20FROM%20events")
    assert (status, body) == (200, f"{EVENTS}\n".encode())
    assert headers["x-clickhouse-format"] == "TabSeparated" and headers["x-clickhouse-timezone"]
    assert "x-clickhouse-query-id" in headers and "read_rows" in json.loads(headers["x-clickhouse-summary"])
    # the URL's query, a line feed, then the body's, as ClickHouse joins them; parameters in the URL
    status, headers, body = curl(port, "--data-binary", "WHERE number < {n:UInt8} FORMAT CSVWithNames",
                                 path="/?query=SELECT%20number%20FROM%20numbers(10)&param_n=3")
    assert (status, headers["x-clickhouse-format"], body) == (200, "CSVWithNames", b'"number"\n0\n1\n2\n')
    status, _, body = curl(port, "--data-binary", "SELECT dummy FROM one", path="/?default_format=JSONEachRow&database=system")
    assert (status, body) == (200, b'{"dummy":0}\n')


@needs_curl
@pytest.mark.parametrize("encoding,decode", [("gzip", gzip.decompress), ("lz4", lz4.frame.decompress),
                                             ("zstd", None)])
def test_curl_compression(loaded: tuple[int, Proc], encoding: str, decode: Any) -> None:
    port, _ = loaded
    status, headers, body = curl(port, "-H", f"Accept-Encoding: {encoding}",
                                 path="/?enable_http_compression=1&query=SELECT%20number%20FROM%20numbers(100000)")
    assert status == 200 and headers["content-encoding"] == encoding
    if decode is None:
        from backports import zstd

        decode = zstd.decompress
    assert decode(body) == b"".join(b"%d\n" % n for n in range(100000))


@needs_curl
def test_auth(loaded: tuple[int, Proc]) -> None:
    port, _ = loaded
    query = "/?query=SELECT%201"
    assert curl(port, "-H", "X-ClickHouse-User: default", "-H", f"X-ClickHouse-Key: {PASSWORD}", path=query, auth=False)[2] == b"1\n"
    assert curl(port, path=f"{query}&user=default&password={PASSWORD}", auth=False)[2] == b"1\n"
    assert curl(port, path=query)[2] == b"1\n"  # basic auth
    for wrong in (["-u", "default:nope"], ["-H", "X-ClickHouse-Key: nope"], []):
        status, headers, body = curl(port, *wrong, path=query, auth=False)
        assert status == 403 and headers["x-clickhouse-exception-code"] == "516", body
        assert body.startswith(b"Code: 516. DB::Exception:") and b"AUTHENTICATION_FAILED" in body


@needs_curl
@pytest.mark.parametrize("sql,params", [
    ("INSERT INTO events (id) VALUES (1)", ""),
    ("SELECT file('/etc/passwd')", ""),
    ("SELECT * FROM url('http://127.0.0.1:1/x', CSV, 'a String')", ""),
    ("SELECT 1 SETTINGS readonly=0", ""),
    ("DROP TABLE events", ""),
    ("SELECT 1", "&readonly=0"),
    ("SELECT 1", "&allow_ddl=1"),
])
def test_refused(loaded: tuple[int, Proc], sql: str, params: str) -> None:
    port, _ = loaded
    status, headers, body = curl(port, "--data-binary", sql, path=f"/?x=1{params}")
    assert status == 403 and headers["x-clickhouse-exception-code"] == "164", body
    assert (body.startswith(b"Code: 164. DB::Exception:") and b"read-only" in body) or b"readonly" in body


@needs_curl
def test_errors_as_clickhouse_gives_them(loaded: tuple[int, Proc]) -> None:
    port, proc = loaded
    status, headers, body = curl(port, "--data-binary", "SELEC 1")
    assert (status, headers["x-clickhouse-exception-code"]) == (400, "62") and body.startswith(b"Code: 62.")
    status, headers, body = curl(port, "--data-binary", "SELECT * FROM nope")
    assert (status, headers["x-clickhouse-exception-code"]) == (404, "60") and b"UNKNOWN_TABLE" in body
    status, headers, body = curl(port, "--data-binary", "SELECT 1 FORMAT NoSuchFormat")
    assert status == 400 and headers["x-clickhouse-exception-code"] == "73" and b"NoSuchFormat" in body
    big = proc.log.parent / "big.sql"
    big.write_bytes(b"SELECT 1 -- " + b"x" * (2 << 20))
    status, headers, body = curl(port, "--data-binary", f"@{big}")
    assert status == 413 and headers["x-clickhouse-exception-code"] == "393" and b"STORE_HTTP_MAX_QUERY_BYTES" in body


def _processes(port: int, marker: str) -> int:
    status, _, body = curl(port, "--data-binary",
                           f"SELECT count() FROM system.processes WHERE position(query, '{marker}') > 0 "
                           "AND position(query, 'system.processes') = 0")
    assert status == 200, body
    return int(body)


@needs_curl
@pytest.mark.slow
async def test_a_client_that_goes_away_cancels_its_query(loaded: tuple[int, Proc]) -> None:
    port, _ = loaded
    marker = "gone-client-7"
    sql = f"SELECT count() FROM numbers(100000000000) WHERE number % 7 = 3 AND '{marker}' != ''"
    auth = base64.b64encode(f"default:{PASSWORD}".encode()).decode()
    request = (f"POST /?query_id=q-{marker} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
               f"Content-Length: {len(sql)}\r\n\r\n{sql}").encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        await wait_for(lambda: _processes(port, marker) == 1, 20, "the query running")
    started = time.monotonic()
    await wait_for(lambda: _processes(port, marker) == 0, 10, "the query cancelled after its client left")
    assert time.monotonic() - started < 10


@pytest.mark.slow
async def test_ingest_goes_on_while_a_long_query_runs(stack: tuple[str, int, Proc], loaded: tuple[int, Proc]) -> None:
    """A 10-second analytical read over the interface; events published meanwhile are stored meanwhile."""
    url, port, proc = stack
    import aiohttp

    nc = await nats.connect(url)
    app = App("tester")
    app.nc = nc
    token = set_current(app)
    try:
        async with aiohttp.ClientSession() as http:
            sql = "SELECT count() FROM numbers(100000000000) WHERE number % 7 = 3 AND 'long-read-5' != ''"
            reading = asyncio.ensure_future(http.post(
                f"http://127.0.0.1:{port}/?max_execution_time=10&timeout_overflow_mode=break",
                data=sql, headers={"X-ClickHouse-User": "default", "X-ClickHouse-Key": PASSWORD}))
            await wait_for(lambda: _processes(port, "long-read-5") == 1, 20, "the long read running")
            await publish(nc, [event(n) for n in range(1000, 1100)])
            await counted(EVENTS + 100, proc, timeout=8)
            assert not reading.done()  # stored while the read still ran
            response = await reading
            assert response.status == 200
            response.release()
    finally:
        reset_current(token)
        await nc.close()


def test_beyond_localhost_needs_a_password() -> None:
    with pytest.raises(ConfigError, match="STORE_HTTP_PASSWORD"):
        store_http.Settings(host="0.0.0.0", port=8123).check()
    store_http.Settings(host="0.0.0.0", port=8123, password="x").check()
    store_http.Settings(host="127.0.0.1", port=8123).check()


async def test_a_taken_port_names_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def results() -> Any:
            raise AssertionError("not reached")

        interface = store_http.Interface(store_http.Settings(port=port), results)
        with pytest.raises(ConfigError, match="STORE_HTTP_PORT"):
            async with store_http.serving(interface):
                pass

