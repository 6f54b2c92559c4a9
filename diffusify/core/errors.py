"""The few exceptions the engine raises, each mapped to one exit code by the CLI.

* :class:`RecipeError` (exit 2): the recipe or the command line is wrong; it carries every problem found.
* :class:`PipelineError` (exit 1): a run failed; it names the node, its type and the frame.
* :class:`Interrupted` (exit 130): the user stopped a run; outputs were finalised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diffusify.core.problems import Problem


def one_line(text: str, limit: int = 600) -> str:
    """``text`` as one line: line breaks and runs of spaces folded to one space, and cut at ``limit`` characters
    (a state-dict mismatch or an ffmpeg log can run to pages; the first part names the problem)."""
    folded = " ".join(str(text).split())
    return folded if len(folded) <= limit else folded[: limit - 1].rstrip() + "…"


class DiffusifyError(Exception):
    """Base class of every error the engine reports as one clean line."""

    exit_code = 1


class RecipeError(DiffusifyError):
    """The recipe (or an override) is invalid. ``problems`` lists every problem, sorted."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        super().__init__("\n".join(p.format() for p in errors) or "invalid recipe")


class UsageError(DiffusifyError):
    """A command-line mistake that is not about a recipe (a missing file, a bad option)."""

    exit_code = 2


class PipelineError(DiffusifyError):
    """A run failed. Names the node, its type and the frame when known."""

    exit_code = 1

    def __init__(self, message: str, *, node: str | None = None, node_type: str | None = None,
                 frame: int | None = None):
        self.node = node
        self.node_type = node_type
        self.frame = frame
        where = []
        if node:
            where.append(f"node '{node}'" + (f" ({node_type})" if node_type else ""))
        if frame is not None:
            where.append(f"frame {frame}")
        self.detail = one_line(message)
        super().__init__((" at ".join(where) + ": " if where else "") + self.detail)


class Interrupted(DiffusifyError):
    """The run was stopped by a signal; outputs hold every frame that reached them."""

    exit_code = 130
