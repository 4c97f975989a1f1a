"""``store.query`` runs reads only: ClickHouse parses each statement (``band/store/readonly.py``
walks its ``EXPLAIN AST``) and the reading session has ``readonly=1``. A real ``band store``
on a real nats-server with real chDB, asked over RPC, by ``band sql`` and by the panel; each
attack also checks that its side effect did not happen (no file written, no file content
returned, no connection to a local port, no stored hit, no row or table changed)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from support.poll import wait_for
from support.processes import Proc, edge_healthy, start_edge
from support.store import event, publish, start_store

from band import App, RPCError, store
from band._core.app import reset_current, set_current
from band._core.rpc import RPC
from band.cli.natsserver import NatsServer
from band.cli.ports import free_port
from band.panel import queries
from band.panel.app import running
from band.panel.config import PanelConfig
from band.store import readonly
from band.store.isolated import IsolatedChdb

pytest.importorskip("chdb")

ROOT = Path(__file__).resolve().parent.parent
SEEDED = 3  # events in stats.events before any test
TOKEN = "test-token-0123456789"


class Listener:
    """A local TCP port counting the connections made to it (an HTTP request, a remote() or
    mysql() handshake would each be one); ``quiet()`` proves none came."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    async def quiet(self) -> None:
        """No connection came: a sentinel of ours is accepted after any earlier one (the
        backlog is first in, first out), so once it is counted the count is the truth."""
        before = self.connections
        with socket.create_connection(("127.0.0.1", self.port), timeout=5):
            await wait_for(lambda: self.connections > before, 5, "the sentinel connection accepted")
        assert self.connections == before + 1, "the statement connected to the local port"
        self.connections = 0

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class Stack:
    """The module's nats-server and store, and the paths the attacks aim at."""

    def __init__(self, home: Path, nats_server: NatsServer, proc: Proc, listener: Listener) -> None:
        self.home, self.nats, self.proc, self.listener = home, nats_server, proc, listener
        self.marker = f"band-secret-{uuid.uuid4().hex}"
        self.secret = home / "secret.txt"
        self.secret.write_text(f"{self.marker}\n")

    def fill(self, template: str, out: Path) -> str:
        return template.format(secret=self.secret, out=out, port=self.listener.port)


async def _count(rpc: RPC, sql: str = "SELECT count() AS n FROM stats.events", **params: Any) -> int:
    try:
        answer = await rpc.request("store", "query", timeout__=5, sql=sql, params=params)
    except RPCError:
        return -1
    return int(answer["rows"][0]["n"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("readonly")
    listener = Listener()
    with NatsServer(store_dir=home / "js") as server:
        proc = start_store(home, server.url)
        try:
            async def seed() -> None:
                nc = await nats.connect(server.url)
                try:
                    await publish(nc, [event(n) for n in range(SEEDED)])
                    rpc = RPC(lambda: nc)

                    async def seeded() -> bool:
                        return await _count(rpc) == SEEDED

                    await wait_for(seeded, 60, f"{SEEDED} seeded events stored", procs=[proc])
                finally:
                    await nc.close()

            asyncio.run(seed())
            yield Stack(home, server, proc, listener)
        finally:
            listener.close()
            assert proc.stop() == 0, proc.text()[-3000:]


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[RPC]:
    """``from band import store`` calls go out as this app; also the raw RPC."""
    nc = await nats.connect(stack.nats.url)
    app = App("tester")
    app.nc = nc
    token = set_current(app)
    yield RPC(lambda: nc)
    reset_current(token)
    await nc.close()


# (statement, what the refusal must name): {secret} a file whose content must not come back,
# {out} a file that must not appear, {port} a local port that must not be connected to
REFUSED = [
    # files read: table and scalar file(), in every place a table or an expression can hide
    ("SELECT * FROM file('{secret}', 'LineAsString')", "table function file()"),
    ("SELECT * FROM FILE('{secret}', 'LineAsString')", "table function FILE()"),
    ("SELECT file('{secret}') AS s", "function file() reads a file"),
    ("SELECT upper(File('{secret}')) AS s", "function File() reads a file"),
    ("SELECT 'x' AS s WHERE file('{secret}') != ''", "function file() reads a file"),
    ("DESCRIBE file('{secret}', 'CSVWithNames')", "table function file()"),
    ("DESCRIBE TABLE (SELECT * FROM file('{secret}', 'LineAsString'))", "table function file()"),
    ("EXPLAIN SELECT * FROM file('{secret}', 'LineAsString')", "table function file()"),
    ("EXPLAIN PIPELINE SELECT * FROM file('{secret}', 'LineAsString')", "table function file()"),
    ("SELECT e.id FROM stats.events AS e JOIN file('{secret}', 'LineAsString') AS f ON 1 = 1", "table function file()"),
    ("SELECT id FROM stats.events WHERE page_url IN (SELECT line FROM file('{secret}', 'LineAsString'))",
     "table function file()"),
    ("WITH s AS (SELECT * FROM file('{secret}', 'LineAsString')) SELECT * FROM s", "table function file()"),
    ("WITH (SELECT file('{secret}')) AS s SELECT s", "function file() reads a file"),
    ("SELECT * FROM view(SELECT * FROM file('{secret}', 'LineAsString'))", "table function file()"),
    ("SELECT 'x' AS line UNION ALL SELECT line FROM file('{secret}', 'LineAsString')", "table function file()"),
    ("SELECT * FROM fileCluster('default', '{secret}', 'LineAsString')", "table function fileCluster()"),
    ("SELECT * FROM input('line String')", "table function input()"),
    ("SELECT * FROM stats.events AS `a\n TableExpression`, file('{secret}', 'LineAsString') AS f",
     "table function file()"),  # an alias with a line break forges lines in EXPLAIN AST's text
    # what EXPLAIN AST leaves out of its tree: APPLY's function, SHOW's WHERE and LIMIT
    ("SELECT * APPLY(file) FROM (SELECT '{secret}' AS p)", "APPLY keeps the function"),
    ("SELECT COLUMNS('p') APPLY file FROM (SELECT '{secret}' AS p)", "APPLY keeps the function"),
    ("SHOW TABLES FROM stats WHERE toUInt8(file('{secret}')) = 1", "SHOW TABLES with WHERE or LIMIT"),
    ("SHOW COLUMNS FROM stats.events WHERE toUInt8(file('{secret}')) = 1", "SHOW COLUMNS with WHERE or LIMIT"),
    ("SHOW INDEXES FROM stats.events WHERE toUInt8(file('{secret}')) = 1", "SHOW INDEXES with WHERE or LIMIT"),
    ("SHOW DATABASES LIMIT toUInt8(file('{secret}'))", "SHOW DATABASES with WHERE or LIMIT"),
    ("EXPLAIN AST SHOW TABLES WHERE toUInt8(file('{secret}')) = 1", "on a SELECT only"),
    # the network: URLs, object stores, other servers
    ("SELECT * FROM url('http://127.0.0.1:{port}/track/page?x=1', 'LineAsString')", "table function url()"),
    ("SELECT * FROM URL('http://127.0.0.1:{port}/x', 'LineAsString')", "table function URL()"),
    ("SELECT * FROM urlCluster('default', 'http://127.0.0.1:{port}/x', 'LineAsString')", "table function urlCluster()"),
    ("SELECT * FROM s3('http://127.0.0.1:{port}/bucket/key.csv', 'CSV')", "table function s3()"),
    ("SELECT * FROM azureBlobStorage('http://127.0.0.1:{port}/x', 'c', 'b')", "table function azureBlobStorage()"),
    ("SELECT * FROM remote('127.0.0.1:{port}', system.one)", "table function remote()"),
    ("SELECT * FROM remoteSecure('127.0.0.1:{port}', system.one)", "table function remoteSecure()"),
    ("SELECT * FROM cluster('default', system.one)", "table function cluster()"),
    ("SELECT * FROM mysql('127.0.0.1:{port}', 'db', 't', 'u', 'p')", "table function mysql()"),
    ("SELECT * FROM postgresql('127.0.0.1:{port}', 'db', 't', 'u', 'p')", "table function postgresql()"),
    ("SELECT * FROM executable('id', 'TSV', 'x String')", "table function executable()"),
    ("SELECT * FROM dictionary('d')", "table function dictionary()"),
    # files written
    ("SELECT 'x' INTO OUTFILE '{out}'", "INTO OUTFILE"),
    ("SELECT 'x' INTO OUTFILE '{out}' APPEND FORMAT TSV", "INTO OUTFILE"),
    ("SELECT * FROM stats.events INTO OUTFILE '{out}' FORMAT TSV", "INTO OUTFILE"),
    ("SELECT 1 INTO OUTFILE '{out}' COMPRESSION 'gzip'", "INTO OUTFILE"),
    ("SELECT 1 UNION ALL SELECT 2 INTO OUTFILE '{out}'", "INTO OUTFILE"),
    ("SELECT 1 INTERSECT SELECT 1 INTO OUTFILE '{out}'", "INTO OUTFILE"),
    ("WITH x AS (SELECT 1) SELECT * FROM x INTO OUTFILE '{out}'", "INTO OUTFILE"),
    ("SELECT * FROM (SELECT 1 AS a) INTO OUTFILE '{out}'", "INTO OUTFILE"),
    ("(SELECT 1) INTO OUTFILE '{out}'", "INTO OUTFILE"),
    ("SHOW TABLES FROM stats INTO OUTFILE '{out}'", "INTO OUTFILE"),
    ("DESCRIBE stats.events INTO OUTFILE '{out}'", "INTO OUTFILE"),
    ("EXISTS stats.events INTO OUTFILE '{out}'", "INTO OUTFILE"),
    ("SHOW CREATE TABLE stats.events INTO OUTFILE '{out}'", "INTO OUTFILE"),
    ("EXPLAIN SELECT 1 INTO OUTFILE '{out}'", "INTO OUTFILE"),
    ("SELECT 1 AS `x\nSelectQuery` INTO OUTFILE '{out}'", "INTO OUTFILE"),  # a forged line before the file
    ("INSERT INTO FUNCTION file('{out}', 'TSV') SELECT 1", "INSERT is not a read"),
    # settings
    ("SELECT 1 SETTINGS readonly = 0", "SETTINGS clause"),
    ("SELECT 1 SETTINGS max_threads = 1", "SETTINGS clause"),
    ("SELECT * FROM (SELECT 1 SETTINGS readonly = 0)", "SETTINGS clause"),
    ("SET readonly = 0", "SETTINGS clause or SET"),
    ("SET allow_ddl = 1", "SETTINGS clause or SET"),
    # a second statement, plain or behind comments
    ("SELECT 1; DROP TABLE stats.events", "one statement per query"),
    ("SELECT 1 /* */; INSERT INTO stats.events (id) VALUES (1)", "one statement per query"),
    ("SELECT 1; SELECT * FROM file('{secret}', 'LineAsString')", "one statement per query"),
    ("SELECT 1 -- x\n; TRUNCATE TABLE stats.events", "one statement per query"),
    # statements that are not reads
    ("-- x\nINSERT INTO stats.events (id) VALUES (1)", "INSERT is not a read"),
    ("/* hidden */ TRUNCATE TABLE stats.events", "TRUNCATE is not a read"),
    ("ALTER TABLE stats.events DELETE WHERE 1", "ALTER is not a read"),
    ("DELETE FROM stats.events WHERE 1", "DELETE is not a read"),
    ("DROP TABLE stats.events", "DROP is not a read"),
    ("RENAME TABLE stats.events TO stats.gone", "RENAME is not a read"),
    ("CREATE TABLE stats.x (a UInt8) ENGINE = Memory", "CREATE is not a read"),
    ("OPTIMIZE TABLE stats.events FINAL", "OPTIMIZE is not a read"),
    ("SYSTEM FLUSH LOGS", "SYSTEM is not a read"),
    ("KILL QUERY WHERE 1", "KILL is not a read"),
    ("GRANT SELECT ON *.* TO nobody", "GRANT is not a read"),
    ("SELECT 1 PARALLEL WITH SELECT 2", "PARALLEL WITH is not a read"),
    ("EXPLAIN TABLE OVERRIDE mysql('127.0.0.1:{port}', 'a', 'b', 'c', 'd') PARTITION BY x", "EXPLAIN TABLE OVERRIDE"),
]


def _id(case: tuple[str, str]) -> str:
    return re.sub(r"\W+", "-", case[0])[:60].strip("-")


@pytest.mark.parametrize("template, names", REFUSED, ids=[_id(c) for c in REFUSED])
async def test_a_statement_that_is_not_a_read_is_refused_and_does_nothing(
        stack: Stack, client: RPC, tmp_path: Path, template: str, names: str) -> None:
    out = tmp_path / "out.txt"
    with pytest.raises(RPCError) as refused:
        await store.query(stack.fill(template, out))
    message = refused.value.message
    assert refused.value.code == 400 and message.startswith("store.query is read-only: "), message
    assert names in message, message
    assert not out.exists(), "a file was written"
    assert stack.marker not in message, "the secret came back in the error"
    await stack.listener.quiet()
    assert await _count(client) == SEEDED and await _count(client, "SELECT count() AS n FROM system.tables "
                                                           "WHERE database = 'stats' AND name = 'events'") == 1


READS = [
    ("SELECT {n:UInt32} + 1 AS n", {"n": 41}, [{"n": 42}]),
    ("SELECT count() AS n FROM numbers(10)", {}, [{"n": 10}]),
    ("SELECT count() AS n FROM stats.events WHERE id >= {low:UInt64}", {"low": 7_000_000_000_000_000}, [{"n": SEEDED}]),
    ("SELECT count() AS n FROM merge('stats', '^events$')", {}, [{"n": SEEDED}]),
    ("SELECT a FROM view(SELECT 1 AS a)", {}, [{"a": 1}]),
    ("WITH t AS (SELECT number FROM numbers(4)) SELECT sum(number) AS n FROM t", {}, [{"n": 6}]),
    ("SELECT a FROM (SELECT 1 AS a UNION ALL SELECT 2) ORDER BY a", {}, [{"a": 1}, {"a": 2}]),
    ("(SELECT 1 AS a)", {}, [{"a": 1}]),
    ("-- a comment first\nSELECT 1 AS a; -- and after", {}, [{"a": 1}]),
    ("SELECT 'x INTO OUTFILE ''y'' SETTINGS readonly=0; DROP TABLE t' AS s", {},
     [{"s": "x INTO OUTFILE 'y' SETTINGS readonly=0; DROP TABLE t"}]),
    ("SELECT format('{}-{}', 'a', 'b') AS s", {}, [{"s": "a-b"}]),
    ("SELECT 1 AS file FROM numbers(1) AS file", {}, [{"file": 1}]),
    ("SELECT getSetting('readonly') AS r", {}, [{"r": 1}]),
    ("EXISTS stats.events", {}, [{"result": 1}]),
    ("SHOW TABLES FROM stats LIKE 'events'", {}, [{"name": "events"}]),
]


@pytest.mark.parametrize("sql, params, rows", READS, ids=[_id((r[0], "")) for r in READS])
async def test_ordinary_reads_still_work(stack: Stack, client: RPC, sql: str, params: dict[str, Any],
                                         rows: list[dict[str, Any]]) -> None:
    assert await store.query(sql, **params) == rows


@pytest.mark.parametrize("sql", ["DESCRIBE stats.events", "DESCRIBE (SELECT 1 AS a)", "SHOW CREATE TABLE stats.events",
                                 "SHOW COLUMNS FROM stats.events", "EXPLAIN SELECT count() FROM stats.events",
                                 "EXPLAIN AST SELECT 1", "EXPLAIN SYNTAX SELECT 1", "SHOW DATABASES"])
async def test_describe_show_and_explain_answer(stack: Stack, client: RPC, sql: str) -> None:
    assert await store.query(sql), sql


def _saved() -> list[tuple[str, str]]:
    found = [(f"panel: {title}", sql) for title, sql in queries.SAVED]
    found += [(f"panel sql/{name}", queries.sql(name)) for name in ("user-history", "uids-of-user")]
    found += [(f"examples/queries/{path.name}", path.read_text()) for path in sorted((ROOT / "examples/queries").glob("*.sql"))]
    return found


VALUES: dict[str, Any] = {"since": "2023-01-01", "limit": 5, "uid": 6462464730849083392, "user_id": "u1", "by": "person"}


@pytest.mark.parametrize("title, sql", _saved(), ids=[t for t, _ in _saved()])
async def test_saved_and_example_queries_pass_the_guard(stack: Stack, client: RPC, title: str, sql: str) -> None:
    params = {name: VALUES[name] for name in re.findall(r"\{(\w+):", sql)}
    assert isinstance(await store.query(sql, **params), list), title


async def test_a_syntax_error_is_clickhouses_not_read_only(stack: Stack, client: RPC) -> None:
    with pytest.raises(RPCError) as bad:
        await store.query("SELEC 1")
    assert bad.value.code == 400 and "Syntax error" in bad.value.message, bad.value.message
    assert "read-only" not in bad.value.message and "formatQuery" not in bad.value.message, bad.value.message
    with pytest.raises(RPCError, match="Substitution `n` is not set"):
        await store.query("SELECT {n:UInt32}")


def test_band_sql_refuses_with_exit_1_and_runs_reads(stack: Stack, tmp_path: Path) -> None:
    def band_sql(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "band", "sql", *args, "--nats", stack.nats.url],
                              capture_output=True, text=True, timeout=60)

    out = tmp_path / "out.txt"
    for template, names in (("SELECT 'x' INTO OUTFILE '{out}' APPEND FORMAT TSV", "INTO OUTFILE"),
                            ("SELECT * FROM file('{secret}', 'LineAsString')", "table function file()"),
                            ("SELECT 1; DROP TABLE stats.events", "one statement")):
        done = band_sql(stack.fill(template, out))
        assert done.returncode == 1 and "band sql: store.query is read-only: " in done.stderr, done.stderr
        assert names in done.stderr and stack.marker not in done.stdout + done.stderr, done.stderr
    assert not out.exists()
    bad = band_sql("SELEC 1")
    assert bad.returncode == 1 and "Syntax error" in bad.stderr and "read-only" not in bad.stderr, bad.stderr
    ok = band_sql("SELECT count() AS n FROM stats.events WHERE id >= {low:UInt64}", "low=0", "--format", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout) == [{"n": SEEDED}], ok.stderr


async def test_the_panels_sql_box_is_refused_the_same(stack: Stack, tmp_path: Path) -> None:
    config = PanelConfig(port=free_port(), nats_url=stack.nats.url, token=TOKEN, edge_urls=(), interval_s=0.5)
    out = tmp_path / "out.txt"
    async with running(config) as base, aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"},
                                                             timeout=aiohttp.ClientTimeout(total=30)) as http:
        async def ask(sql: str) -> tuple[int, Any]:
            async with http.post(f"{base}/api/store/query", json={"sql": sql}) as resp:
                return resp.status, await resp.json()

        for template, names in (("SELECT 'x' INTO OUTFILE '{out}'", "INTO OUTFILE"),
                                ("SELECT file('{secret}') AS s", "function file()"),
                                ("SELECT * FROM url('http://127.0.0.1:{port}/x', 'LineAsString')", "table function url()")):
            status, answer = await ask(stack.fill(template, out))
            assert status == 400 and "read-only" in answer["error"] and names in answer["error"], answer
            assert stack.marker not in json.dumps(answer)
        assert not out.exists()
        await stack.listener.quiet()
        status, answer = await ask("SELECT count() AS n FROM stats.events")
        assert status == 200 and answer["rows"] == [{"n": SEEDED}], answer


async def test_url_to_the_edge_makes_no_hit(stack: Stack, client: RPC, tmp_path: Path) -> None:
    """The red team's url() at the edge's /track/page would have stored a hit; a plain hit
    sent after it is stored, and the stream keeps order, so one from url() would be too."""
    edge, port = start_edge(stack.nats.url, tmp_path)
    attack, control = uuid.uuid4().hex, uuid.uuid4().hex
    stored = "SELECT count() AS n FROM stats.events WHERE has(extra.value, {m:String})"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            await wait_for(lambda: edge_healthy(http, f"http://127.0.0.1:{port}"), 30, "the edge answers /health", procs=[edge])
            with pytest.raises(RPCError, match="table function url"):
                await store.query(f"SELECT * FROM url('http://127.0.0.1:{port}/track/page?m={attack}', 'LineAsString')")
            async with http.get(f"http://127.0.0.1:{port}/track/page?m={control}") as resp:
                assert resp.status == 200
        async def control_stored() -> bool:
            return await _count(client, stored, m=control) == 1

        await wait_for(control_stored, 60, "the control hit stored", procs=[stack.proc])
        assert await _count(client, stored, m=attack) == 0, "url() made a hit"
    finally:
        assert edge.stop() == 0, edge.text()[-3000:]


# --- each layer alone -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedChdb]:
    """chDB without the guard: its writing session (readonly=0) prints the trees."""
    backend = IsolatedChdb(tmp_path_factory.mktemp("ast") / "db")
    backend.command("CREATE DATABASE IF NOT EXISTS stats")
    backend.command("CREATE TABLE IF NOT EXISTS stats.events (id UInt64, page_url String) ENGINE = MergeTree ORDER BY id")
    yield backend
    backend.close()


def walk(chdb: IsolatedChdb, sql: str) -> None:
    statement = chdb.select(readonly.one_statement(sql))["rows"][0]["statement"]
    ast = "\n".join(row["explain"] for row in chdb.select(readonly.explain(sql))["rows"])
    readonly.check(ast, statement)


@pytest.mark.parametrize("sql, names", [
    ("SELECT 1 SETTINGS readonly = 0", "SETTINGS"),  # the readonly=1 session refuses it too, but not here
    ("SELECT 1 SETTINGS max_threads = 1, allow_ddl = 1", "SETTINGS"),
    ("DESCRIBE stats.events SETTINGS describe_include_subcolumns = 1", "SETTINGS"),
    ("SELECT 'x' INTO OUTFILE '/tmp/band-never.txt'", "INTO OUTFILE"),
    ("SELECT 1 AS `a\n SelectQuery` INTO OUTFILE '/tmp/band-never.txt'", "INTO OUTFILE"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table function file()"),
    ("SELECT file('/etc/passwd')", "function file()"),
    ("SELECT catboostEvaluate('/tmp/model.bin', 1)", "function catboostEvaluate()"),
    ("SELECT * FROM numbers(1) AS `n\n TableExpression`, url('http://127.0.0.1:9/', 'CSV') AS u", "url()"),
    ("SELECT * FROM numbers(1) AS x, `file`('/etc/passwd', 'LineAsString') AS f", "table function file()"),
    ("SELECT * FROM loop(numbers(1))", "table function loop()"),
    ("EXPLAIN CURRENT TRANSACTION", "EXPLAIN CURRENT TRANSACTION"),
    ("EXPLAIN indexes = 1 SELECT * FROM stats.events", "EXPLAIN's options"),  # the tree hides their values
    ("SHOW GRANTS", "SHOW GRANTS is not a read"),
    ("SELECT * APPLY(file) FROM (SELECT '/etc/passwd' AS p)", "APPLY"),
    ("SELECT * APPLY(x -> upper(x)) FROM (SELECT 'a' AS p)", "APPLY"),
    ("SHOW TABLES FROM stats WHERE file('/etc/passwd') != ''", "WHERE or LIMIT"),
    ("SHOW TABLES FROM stats LIKE 'e%' LIMIT 1", "WHERE or LIMIT"),
    ("CHECK TABLE stats.events", "CHECK is not a read"),
])
def test_the_parse_guard_alone_refuses(chdb: IsolatedChdb, sql: str, names: str) -> None:
    with pytest.raises(readonly.Refused, match=re.escape(names)):
        walk(chdb, sql)


@pytest.mark.parametrize("sql", ["SELECT 1", "SELECT * FROM stats.events AS `a\n TableExpression`",
                                 "SELECT count() FROM stats.events AS e JOIN numbers(3) AS n ON e.id = n.number",
                                 "SHOW TABLES FROM stats",
                                 "SHOW FULL COLUMNS IN stats.events NOT LIKE 'x%'", "SHOW DATABASES",
                                 "SELECT * REPLACE (upper(page_url) AS page_url) FROM stats.events",
                                 "SELECT * FROM stats.events WHERE id IN (1, 2) LIMIT 5 OFFSET 1",
                                 "SELECT x -> x + 1 AS f, [1, 2] AS a, map('k', 1) AS m"])
def test_the_parse_guard_alone_lets_reads_through(chdb: IsolatedChdb, sql: str) -> None:
    walk(chdb, sql)


async def test_the_readonly_session_alone_refuses(stack: Stack, tmp_path: Path) -> None:
    """The reading session without the guard: ClickHouse's readonly=1 stops table functions
    that reach outside, SETTINGS, SET and writes. It cannot stop INTO OUTFILE or the scalar
    file() in chDB (clickhouse-local does both on the client side): only the guard does."""
    script = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        from band.store.backend import ChdbBackend, StoreError
        backend = ChdbBackend(Path(sys.argv[1]))
        answers = {}
        for sql in sys.stdin.read().split("\\n====\\n"):
            try:
                backend._run(backend._reader, sql, "JSON")
                answers[sql] = "ran"
            except StoreError as exc:
                answers[sql] = exc.code
        backend.close()
        print(json.dumps(answers))
    """)
    statements = [stack.fill(s, tmp_path / "out.txt") for s in (
        "SELECT * FROM file('{secret}', 'LineAsString')", "SELECT * FROM url('http://127.0.0.1:{port}/x', 'LineAsString')",
        "SELECT * FROM remote('127.0.0.1:{port}', system.one)", "SELECT * FROM executable('id', 'TSV', 'x String')",
        "SELECT 1 SETTINGS readonly = 0", "SET readonly = 0", "CREATE DATABASE other", "SELECT 1 SETTINGS max_threads = 1")]
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script, str(tmp_path / "db")],
                                   input="\n====\n".join(statements), capture_output=True, text=True, timeout=120,
                                   cwd=tmp_path)  # not the checkout: band comes from the path the tests run
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers == {sql: 164 for sql in statements}, answers
    await stack.listener.quiet()
