"""Validation of a recipe from end to end: the language (``diffusify.recipe``), then the graph
(``diffusify.graph.build``), every problem at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diffusify.core.problems import Problem, sort_problems
from diffusify.core.stream import StreamInfo
from diffusify.graph.build import Graph, build_graph
from diffusify.processors.base import Segment
from diffusify.recipe.model import Recipe
from diffusify.recipe.validate import Parsed, parse_file, parse_text


@dataclass
class Validated:
    """The outcome of validation.

    Attributes:
        recipe: the resolved recipe, None when an error prevents building it.
        problems: every problem found (errors and warnings), sorted.
        graph: the typed graph (None when the recipe could not be read or its graph has a cycle).
    """

    recipe: Recipe | None
    problems: list[Problem]
    graph: Graph | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def order(self) -> list[str]:
        """Node ids in topological order (empty when the graph has a cycle)."""
        return self.graph.order if self.graph else []

    @property
    def streams(self) -> dict[str, StreamInfo | None]:
        return {n.id: n.output for n in self.graph} if self.graph else {}

    @property
    def input_streams(self) -> dict[str, dict[str, StreamInfo]]:
        return {n.id: n.input_streams for n in self.graph} if self.graph else {}


def _finish(parsed: Parsed, check_streams: bool, segment: Segment | None) -> Validated:
    graph = build_graph(parsed, check_streams=check_streams, segment=segment)
    return Validated(parsed.recipe, sort_problems(parsed.reporter.problems), graph)


def validate_text(text: str, file: str = "<recipe>", *, check_streams: bool = True, segment: Segment | None = None,
                  **kwargs: Any) -> Validated:
    """Validate a recipe given as text. Keyword arguments: ``registry``, ``overrides`` (param -> text),
    ``devices``, ``max_frames`` (see :class:`diffusify.recipe.validate.RecipeValidator`)."""
    return _finish(parse_text(text, file, **kwargs), check_streams, segment)


def validate_file(path: str, *, check_streams: bool = True, segment: Segment | None = None,
                  **kwargs: Any) -> Validated:
    """Validate a recipe file; an unreadable file is reported as a problem, not raised."""
    return _finish(parse_file(path, **kwargs), check_streams, segment)
