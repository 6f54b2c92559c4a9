"""The library API: validate, plan, start and run recipes. The command line and the server are clients of it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

from diffusify.core.errors import RecipeError, UsageError
from diffusify.core.problems import Problem
from diffusify.graph.validate import Validated, validate_file, validate_text
from diffusify.processors.base import RunOptions, Segment
from diffusify.runtime.events import Hook

if TYPE_CHECKING:
    from diffusify.processors.registry import Registry
    from diffusify.runtime.executor import Executor
    from diffusify.runtime.handle import Run
    from diffusify.runtime.plan import Plan

RecipeSource = Union[str, "os.PathLike[str]", Mapping[str, Any], Validated]
"""A recipe: a file path, recipe text (YAML; anything with a line break), a mapping (a parsed YAML document)
or a :class:`Validated` recipe from :func:`check`."""


def _overrides(input: str | None, output: str | None, set: Mapping[str, str] | None) -> dict[str, str]:
    out = dict(set or {})
    if input is not None:
        out["input"] = input
    if output is not None:
        out["output"] = output
    return out


def _segment(segment: Segment | tuple[int, int | None] | None) -> Segment | None:
    if segment is None or isinstance(segment, Segment):
        return segment
    start, end = segment
    if start < 0 or (end is not None and end <= start):
        raise UsageError(f"segment {start}..{end}: needs 0 <= start < end")
    return Segment(start, end)


def check(recipe: RecipeSource, *, input: str | None = None, output: str | None = None,
          set: Mapping[str, str] | None = None, devices: Sequence[str] | None = None,
          max_frames: int | None = None, registry: Registry | None = None,
          segment: Segment | tuple[int, int | None] | None = None) -> Validated:
    """Validate a recipe with overrides applied. Never raises for a user mistake: see ``.problems``."""
    if isinstance(recipe, Validated):
        if input is not None or output is not None or set or devices or max_frames or segment is not None:
            raise UsageError("a checked recipe already has its overrides: pass input/output/set/devices/"
                             "max_frames/segment to check(), not here")
        return recipe
    kwargs: dict[str, Any] = {"overrides": _overrides(input, output, set),
                              "devices": list(devices) if devices else None, "max_frames": max_frames,
                              "registry": registry, "segment": _segment(segment)}
    if isinstance(recipe, Mapping):
        from io import StringIO

        from ruamel.yaml import YAML

        buf = StringIO()
        YAML(typ="rt").dump(dict(recipe), buf)
        return validate_text(buf.getvalue(), "<recipe>", **kwargs)
    text = os.fspath(recipe)
    if "\n" in text:
        return validate_text(text, "<recipe>", **kwargs)
    return validate_file(text, **kwargs)


def validate(paths: Iterable[str]) -> list[Problem]:
    """Every problem of every file, sorted (errors and warnings)."""
    problems: list[Problem] = []
    for path in paths:
        problems.extend(validate_file(path).problems)
    return problems


def plan(recipe: RecipeSource, *, input: str | None = None, output: str | None = None,
         set: Mapping[str, str] | None = None, devices: Sequence[str] | None = None, max_frames: int | None = None,
         overwrite: bool = False, registry: Registry | None = None,
         segment: Segment | tuple[int, int | None] | None = None,
         check_outputs: bool = True, strict: bool = False) -> tuple[Plan, Validated]:
    """Validate and plan a recipe. Raises :class:`RecipeError` (with every problem) when it is invalid, and
    :class:`UsageError` for what only shows when planning (a missing GPU, an existing output: with
    ``check_outputs=False`` those are listed in ``Plan.existing`` instead, for a dry run). ``strict``: warnings
    are errors too."""
    from diffusify.runtime.plan import build_plan

    seg = _segment(segment)
    v = check(recipe, input=input, output=output, set=set, devices=devices, max_frames=max_frames,
              registry=registry, segment=seg)
    if not v.ok:
        raise RecipeError(v.problems)
    if strict and v.warnings:
        raise RecipeError([dataclasses.replace(p, severity="error") for p in v.problems])
    return build_plan(v, cli_devices=list(devices) if devices else None,
                      options=RunOptions(overwrite=overwrite, segment=seg), check_outputs=check_outputs), v


def start(recipe: RecipeSource, *, input: str | None = None, output: str | None = None,
          set: Mapping[str, str] | None = None, devices: Sequence[str] | None = None,
          max_frames: int | None = None, overwrite: bool = False, hooks: Iterable[Hook] = (),
          registry: Registry | None = None, segment: Segment | tuple[int, int | None] | None = None,
          executor: Executor | None = None, segments: int | None = None, workers: int = 1, resume: bool = False,
          restart: bool = False, keep_segments: bool = False, backend: str = "local",
          address: str | None = None) -> Run:
    """Validate and plan a recipe, then start running it in the background.

    Args:
        recipe: a recipe file, recipe text, a mapping, or a recipe from :func:`check`.
        input, output: set the recipe's ``input``/``output`` params (like ``-i``/``-o``).
        set: other param overrides, values as strings typed by each param's default.
        devices: devices for nodes without their own (``auto``, ``cpu``, ``cuda:0``...).
        max_frames: read at most this many frames from each source.
        overwrite: replace existing outputs.
        hooks: callables receiving events as keyword arguments (see :mod:`diffusify.runtime.events`).
        registry: the processor registry (default: built-ins and installed plugins).
        segment: ``(start, end)``: run only that frame range of the sources (see :class:`Segment`).
        executor: how to run the plan (default: :class:`~diffusify.runtime.executor.LocalExecutor`).
        segments: split the run into this many segments (frame ranges of the sources with the context temporal
            nodes need), each written to a file of its own and recorded in a journal beside the first output
            (``OUTPUT.parts``), then joined without re-encoding (see :mod:`diffusify.runtime.segments`).
        workers: segments run side by side (each with its own engine; ``devices`` are dealt out to them in turn).
        resume: continue the journal of an earlier segmented run of the same recipe, model and sources.
        restart: delete such a journal and start over.
        keep_segments: keep the journal folder after the join.
        backend: where segments run: ``local`` (threads of this process) or ``ray`` (one Ray task each).
        address: the Ray cluster (``auto``, ``ray://host:10001``); None starts a local one.

    Returns:
        A :class:`~diffusify.runtime.handle.Run`: ``events()``, ``cancel()``, ``result()``.

    Raises:
        RecipeError: the recipe or an override is invalid (exit code 2); raised here, before anything runs.
        UsageError: something outside the recipe is wrong (an existing output, a missing GPU; exit code 2).
    """
    p, v = plan(recipe, input=input, output=output, set=set, devices=devices, max_frames=max_frames,
                overwrite=overwrite, registry=registry, segment=segment)
    if segments is not None or resume or restart or workers > 1 or backend != "local":
        if executor is not None or segment is not None:
            raise UsageError("segments, workers, resume and restart make their own executor: leave executor and "
                             "segment out")
        if isinstance(recipe, Validated):
            raise UsageError("a segmented run plans each segment again: pass the recipe itself, not a checked one")
        executor = segmented_executor(recipe, input=input, output=output, set=set, devices=devices,
                                      max_frames=max_frames, registry=registry, segments=segments,
                                      workers=workers, resume=resume, restart=restart, keep_segments=keep_segments,
                                      backend=backend, address=address)
    return launch(p, warnings=v.warnings, hooks=hooks, executor=executor)


def segmented_executor(recipe: RecipeSource, *, input: str | None = None, output: str | None = None,
                       set: Mapping[str, str] | None = None, devices: Sequence[str] | None = None,
                       max_frames: int | None = None, registry: Registry | None = None, segments: int | None = None,
                       workers: int = 1, resume: bool = False, restart: bool = False,
                       keep_segments: bool = False, backend: str = "local", address: str | None = None) -> Executor:
    """The executor of a segmented run of ``recipe`` with these overrides (see :func:`start`'s ``segments``):
    it plans each segment again from the recipe, so pass the same recipe and overrides as for its plan."""
    from diffusify.runtime.segments import SegmentedExecutor

    def replan(seg: Segment, sets: dict[str, str], devs: list[str] | None) -> Plan:
        return plan(recipe, input=input, output=output, set={**(set or {}), **sets}, devices=devs or devices,
                    max_frames=max_frames, overwrite=True, registry=registry, segment=seg)[0]

    common = {"resume": resume, "restart": restart, "keep_segments": keep_segments}
    if backend == "ray":
        from diffusify.runtime.ray_executor import RayExecutor, connect

        connect(address)  # a missing Ray, or a cluster that cannot be reached, is said before anything runs
        return RayExecutor(replan, segments=segments or (None if resume else 8), address=address, **common)
    if backend != "local":
        raise UsageError(f"unknown executor '{backend}' (local or ray)")
    explicit = [d for d in (devices or []) if d not in ("auto",)]
    return SegmentedExecutor(replan, segments=segments, workers=workers,
                             devices=explicit or None, **common)


def launch(plan: Plan, *, warnings: Iterable[Problem] = (), hooks: Iterable[Hook] = (),
           executor: Executor | None = None) -> Run:
    """Start running a plan from :func:`plan` (``warnings``: the recipe's, sent as the first events)."""
    from diffusify.runtime.executor import LocalExecutor
    from diffusify.runtime.handle import Run

    chosen = executor or LocalExecutor()
    return Run(lambda run_hooks: chosen.prepare(plan, hooks=run_hooks), hooks=hooks, warnings=warnings,
               name=plan.recipe.name)


def run(recipe: RecipeSource, **options: Any) -> dict[str, Any]:
    """Run a recipe to the end and return its summary: ``start(recipe, **options).result()``.

    Raises:
        RecipeError: the recipe or an override is invalid (exit code 2).
        UsageError: something outside the recipe is wrong (an existing output, a missing GPU; exit code 2).
        PipelineError: a node failed (exit code 1); outputs hold what was done.
        Interrupted: the run was cancelled (exit code 130); outputs hold every frame that reached them.
    """
    return start(recipe, **options).result()
