"""Configuration: defaults, an optional user file, environment overrides, validated at start.

Sources, later ones winning key by key:

1. ``config/aria.toml`` in the project (the documented defaults; the models below carry the same
   values, and a test keeps the two identical);
2. a user file: ``aria start --config FILE`` or ``$ARIA_CONFIG``;
3. environment variables ``ARIA_<SECTION>__<KEY>`` (``ARIA_DATA__ENGINE=postgres``), with values
   read as TOML literals when they parse (``3``, ``true``, ``["a", "b"]``) and as strings otherwise;
   ``$ARIA_DATA_DIR`` is short for ``ARIA_NODE__DATA_DIR``;
4. overrides passed in code (``aria.running(config={...})``).

Sections are ``node``, ``log``, ``supervisor``, ``control`` and one per app, named after the app
without its ``aria_`` prefix (``[data]``, ``[storage]``...). Unknown sections and keys are errors, so
a typo never passes silently. Every problem is reported with the key, the bad value, where it came
from and what is allowed.
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from aria.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = PROJECT_ROOT / "config" / "aria.toml"
ENV_PREFIX = "ARIA_"


class Section(BaseModel):
    """Base class of every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class NodeSection(Section):
    name: str = Field("", description="This node's name in logs and the cluster; empty means the host name.")
    data_dir: str = Field(
        "", description="Where all state lives; empty means ./var in the project, or $ARIA_DATA_DIR."
    )


class LogSection(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "console", "json"] = Field(
        "auto", description="auto: console on a terminal, JSON otherwise."
    )


class SupervisorSection(Section):
    intensity: int = Field(
        3, ge=0, description="Root supervisor: restarts allowed within `period` before giving up."
    )
    period: float = Field(5.0, gt=0, description="Root supervisor: the window for `intensity`, in seconds.")
    shutdown_timeout: float = Field(
        60.0, gt=0, description="Upper bound for stopping everything, in seconds."
    )


class ControlSection(Section):
    socket: str = Field(
        "", description="Unix socket for `aria status`/`aria stop`; empty means <data_dir>/aria.sock."
    )


class EmptySection(Section):
    """The section of an app that has no settings yet."""


_CORE_SECTIONS: dict[str, type[Section]] = {
    "node": NodeSection,
    "log": LogSection,
    "supervisor": SupervisorSection,
    "control": ControlSection,
}


class Config:
    """The validated, read-only configuration of one Aria node.

    Sections are attributes (``config.data.engine``); :meth:`section` looks one up by name.
    """

    def __init__(self, sections: dict[str, Section], sources: dict[str, str]) -> None:
        self._sections = sections
        self._sources = sources

    def __getattr__(self, name: str) -> Any:
        try:
            return self._sections[name]
        except KeyError:
            raise AttributeError(f"no config section {name!r}") from None

    def section(self, name: str) -> Section:
        return self._sections[name]

    @property
    def data_dir(self) -> Path:
        """The node's data directory, absolute."""
        return Path(self._sections["node"].data_dir or default_data_dir()).resolve()  # type: ignore[attr-defined]

    @property
    def node_name(self) -> str:
        return self._sections["node"].name or socket.gethostname()  # type: ignore[attr-defined]

    @property
    def control_socket(self) -> Path:
        explicit = self._sections["control"].socket  # type: ignore[attr-defined]
        return Path(explicit) if explicit else self.data_dir / "aria.sock"

    def source_of(self, dotted_key: str) -> str:
        """Where a key's value came from: ``defaults``, a file path, an environment variable or ``code``."""
        return self._sources.get(dotted_key, "defaults")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: section.model_dump(mode="json") for name, section in self._sections.items()}

    def replace(self, overrides: Mapping[str, Mapping[str, Any]]) -> Config:
        """A copy with some values replaced (validated like any other source)."""
        merged = self.to_dict()
        sources = dict(self._sources)
        _merge(merged, _normalise(overrides, "code"), sources, "code")
        return _validate(merged, sources)


def default_data_dir() -> Path:
    """``$ARIA_DATA_DIR``, else ``var/`` in the project when it is a source checkout, else ``./var``."""
    from_env = os.environ.get("ARIA_DATA_DIR")
    if from_env:
        return Path(from_env)
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / "var"
    return Path.cwd() / "var"


def section_models() -> dict[str, type[Section]]:
    """Every section's model: the core ones plus one per app, keyed by section name."""
    from aria.apps import all_apps

    models = dict(_CORE_SECTIONS)
    for app in all_apps():
        models[app.section] = app.config_model
    return models


def load(
    user_file: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    defaults_file: Path | None = DEFAULTS_FILE,
) -> Config:
    """Read and validate the configuration from all sources (see the module docstring).

    Raises:
        ConfigError: listing every problem: unreadable or malformed files, unknown sections or
            keys, values of the wrong type or out of range.
    """
    environ = os.environ if environ is None else environ
    merged: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    if defaults_file is not None and defaults_file.exists():
        _merge(merged, _read_toml(defaults_file, problems), sources, "defaults")
    user_path = user_file if user_file is not None else environ.get("ARIA_CONFIG") or None
    if user_path is not None:
        path = Path(user_path)
        if not path.exists():
            problems.append(f"config file {str(path)!r} does not exist")
        else:
            _merge(merged, _read_toml(path, problems), sources, str(path))
    for variable, value in sorted(environ.items()):
        key = _env_key(variable)
        if key is None:
            continue
        if key is _MALFORMED:
            problems.append(f"environment variable {variable} does not name a key: use ARIA_<SECTION>__<KEY>")
            continue
        section, name = key
        merged.setdefault(section, {})[name] = _parse_env_value(value)
        sources[f"{section}.{name}"] = variable
    if overrides:
        _merge(merged, _normalise(overrides, "code"), sources, "code")
    if problems:
        raise ConfigError(problems)
    return _validate(merged, sources)


_MALFORMED: Any = object()


def _env_key(variable: str) -> tuple[str, str] | Any | None:
    if variable == "ARIA_DATA_DIR":
        return ("node", "data_dir")
    if not variable.startswith(ENV_PREFIX) or "__" not in variable:
        return None  # ARIA_CONFIG and other single-word variables are not keys
    section, _, key = variable[len(ENV_PREFIX) :].partition("__")
    if not section or not key:
        return _MALFORMED
    return section.lower(), key.lower()


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def _read_toml(path: Path, problems: list[str]) -> dict[str, dict[str, Any]]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        problems.append(f"cannot read config file {str(path)!r}: {exc.strerror}")
        return {}
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"config file {str(path)!r} is not valid TOML: {exc}")
        return {}
    for section, values in data.items():
        if not isinstance(values, dict):
            problems.append(f"{path}: top-level key {section!r} must be a [section] table")
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _normalise(overrides: Mapping[str, Mapping[str, Any]], origin: str) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for section, values in overrides.items():
        if not isinstance(values, Mapping):
            raise ConfigError([f"{origin}: section {section!r} must be a mapping of keys to values"])
        result[section] = dict(values)
    return result


def _merge(
    target: dict[str, dict[str, Any]],
    source: Mapping[str, Mapping[str, Any]],
    sources: dict[str, str],
    origin: str,
) -> None:
    for section, values in source.items():
        bucket = target.setdefault(section, {})
        for key, value in values.items():
            bucket[key] = value
            sources[f"{section}.{key}"] = origin


def _validate(merged: dict[str, dict[str, Any]], sources: dict[str, str]) -> Config:
    models = section_models()
    problems: list[str] = []
    sections: dict[str, Section] = {}
    for name in merged:
        if name not in models:
            origin = next((s for k, s in sources.items() if k.startswith(f"{name}.")), "defaults")
            problems.append(
                f"unknown section [{name}] (from {origin}); sections are: {', '.join(sorted(models))}"
            )
    for name, model in models.items():
        values = merged.get(name, {})
        try:
            sections[name] = model(**values)
        except pydantic.ValidationError as exc:
            problems.extend(_describe(name, model, exc, values, sources))
    if problems:
        raise ConfigError(problems)
    return Config(sections, sources)


def _describe(
    section: str,
    model: type[Section],
    error: pydantic.ValidationError,
    values: Mapping[str, Any],
    sources: dict[str, str],
) -> list[str]:
    problems = []
    for item in error.errors():
        if not item["loc"]:  # a rule across several keys
            problems.append(f"[{section}]: {item['msg']}")
            continue
        key = ".".join(str(part) for part in item["loc"])
        dotted = f"{section}.{key}"
        top_key = str(item["loc"][0]) if item["loc"] else ""
        origin = sources.get(f"{section}.{top_key}", "defaults")
        if item["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(model.model_fields)) or "none"
            problems.append(f"unknown key {dotted} (from {origin}); keys of [{section}] are: {allowed}")
            continue
        bad = values.get(top_key, item.get("input"))
        problems.append(f"{dotted} = {bad!r} (from {origin}): {item['msg']}")
    return problems
