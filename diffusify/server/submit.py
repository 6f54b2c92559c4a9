"""From a request body to a job a worker can run: bounds, paths under the roots, validation and the plan.

Nothing reaches a worker that has not been validated and planned here; the worker runs exactly the recipe, the
overrides and the paths checked. Relative paths of an inline recipe start at the first root (the server's
current folder), those of a recipe file at its folder; ``input``/``output`` start at the first root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from diffusify.api import check as check_recipe
from diffusify.api import plan as plan_recipe
from diffusify.core.errors import RecipeError, UsageError
from diffusify.core.problems import Problem
from diffusify.graph.validate import Validated, validate_file, validate_text
from diffusify.processors.base import path_fields
from diffusify.server.config import ServerConfig
from diffusify.server.security import PathRefused, check_inside, resolve_path


class JobRequest(BaseModel):
    """The body of ``POST /v1/jobs`` and ``POST /v1/validate``: a recipe (inline YAML or a file under a root)
    and what the command line's options would set."""

    model_config = ConfigDict(extra="forbid")

    recipe: str | None = Field(None, description="The recipe as YAML text.")
    recipe_path: str | None = Field(None, description="A recipe file under a --root folder (instead of recipe).")
    set: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Param overrides, as --set name=value (NODE.PARAM for a node's).")
    input: str | None = Field(None, description="The recipe's 'input' param (a file under a root), as -i.")
    output: str | None = Field(None, description="The recipe's 'output' param (a file under a root), as -o.")
    devices: list[str] | None = Field(None, description="Devices for nodes without their own, as --device.")
    max_frames: int | None = Field(None, ge=1, description="Read at most this many frames per source.")
    overwrite: bool = Field(False, description="Replace existing outputs.")
    preview: str | None = Field(None, description="The node whose frames preview.jpg shows (default: what the "
                                "first output writes).")
    idempotency_key: str | None = Field(None, max_length=200, description="Submitting the same key again returns "
                                        "the job it made (also as the Idempotency-Key header).")
    webhook: str | None = Field(None, max_length=2000, description="An http(s) URL sent the job as JSON (POST) "
                                "when it ends.")

    @model_validator(mode="after")
    def _one_recipe(self) -> JobRequest:
        if (self.recipe is None) == (self.recipe_path is None):
            raise ValueError("give exactly one of 'recipe' (YAML text) and 'recipe_path' (a file under a root)")
        if self.webhook is not None:
            parts = urlsplit(self.webhook)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("webhook must be an http:// or https:// URL")
        return self


class Invalid(Exception):
    """The recipe or an override is invalid (HTTP 422); ``problems`` as ``Problem.to_json`` dicts."""

    def __init__(self, problems: list[dict[str, Any]]):
        super().__init__("; ".join(str(p.get("message")) for p in problems))
        self.problems = problems


class TooLarge(Exception):
    """The recipe is over the size bound (HTTP 413)."""


@dataclass
class Prepared:
    """A checked job: what the worker runs (``spec``) and what the scheduler needs to know about it."""

    spec: dict[str, Any]
    name: str
    devices: list[str]
    outputs: list[str]
    warnings: list[Problem] = field(default_factory=list)


def _usage_problem(message: str) -> dict[str, Any]:
    return {"file": "<request>", "line": 0, "col": 0, "path": "", "severity": "error", "message": message}


def _source(req: JobRequest, config: ServerConfig) -> tuple[str, str, bool]:
    """``(recipe text or file, folder its relative paths start at, is_file)``, after the path and size checks."""
    if req.recipe_path is not None:
        path = resolve_path(req.recipe_path, config.roots, "recipe_path")
        if not os.path.isfile(path):
            raise Invalid([_usage_problem(f"recipe_path {req.recipe_path}: no such file")])
        if os.path.getsize(path) > config.max_recipe:
            raise TooLarge(f"recipe_path {req.recipe_path}: over {config.max_recipe} bytes")
        return path, os.path.dirname(path), True
    text = req.recipe or ""
    if len(text.encode()) > config.max_recipe:
        raise TooLarge(f"the recipe is over {config.max_recipe} bytes")
    # api.check reads text without a line break as a file name: an inline recipe is never a path
    return (text if "\n" in text else text + "\n"), config.roots[0], False


def _overrides(req: JobRequest, config: ServerConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"set": {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in req.set.items()}}
    for key in ("input", "output"):
        value = getattr(req, key)
        out[key] = None if value is None else resolve_path(value, config.roots, key)
    out["devices"] = list(req.devices) if req.devices else None
    out["max_frames"] = req.max_frames
    return out


def _structure(source: str, is_file: bool, o: dict[str, Any]) -> Validated:
    """The recipe with overrides applied and paths resolved, without opening any media (so that a path outside
    the roots is refused before anything reads it)."""
    overrides = dict(o["set"])
    for key in ("input", "output"):
        if o[key] is not None:
            overrides[key] = o[key]
    kwargs: dict[str, Any] = {"overrides": overrides, "devices": o["devices"], "max_frames": o["max_frames"],
                              "check_streams": False}
    return validate_file(source, **kwargs) if is_file else validate_text(source, "<recipe>", **kwargs)


def files_of(v: Validated) -> tuple[list[str], list[str]]:
    """Every file the recipe's nodes would read and write (model files included)."""
    reads: list[str] = []
    writes: list[str] = []
    for n in v.graph or []:
        r, w = n.cls.paths(n.params)
        reads += [*r, *n.cls.input_files(n.params)]
        writes += w
        for name in path_fields(type(n.params)):
            value = getattr(n.params, name, None)
            if isinstance(value, str) and os.path.isabs(value) and value not in r and value not in w:
                reads.append(value)
    return list(dict.fromkeys(reads)), list(dict.fromkeys(writes))


def _check_files(v: Validated, config: ServerConfig) -> None:
    reads, writes = files_of(v)
    for p in reads:
        check_inside(p, config.roots, "the recipe reads")
    assert config.state_dir is not None
    for p in writes:
        check_inside(p, config.roots, "the recipe writes")
        if os.path.commonpath([os.path.realpath(p), config.state_dir]) == config.state_dir:
            raise PathRefused(f"the recipe writes {p}: inside the server's own state folder")


def check_request(req: JobRequest, config: ServerConfig) -> list[Problem]:
    """Every problem of the request's recipe with its overrides (``POST /v1/validate``).

    Raises:
        PathRefused, TooLarge: as :func:`prepare`.
    """
    source, _, is_file = _source(req, config)
    o = _overrides(req, config)
    structure = _structure(source, is_file, o)
    _check_files(structure, config)
    return check_recipe(source, input=o["input"], output=o["output"], set=o["set"], devices=o["devices"],
                     max_frames=o["max_frames"]).problems


def prepare(req: JobRequest, config: ServerConfig) -> Prepared:
    """Check a job request and plan it.

    Raises:
        PathRefused: a path lies outside the roots or is a special file (403).
        TooLarge: the recipe is over the bound (413).
        Invalid: the recipe or an override is invalid, or planning failed (an existing output, a missing GPU;
            422).
    """
    source, cwd, is_file = _source(req, config)
    o = _overrides(req, config)
    structure = _structure(source, is_file, o)
    _check_files(structure, config)
    try:
        plan, v = plan_recipe(source, input=o["input"], output=o["output"], set=o["set"], devices=o["devices"],
                           max_frames=o["max_frames"], overwrite=req.overwrite)
    except RecipeError as e:
        raise Invalid([p.to_json() for p in e.problems]) from e
    except UsageError as e:
        raise Invalid([_usage_problem(str(e))]) from e
    # a CPU is shared by every job; a GPU is the job's alone while it runs
    devices = sorted({d for n in plan.nodes.values() for d in n.devices if d != "cpu"})
    outputs = [p for n in plan.nodes.values() for p in n.cls.paths(n.params)[1]]
    sinks = [plan.nodes[i] for i in plan.order if plan.nodes[i].cls.is_sink]
    preview = req.preview
    if preview is None:
        preview = next((ref for s in sinks for ref in s.inputs.values()), None)
    elif preview not in plan.nodes or plan.nodes[preview].cls.is_sink:
        raise Invalid([_usage_problem(f"preview: no node '{preview}' that makes frames "
                                      f"(nodes: {', '.join(i for i in plan.order if not plan.nodes[i].cls.is_sink)})")])
    spec = {"source": source, "is_file": is_file, "cwd": cwd, "input": o["input"], "output": o["output"],
            "set": o["set"], "devices": o["devices"], "max_frames": o["max_frames"], "overwrite": req.overwrite,
            "preview": preview}
    return Prepared(spec=spec, name=plan.recipe.name or "", devices=devices, outputs=outputs, warnings=v.warnings)
