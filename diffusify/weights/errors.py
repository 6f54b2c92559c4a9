"""Errors raised by the model-weights package."""

from __future__ import annotations

from diffusify.core.errors import DiffusifyError


class WeightsError(DiffusifyError):
    """A model file, manifest entry, conversion or download that cannot be used.

    The message is a single line that names the file or model concerned and says what to do about it.
    """
