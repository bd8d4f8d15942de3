"""`aria shape ...` end to end on a tiny model: JSON lines out, reproducible, rules named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aria.cli import main
from tests.shape.conftest import needs_xgrammar


@pytest.fixture
def runner(tiny_model_dir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ARIA_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ARIA_SHAPE__MODEL", str(tiny_model_dir))
    monkeypatch.setenv("ARIA_LOG__LEVEL", "warning")
    return CliRunner()


@needs_xgrammar
def test_generate_prints_one_character_per_line_and_validate_accepts_them(
    runner: CliRunner, tmp_path: Path
) -> None:
    args = [
        "shape",
        "generate",
        "-n",
        "3",
        "--seed",
        "4",
        "--prompt",
        "a grim orc",
        "--constraint",
        "species=orc",
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    characters = [json.loads(line) for line in lines]
    assert all(c["character"]["species"] == "orc" and c["meta"]["seed"] == 4 for c in characters)
    assert runner.invoke(main, args).stdout == result.stdout
    sheets = tmp_path / "sheets.jsonl"
    sheets.write_text(result.stdout)
    checked = runner.invoke(main, ["shape", "validate", str(sheets)])
    assert checked.exit_code == 0 and checked.stdout == ""


def test_validate_names_every_broken_rule(runner: CliRunner, tmp_path: Path) -> None:
    import random

    from aria.apps.shape import corpus

    character = corpus.random_character(random.Random(5))
    character.update(species="elf", age=20)
    character["stats"] = dict.fromkeys(character["stats"], 15)
    sheets = tmp_path / "bad.jsonl"
    sheets.write_text(json.dumps(character) + "\nnot json\n")
    result = runner.invoke(main, ["shape", "validate", str(sheets)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "line 1: age.species_range at age: elf age must be 100..750, not 20",
        "line 1: stats.point_buy_budget at stats: stats cost 54 points; the budget is 27",
        "line 2: not JSON: Expecting value",
    ]


def test_bad_arguments_are_named(runner: CliRunner) -> None:
    result = runner.invoke(main, ["shape", "generate", "--constraint", "species=dragon"])
    assert result.exit_code == 1
    assert "aria shape generate: constraint species='dragon' is impossible" in result.stderr
    result = runner.invoke(main, ["shape", "train", "--rewards", "validity,style", "--steps", "3"])
    assert result.exit_code == 1 and "unknown reward 'style'" in result.stderr
