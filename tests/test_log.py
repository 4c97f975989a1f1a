"""logger: structlog lines with the service name; JSON_LOGS and LOG_LEVEL."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from band import App
from band._core import log


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    log.configure({}, stream=io.StringIO())


def test_json_lines_carry_the_service_and_fields(captured: io.StringIO) -> None:
    log.configure({"JSON_LOGS": "1", "LOG_LEVEL": "debug"}, stream=captured)
    logger = App("jsonsvc").logger
    logger.debug("message", data={"user": "12312321312"})
    logger.warn("old spelling works")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("my service exception")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["message", "old spelling works", "my service exception"]
    assert all(line["service"] == "jsonsvc" for line in lines)
    assert lines[0]["data"] == {"user": "12312321312"} and lines[0]["level"] == "debug"
    assert lines[1]["level"] == "warning"
    assert "ValueError" in json.dumps(lines[2]["exception"])


def test_level_and_console_format(captured: io.StringIO) -> None:
    log.configure({"LOG_LEVEL": "warning"}, stream=captured)
    logger = App("quiet").logger
    logger.info("hidden")
    logger.error("shown", order=42)
    text = captured.getvalue()
    assert "hidden" not in text
    assert "shown" in text and "service=quiet" in text and "order=42" in text
    assert not text.lstrip().startswith("{")
