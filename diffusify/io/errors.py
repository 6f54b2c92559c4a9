"""Errors raised by the video I/O layer."""

from __future__ import annotations

from diffusify.core.errors import DiffusifyError


class MediaError(DiffusifyError):
    """A user-facing media problem: a missing or unreadable file, a refused overwrite, an encoder failure.

    The message is one actionable line naming the file; the CLI prints it as is, without a traceback.
    """
