"""settings: config.yml with {{VAR}} from the environment; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from band import ConfigError
from band._core.settings import Settings, load, substitute

DOC_CONFIG = """\
pool:
  - 74994031705
  - 74994040139
extra:
  - 74994041156
# Подстановка переменной окружения API_KEY
api_key: "{{API_KEY}}"
region: "{{REGION|default('eu')}}"
nested:
  deep:
    value: 3
"""


def write(tmp_path: Path, text: str, name: str = "config.yml") -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_documented_config(tmp_path: Path) -> None:
    settings = load(write(tmp_path, DOC_CONFIG), env={"API_KEY": "secret"})
    assert settings.extra == [74994041156]
    assert settings["pool"] == [74994031705, 74994040139]
    assert settings.api_key == "secret" and settings.region == "eu"
    assert settings.nested.deep.value == 3 and settings.get("missing", "d") == "d"
    with pytest.raises(AttributeError, match="no 'missing'"):
        _ = settings.missing


def test_missing_variable_names_it_and_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load(write(tmp_path, DOC_CONFIG), env={})
    assert "API_KEY" in str(error.value) and "config.yml:7" in str(error.value)


def test_yaml_error_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load(write(tmp_path, "a: 1\nb: [unclosed\nc: 2\n", "config.yaml"), env={})
    assert "config.yaml:" in str(error.value) and "invalid YAML" in str(error.value)


def test_no_config_is_empty_and_non_mapping_is_refused(tmp_path: Path) -> None:
    assert load(tmp_path, env={}) == Settings()
    with pytest.raises(ConfigError, match="mapping"):
        load(write(tmp_path, "- 1\n- 2\n"), env={})


def test_defaults_with_double_quotes_and_read_only() -> None:
    assert substitute('x: {{ V | default("a b") }}', {}) == "x: a b"
    with pytest.raises(AttributeError):
        Settings({"a": 1}).a = 2  # type: ignore[misc]
