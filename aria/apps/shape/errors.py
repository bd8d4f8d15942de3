"""aria_shape's branch of the error tree."""

from __future__ import annotations

from aria.errors import AriaError


class ShapeError(AriaError):
    """Base class of aria_shape's environmental failures."""


class ModelUnavailable(ShapeError):
    """The configured model or tokenizer cannot be loaded (missing directory, no hub access, bad files)."""


class GrammarUnavailable(ShapeError):
    """Constrained decoding was asked for but its library (xgrammar) is not installed."""


class GenerationFailed(ShapeError):
    """No valid character came out within the allowed attempts; the message lists the last problems."""


class TrainingFailed(ShapeError):
    """A training run could not start, continue or finish; the message names the run and the cause."""
