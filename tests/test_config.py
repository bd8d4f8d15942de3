"""Configuration: defaults, user file, environment, and errors that name the key and value."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from aria.config import DEFAULTS_FILE, load, section_models
from aria.errors import ConfigError


class TestDefaults:
    def test_the_defaults_file_documents_exactly_the_model_defaults(self) -> None:
        """config/aria.toml and the models cannot drift apart: same sections, keys and values."""
        with DEFAULTS_FILE.open("rb") as handle:
            documented = tomllib.load(handle)
        models = section_models()
        for name, model in models.items():
            defaults = model().model_dump(mode="json")
            if defaults:
                assert documented.get(name) == defaults, (
                    f"[{name}] in config/aria.toml differs from its model"
                )
            else:
                assert name not in documented or documented[name] == {}
        assert set(documented) <= set(models)

    def test_loads_without_any_file(self) -> None:
        config = load(defaults_file=None, environ={})
        assert config.log.level == "info"
        assert config.supervisor.intensity == 3


class TestSources:
    def test_user_file_then_environment_then_code(self, tmp_path: Path) -> None:
        user = tmp_path / "mine.toml"
        user.write_text('[log]\nlevel = "debug"\nformat = "json"\n[supervisor]\nintensity = 7\n')
        config = load(
            user,
            environ={"ARIA_SUPERVISOR__INTENSITY": "9", "ARIA_SUPERVISOR__PERIOD": "2.5"},
            overrides={"log": {"format": "console"}},
        )
        assert config.log.level == "debug"
        assert config.supervisor.intensity == 9
        assert config.supervisor.period == 2.5
        assert config.log.format == "console"
        assert config.source_of("log.level") == str(user)
        assert config.source_of("supervisor.intensity") == "ARIA_SUPERVISOR__INTENSITY"
        assert config.source_of("log.format") == "code"
        assert config.source_of("node.name") == "defaults"

    def test_aria_config_and_aria_data_dir_variables(self, tmp_path: Path) -> None:
        user = tmp_path / "env.toml"
        user.write_text('[node]\nname = "from-file"\n')
        config = load(environ={"ARIA_CONFIG": str(user), "ARIA_DATA_DIR": str(tmp_path / "state")})
        assert config.node_name == "from-file"
        assert config.data_dir == (tmp_path / "state").resolve()
        assert config.control_socket == (tmp_path / "state" / "aria.sock").resolve()

    def test_string_values_from_the_environment_stay_strings(self) -> None:
        config = load(environ={"ARIA_NODE__NAME": "node-7"})
        assert config.node.name == "node-7"


class TestErrors:
    def test_wrong_type_names_key_value_source_and_rule(self) -> None:
        with pytest.raises(ConfigError) as info:
            load(environ={"ARIA_SUPERVISOR__INTENSITY": "-2"})
        assert str(info.value) == (
            "invalid configuration: supervisor.intensity = -2 (from ARIA_SUPERVISOR__INTENSITY): "
            "Input should be greater than or equal to 0"
        )

    def test_a_value_outside_a_choice_lists_what_is_allowed(self, tmp_path: Path) -> None:
        user = tmp_path / "bad.toml"
        user.write_text('[log]\nlevel = "loud"\n')
        with pytest.raises(
            ConfigError,
            match=r"log.level = 'loud' \(from .*bad.toml\): "
            r"Input should be 'debug', 'info', 'warning' or 'error'",
        ):
            load(user, environ={})

    def test_unknown_keys_and_sections_are_errors_listing_what_exists(self, tmp_path: Path) -> None:
        user = tmp_path / "typo.toml"
        user.write_text('[log]\nlevl = "debug"\n[logging]\nlevel = "x"\n')
        with pytest.raises(ConfigError) as info:
            load(user, environ={})
        problems = info.value.problems
        assert any(
            p.startswith("unknown key log.levl") and "keys of [log] are: format, level" in p for p in problems
        )
        assert any(p.startswith("unknown section [logging]") for p in problems)

    def test_every_problem_is_reported_at_once(self) -> None:
        with pytest.raises(ConfigError) as info:
            load(environ={"ARIA_LOG__LEVEL": "loud", "ARIA_SUPERVISOR__PERIOD": "0", "ARIA_NOPE__X": "1"})
        assert len(info.value.problems) == 3

    def test_malformed_files_and_variables(self, tmp_path: Path) -> None:
        broken = tmp_path / "broken.toml"
        broken.write_text("[log\nlevel=")
        with pytest.raises(ConfigError, match="is not valid TOML"):
            load(broken, environ={})
        with pytest.raises(ConfigError, match=r"config file '.*missing.toml' does not exist"):
            load(tmp_path / "missing.toml", environ={})
        with pytest.raises(ConfigError, match="ARIA___X does not name a key"):
            load(environ={"ARIA___X": "1"})
