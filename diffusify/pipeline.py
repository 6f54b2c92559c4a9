"""The library API: validate, plan and run recipes. The CLI is a thin layer over these functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from diffusify.errors import RecipeError
from diffusify.runtime.events import Hook
from diffusify.spec.problems import Problem
from diffusify.spec.validate import Validated, validate_file

if TYPE_CHECKING:
    from diffusify.processors.registry import Registry
    from diffusify.runtime.plan import Plan


def _overrides(input: str | None, output: str | None, set: Mapping[str, str] | None) -> dict[str, str]:
    out = dict(set or {})
    if input is not None:
        out["input"] = input
    if output is not None:
        out["output"] = output
    return out


def check(path: str, *, input: str | None = None, output: str | None = None, set: Mapping[str, str] | None = None,
          devices: Sequence[str] | None = None, max_frames: int | None = None,
          registry: Registry | None = None) -> Validated:
    """Validate a recipe file with overrides applied. Never raises for a user mistake: see ``.problems``."""
    return validate_file(path, overrides=_overrides(input, output, set), devices=list(devices) if devices else None,
                         max_frames=max_frames, registry=registry)


def validate(paths: Iterable[str]) -> list[Problem]:
    """Every problem of every file, sorted (errors and warnings)."""
    problems: list[Problem] = []
    for path in paths:
        problems.extend(validate_file(path).problems)
    return problems


def plan(path: str, *, input: str | None = None, output: str | None = None, set: Mapping[str, str] | None = None,
         devices: Sequence[str] | None = None, max_frames: int | None = None, overwrite: bool = False,
         registry: Registry | None = None) -> tuple[Plan, Validated]:
    """Validate and plan a recipe. Raises :class:`RecipeError` (with every problem) when it is invalid."""
    from diffusify.runtime.plan import build_plan

    v = check(path, input=input, output=output, set=set, devices=devices, max_frames=max_frames, registry=registry)
    if not v.ok:
        raise RecipeError(v.problems)
    return build_plan(v, cli_devices=list(devices) if devices else None, overwrite=overwrite, registry=registry), v


def run(path: str, *, input: str | None = None, output: str | None = None, set: Mapping[str, str] | None = None,
        devices: Sequence[str] | None = None, max_frames: int | None = None, overwrite: bool = False,
        hooks: Iterable[Hook] = (), handle_signals: bool = True, registry: Registry | None = None) -> dict[str, Any]:
    """Run a recipe to the end and return its summary.

    Args:
        path: the recipe file.
        input, output: set the recipe's ``input``/``output`` params (like ``-i``/``-o``).
        set: other param overrides, values as strings typed by each param's default.
        devices: devices for nodes without their own (``auto``, ``cpu``, ``cuda:0``...).
        max_frames: read at most this many frames from each source.
        overwrite: replace existing outputs.
        hooks: callables receiving events as keyword arguments (see :mod:`diffusify.runtime.events`).
        handle_signals: install SIGINT/SIGTERM handlers (main thread only) for a clean stop.
        registry: the processor registry (default: built-ins and installed plugins).

    Raises:
        RecipeError: the recipe or an override is invalid (exit code 2).
        UsageError: something outside the recipe is wrong (an existing output, a missing GPU; exit code 2).
        PipelineError: a node failed (exit code 1); outputs hold what was done.
        Interrupted: stopped by a signal (exit code 130); outputs hold every frame that reached them.
    """
    from diffusify.runtime.engine import Engine

    p, v = plan(path, input=input, output=output, set=set, devices=devices, max_frames=max_frames,
                overwrite=overwrite, registry=registry)
    engine = Engine(p, hooks=hooks, handle_signals=handle_signals)
    for w in v.warnings:
        engine.emit("warning", message=w.format(), node=None, problem=w.to_json())
    return engine.run()
