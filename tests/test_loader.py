"""Loading services from files: `from band import ...` binds to each service's own app."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from band import App, ConfigError
from band._core import log
from band._core.loader import load_service
from band.testing import serve

SNIPPET = '''
from band import settings, logger, expose, worker, cleanup, response, rpc, scheduler, blocking, redis_factory

@expose()
async def main(**params):
    return {"me": settings.name_of_me, "other": await rpc.request(settings.other, "main") if settings.get("other") else None}
'''


def make(tmp_path: Path, folder: str, config: str) -> Path:
    path = tmp_path / folder
    path.mkdir()
    (path / "main.py").write_text(SNIPPET)
    (path / "config.yml").write_text(config)
    return path


async def test_two_services_in_one_process(tmp_path: Path, nats_url: str) -> None:
    first = load_service(make(tmp_path, "alpha", "name_of_me: alpha\nother: beta\n"))
    second = load_service(make(tmp_path, "beta", "name_of_me: beta\n"))
    assert (first.name, second.name) == ("alpha", "beta")
    caller = App("outsider")
    async with serve(first, nats_url), serve(second, nats_url), serve(caller, nats_url):
        assert await caller.rpc.request("alpha", "main") == {"me": "alpha", "other": {"me": "beta", "other": None}}


def test_name_from_config_then_folder_and_single_files(tmp_path: Path) -> None:
    assert load_service(make(tmp_path, "folder-name", "name_of_me: x\n")).name == "folder-name"
    assert load_service(make(tmp_path, "other", "name: renamed\nname_of_me: x\n")).name == "renamed"
    single = tmp_path / "solo.py"
    single.write_text("from band import expose\n\n@expose()\nasync def hi(**p):\n    return 1\n")
    app = load_service(single)
    assert app.name == "solo" and list(app.registry.rpc_methods()) == ["hi"]


def test_missing_service_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"main\.py"):
        load_service(tmp_path)
    with pytest.raises(ConfigError, match="not a service"):
        load_service(tmp_path / "nothing-here")


@pytest.fixture
def warnings_seen() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    stream = io.StringIO()
    log.configure({"JSON_LOGS": "1"}, stream=stream)
    yield lambda: [line for line in map(json.loads, stream.getvalue().splitlines()) if line["level"] == "warning"]
    log.configure({}, stream=io.StringIO())


def test_a_service_dir_without_config_yml_gets_one_warning_naming_it(
    tmp_path: Path, warnings_seen: Callable[[], list[dict[str, Any]]]
) -> None:
    service = tmp_path / "bare"
    service.mkdir()
    (service / "main.py").write_text("from band import expose\n")
    app = load_service(service)
    assert app.name == "bare"
    [warning] = warnings_seen()
    assert str(service) in warning["event"] and "config.yml" in warning["event"]


def test_a_misspelt_framework_key_gets_one_warning_naming_file_and_key(
    tmp_path: Path, warnings_seen: Callable[[], list[dict[str, Any]]]
) -> None:
    service = tmp_path / "typo"
    service.mkdir()
    (service / "main.py").write_text("from band import expose\n")
    (service / "config.yml").write_text("nmae: crm2\ngame: chess\nregion: eu\napi_key: x\n")
    app = load_service(service)
    assert app.name == "typo" and app.settings.game == "chess" and app.settings.nmae == "crm2"
    [warning] = warnings_seen()
    assert str(service / "config.yml") in warning["event"] and "'nmae'" in warning["event"] and "'name'" in warning["event"]
