"""Validation problems: where, what, and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from diffusify.core.errors import one_line


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
        return one_line(f"{where}: {tag}{path}{self.message}", limit=2000)

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "severity": self.severity,
            "message": self.message,
        }


def _edits(a: str, b: str) -> int:
    """Edit distance counting a swap of two neighbours as one edit (the commonest typo: libx246)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


SUGGEST_MAX_LEN = 64
"""Names longer than this get no suggestion: a typo is a short word's mistake, and comparing long strings costs
the product of their lengths."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string.

    Bounded work: only names up to :data:`SUGGEST_MAX_LEN` characters are compared, and only with candidates of a
    length that can reach the similarity cutoff, so a huge recipe or a 50,000-character id cannot make
    validation slow."""
    name = str(name)
    n = len(name)
    if not n or n > SUGGEST_MAX_LEN:
        return ""
    # difflib's ratio 2M/(n+m) reaches the 0.6 cutoff only when 3n/7 <= m <= 7n/3: others cannot match
    plausible = sorted({c for c in map(str, choices) if 3 * n <= 7 * len(c) <= 49 * n // 3 + 7
                        and len(c) <= SUGGEST_MAX_LEN})
    close = difflib.get_close_matches(name, plausible, n=3, cutoff=0.6)
    if not close:
        return ""
    best = min(close, key=lambda c: _edits(name, c))  # min keeps difflib's order among equals
    return f" (did you mean '{best}'?)"


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Deduplicate and sort by file, position, then path."""
    return sorted(set(problems), key=lambda p: (p.file, p.line or 10**9, p.col, p.path, p.message))
