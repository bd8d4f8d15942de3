"""The synchronous heart of aria_shape: where models live, loading them, and the generator.

:class:`ShapeService` is what the app's API (and the CLI, without a running node) drives from a
worker thread. It resolves ``shape.model``: a directory or hub id as given, or, when empty, the
project's default model, trained once into ``<data_dir>/shape/models/default-<recipe hash>``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from aria.apps.shape.schema import schema_digest
from aria.apps.shape.settings import ShapeSection

if TYPE_CHECKING:  # torch and transformers load on first use, not when the node boots
    from aria.apps.shape.generator import Generator

#: Written last into a saved model's directory (which is then renamed into place).
RECIPE_FILE = "aria_recipe.json"


def is_complete(model_dir: Path) -> bool:
    """True if ``model_dir`` holds a finished model (the recipe file is written last, then renamed)."""
    return (model_dir / RECIPE_FILE).exists() and any(model_dir.glob("*.safetensors"))


@dataclass(frozen=True)
class BaseRecipe:
    """Everything that determines the default model: same recipe, same weights (on the same device)."""

    seed: int = 0
    characters: int = 2000
    vocab_size: int = 2048
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 384
    block_size: int = 256
    batch_size: int = 8
    steps: int = 600
    learning_rate: float = 3e-3
    warmup_steps: int = 20


def recipe_from(settings: ShapeSection) -> BaseRecipe:
    """The default model's recipe as configured (seed, corpus size, steps)."""
    return BaseRecipe(seed=settings.base_seed, characters=settings.base_characters, steps=settings.base_steps)


def recipe_dir(models_dir: Path, recipe: BaseRecipe) -> Path:
    """Where the default model of ``recipe`` lives: a name that changes with the recipe or the schema."""
    identity = {**asdict(recipe), "schema": schema_digest()}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    return models_dir / f"default-{digest}"


class ShapeService:
    """Models, the generator and paths for one node (or one CLI run). Thread-safe where it says so.

    Args:
        settings: The ``[shape]`` section.
        data_dir: aria_shape's own data directory (``<node data dir>/shape``).
    """

    def __init__(self, settings: ShapeSection, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.models_dir = data_dir / "models"
        self.runs_dir = data_dir / "runs"
        self._log = structlog.get_logger("aria_shape")
        self._lock = threading.Lock()
        self._generator: Generator | None = None

    def default_model_dir(self) -> Path:
        return recipe_dir(self.models_dir, recipe_from(self.settings))

    def ensure_default_model(self, progress: Callable[[int, int, float], None] | None = None) -> Path:
        """The default model's directory, training it first if it is not there (blocking; minutes).

        Two processes asking at once train it once: the second waits on a file lock, then loads.
        """
        from aria.apps.shape.model import exclusive, train_base

        target = self.default_model_dir()
        if is_complete(target):
            return target
        with exclusive(self.models_dir / ".train-base.lock"):
            if is_complete(target):
                return target
            recipe = recipe_from(self.settings)
            self._log.warning(
                "training the default character model once; later runs load it from disk",
                directory=str(target),
                steps=recipe.steps,
                characters=recipe.characters,
            )
            summary = train_base(target, recipe, threads=self.settings.torch_threads, progress=progress)
            self._log.info("default character model trained", directory=str(target), **_brief(summary))
        return target

    def model_ready(self) -> bool:
        """True if the model can be loaded without training it first (cheap: no torch import).

        A configured ``shape.model`` counts as ready (loading it may still fail); the default model
        is ready once trained.
        """
        if self.settings.model or self._generator is not None:
            return True
        return is_complete(self.default_model_dir())

    def model_name(self) -> str:
        """``shape.model`` as configured, or the default model's directory (trained if needed)."""
        return self.settings.model or str(self.ensure_default_model())

    def generator(self) -> Generator:
        """The generator, loading the model on first use (blocking; thread-safe)."""
        from aria.apps.shape.generator import Generator
        from aria.apps.shape.model import load_model, select_device

        with self._lock:
            if self._generator is None:
                device, dtype = select_device(self.settings.device, self.settings.torch_threads)
                model, tokenizer, version = load_model(self.model_name(), device, dtype)
                self._generator = Generator(model, tokenizer, version, self.settings)
                self._log.info("character model loaded", model=version, device=str(device))
            return self._generator

    def current_generator(self) -> Generator | None:
        """The generator if the model is loaded, else None (never loads)."""
        return self._generator

    def loaded_model(self) -> str | None:
        """The version of the loaded model, or None before first use."""
        return self._generator.version if self._generator is not None else None


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: summary[key] for key in ("final_loss", "seconds", "parameters")}
