"""Is this statement a read? The parse half of the store's read-only queries.

``store.query`` (and so ``band sql`` and the panel's SQL box) runs SQL someone typed.
ClickHouse's ``readonly`` setting alone does not make that safe: chDB is clickhouse-local
inside, where ``INTO OUTFILE`` writes a file and the scalar ``file()`` reads one whatever
the setting says. So ClickHouse's own parser reads the statement first and this module
walks the tree it prints (``EXPLAIN AST``: one node a line, one space of indent a level):

- one statement (the parser refuses a second one: :func:`one_statement`);
- a reading kind: ``SELECT`` / ``WITH`` / ``UNION``, ``SHOW`` (tables, columns, indexes,
  ``CREATE``), ``DESCRIBE``, ``EXISTS``, and ``EXPLAIN`` of a ``SELECT``;
- no ``INTO OUTFILE``, no ``SETTINGS`` clause, no ``SET`` and no ``EXPLAIN`` options (the tree
  prints a ``Set`` node without its values);
- table functions from :data:`TABLE_FUNCTIONS` only (an allow-list: new ones are refused);
- none of :data:`FUNCTIONS_DENIED` anywhere (a deny-list: functions that read files or
  write outside the store's tables);
- nothing the printed tree leaves out: ``APPLY`` (it holds a function by name), and a
  ``WHERE`` or ``LIMIT`` of ``SHOW TABLES/COLUMNS/INDEXES`` (only their plain form runs,
  read from ClickHouse's own formatting of the statement).

The walk trusts only what a user cannot forge. An alias or a quoted name may hold a line
break, and the text after it then reads like more nodes; such text can add lines (and so
only add refusals) but never remove, rename or re-indent a real node. So each rule reads
one line, its indent, or the line just before it (a ``TableExpression`` has no alias),
never a parent found by walking back over lines that might be forged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# the statement kinds that read, as EXPLAIN AST names them
READ_KINDS = frozenset({
    "SelectWithUnionQuery", "ShowTables", "ShowColumns", "ShowIndexes",
    "ShowCreateTableQuery", "ShowCreateDatabaseQuery", "ShowCreateViewQuery", "ShowCreateDictionaryQuery",
    "DescribeQuery", "ExistsTableQuery", "ExistsDatabaseQuery", "ExistsViewQuery", "ExistsDictionaryQuery",
})
EXPLAINS = frozenset({"EXPLAIN", "EXPLAIN AST", "EXPLAIN SYNTAX", "EXPLAIN PIPELINE", "EXPLAIN ESTIMATE",
                      "EXPLAIN QUERY TREE"})
# table functions that only make rows or read the store's own tables (view's and merge's
# sources are checked like any other part of the statement)
TABLE_FUNCTIONS = ("numbers", "numbers_mt", "zeros", "zeros_mt", "generateRandom", "generateSeries", "generate_series",
                   "primes", "values", "null", "view", "merge")
_TABLE_FUNCTIONS = frozenset(name.lower() for name in TABLE_FUNCTIONS)  # ClickHouse takes any case
# scalar functions that reach outside the store's tables, refused wherever they appear
FUNCTIONS_DENIED = {
    "file": "reads a file of the server's disk",
    "catboostevaluate": "loads a model file from the server's disk",
    "modelevaluate": "loads a model file from the server's disk",
    "generateserialid": "writes a counter to ClickHouse Keeper",
}
# SHOW TABLES / COLUMNS / INDEXES print neither their WHERE nor their LIMIT in the tree, so
# they run only in their plain form (FROM, LIKE), as ClickHouse formats it on one line
_HIDING = frozenset({"ShowTables", "ShowColumns", "ShowIndexes"})
_NAME = r"(?:[A-Za-z_][A-Za-z0-9_]*|`(?:[^`\\]|\\.)*`)"
_PLAIN_SHOW = re.compile(rf"SHOW(?: (?!WHERE\b|LIMIT\b)[A-Z]+)+(?: FROM {_NAME}(?:\.{_NAME})?)*"
                         r"(?: (?:NOT )?I?LIKE '(?:[^'\\]|\\.)*')?")
MULTI_STATEMENTS = "Multi-statements are not allowed"  # ClickHouse's words for a second statement
_CHANGES = "change tables in the store's store.yml or a migrations/*.sql file; write rows with store.insert"
ONE_STATEMENT = "it runs one statement per query: send each statement on its own"
SETTINGS = ("a SETTINGS clause or SET is refused (readonly=1: the store's limits hold for every query); "
            "remove it")
OUTFILE = ("INTO OUTFILE writes a file on the store's machine; take the rows from the answer instead "
           "(band sql --format csv|tsv|json)")
APPLY = "APPLY keeps the function it applies out of the check; call the function on the columns instead"
_FUNCTION = re.compile(r"Function (.+?)(?: \(alias .*)?(?: \(children \d+\))?")


class Refused(Exception):
    """The statement is not a read; the message says what was refused."""


@dataclass(frozen=True)
class _Line:
    indent: int
    text: str

    @classmethod
    def of(cls, raw: str) -> _Line:
        text = raw.lstrip(" ")
        return cls(len(raw) - len(text), text.rstrip())

    @property
    def kind(self) -> str:
        return self.text.split(" ", 1)[0]

    @property
    def function(self) -> str | None:
        found = _FUNCTION.fullmatch(self.text)
        return found.group(1) if found else None


def one_statement(sql: str) -> str:
    """A query answering ``sql`` formatted on one line by ClickHouse, or ClickHouse's
    syntax error, ``Multi-statements are not allowed`` for a second statement. ``sql``
    travels as a string literal: this parses it and runs none of it."""
    literal = sql.replace("\\", "\\\\").replace("'", "\\'")
    return f"SELECT formatQuerySingleLine('{literal}') AS statement"


def explain(sql: str) -> str:
    """``EXPLAIN AST`` of ``sql``: parses only (no table or file is opened). Run it only
    after :func:`one_statement` passed: clickhouse-local runs each of several statements."""
    return "EXPLAIN AST " + sql


def check(ast: str, statement: str) -> None:
    """Refuse ``ast`` (the rows of ``EXPLAIN AST``) unless it is one read. ``statement``,
    ClickHouse's one-line formatting of it, names what was refused and shows the clauses
    of ``SHOW`` that the tree leaves out.

    Raises:
        Refused: with a message saying what was refused and what to do instead.
    """
    lines = [_Line.of(raw) for raw in ast.splitlines() if raw.strip()]
    if not lines:
        raise Refused("ClickHouse found no statement to run")
    root = lines[0]
    if root.kind == "Explain":
        _check_explain(lines)
    elif root.kind == "Set":
        raise Refused(SETTINGS)
    elif root.kind not in READ_KINDS:
        raise Refused(_not_a_read(_name(root.kind, statement)))
    for at, line in enumerate(lines[1:], 1):
        _check_line(line, lines[at - 1])
    if root.kind in _HIDING and not _PLAIN_SHOW.fullmatch(statement):
        raise Refused(f"{_name(root.kind, statement)} with WHERE or LIMIT cannot be checked; SELECT from "
                      "system.tables, system.columns or system.data_skipping_indices instead")


def _check_explain(lines: list[_Line]) -> None:
    kind = lines[0].text.removeprefix("Explain ").split(" (children")[0]
    if len(lines) > 1 and lines[1].text == "Set":
        raise Refused("EXPLAIN's options (indexes = 1, ...) are refused: the parsed tree leaves their values out; "
                      "EXPLAIN without them")
    if kind not in EXPLAINS or len(lines) < 2 or lines[1].kind != "SelectWithUnionQuery":
        raise Refused(f"{kind} runs here on a SELECT only (EXPLAIN, AST, SYNTAX, PIPELINE, ESTIMATE or QUERY TREE)")


def _check_line(line: _Line, before: _Line) -> None:
    if line.text == "Set":
        raise Refused(SETTINGS)
    if line.indent in (1, 2) and line.kind == "Literal":  # no read statement holds a literal this high
        raise Refused(OUTFILE)
    if line.kind == "ColumnsApplyTransformer":
        raise Refused(APPLY)
    name = line.function
    if name is None:
        return
    if before.kind == "TableExpression" and line.indent == before.indent + 1:  # the table of a FROM/JOIN/DESCRIBE
        if name.lower() not in _TABLE_FUNCTIONS:
            allowed = ", ".join(TABLE_FUNCTIONS)
            raise Refused(f"table function {name}() reads outside the store's tables (files, URLs, other servers or "
                          f"programs); the table functions allowed are {allowed}")
    elif name.lower() in FUNCTIONS_DENIED:
        raise Refused(f"function {name}() {FUNCTIONS_DENIED[name.lower()]}")


def _name(kind: str, statement: str) -> str:
    """What the user wrote, for a message: ``INSERT``, ``SHOW USERS``, ``PARALLEL WITH``."""
    if kind == "ParallelWithQuery":
        return "PARALLEL WITH"
    words = statement.split()
    if not words:
        return kind
    return " ".join(words[:2]) if words[0].upper() in ("SHOW", "EXPLAIN", "EXISTS") else words[0]


def _not_a_read(name: str) -> str:
    return f"{name} is not a read (it runs SELECT, WITH, SHOW, DESCRIBE, EXISTS and EXPLAIN of a SELECT); {_CHANGES}"


__all__ = [
    "APPLY",
    "FUNCTIONS_DENIED",
    "MULTI_STATEMENTS",
    "ONE_STATEMENT",
    "OUTFILE",
    "READ_KINDS",
    "SETTINGS",
    "TABLE_FUNCTIONS",
    "Refused",
    "check",
    "explain",
    "one_statement",
]
