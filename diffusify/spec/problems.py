"""Validation problems: where, what, and how to fix it."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Literal


@dataclass(frozen=True, order=True)
class Problem:
    """One validation finding.

    Attributes:
        file: the recipe file (or ``<command line>`` for overrides).
        line: 1-based line, 0 when unknown.
        col: 1-based column, 0 when unknown.
        path: dotted YAML path, e.g. ``nodes.up.with.tile``.
        message: what is wrong and what to do.
        severity: ``error`` or ``warning``.
    """

    file: str
    line: int
    col: int
    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def format(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        tag = "warning: " if self.severity == "warning" else ""
        path = f"{self.path}: " if self.path else ""
        return f"{where}: {tag}{path}{self.message}"

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "severity": self.severity,
            "message": self.message,
        }


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(name), sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Deduplicate and sort by file, position, then path."""
    return sorted(set(problems), key=lambda p: (p.file, p.line or 10**9, p.col, p.path, p.message))
