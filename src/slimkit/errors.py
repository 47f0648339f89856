"""Exceptions that speak to the user: what went wrong, where, and how to fix it."""

from __future__ import annotations


class SlimkitError(Exception):
    """Base of every error slimkit raises on purpose.

    ``hint`` is a short sentence on how to fix the problem; the CLI prints it under the message.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class ConfigError(SlimkitError, ValueError):
    """A config, recipe field or argument is invalid."""


class DataError(SlimkitError):
    """A dataset is missing, corrupted or has the wrong shape."""


class ModelError(SlimkitError):
    """A model cannot be built, loaded or changed as asked."""


class ExportError(ModelError):
    """A model could not be exported; the message names the op or layer that failed."""


class ParityError(ExportError):
    """An exported artifact disagrees with its reference beyond the tolerance."""


class CheckpointError(SlimkitError):
    """A checkpoint or saved artifact is missing, corrupted or incompatible."""


class TrainingError(SlimkitError):
    """Training cannot go on, for example because the loss became NaN."""
