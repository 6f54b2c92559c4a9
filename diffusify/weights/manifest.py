"""The model manifest: which weights the engine knows, where they come from and how to check them.

The manifest is a YAML file (``weights/models.yaml`` in the source tree)::

    version: 1
    models:
      - name: realesr-animevideov3-x2
        file: realesr-animevideov3-x2.safetensors
        url: null                      # bundled: the file sits beside the manifest
        bundled: true
        sha256: 0123...                # 64 hex digits; null only for downloads nobody has pinned yet
        architecture: Compact          # spandrel architecture id
        scale: 2                       # output size / input size, post-scale included
        purpose: upscale
        licence: BSD-3-Clause          # SPDX identifier
        source: https://...            # where the weights were published
        notes: ...

Set ``DIFFUSIFY_WEIGHTS_DIR`` to use a manifest (and bundled files) from another folder.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from diffusify.weights.errors import WeightsError

__all__ = [
    "Manifest",
    "ModelEntry",
    "default_cache_dir",
    "find",
    "list_models",
    "load_manifest",
    "local_path",
    "resolve_file",
    "weights_dir",
]

MANIFEST_NAME = "models.yaml"
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")
_SHA_RE = re.compile(r"[0-9a-f]{64}\Z")

Purpose = Literal["upscale", "denoise", "restore", "dejpeg", "deblur", "interpolate", "inpaint", "face", "segment"]


class ModelEntry(BaseModel):
    """One model of the manifest.

    Attributes:
        name: unique lower-case identifier used by pipelines (``realesr-animevideov3-x2``).
        file: file name of the weights, relative to the weights folder (bundled) or the download folder.
        url: HTTP(S) download location; None for bundled files.
        bundled: the file ships beside the manifest.
        sha256: lower-case hex SHA-256 of the file; None only for downloads nobody has pinned yet.
        size: file size in bytes, when known.
        architecture: spandrel architecture id (``Compact``, ``ESRGAN``, ``SPAN``...).
        scale: output size / input size, post-scale included.
        purpose: what the model is for.
        licence: SPDX licence identifier of the weights.
        source: where the weights were published (URL or package reference), for provenance.
        notes: free text.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    file: str
    url: str | None = None
    bundled: bool = False
    sha256: str | None = None
    size: int | None = Field(default=None, ge=0)
    architecture: str = Field(min_length=1)
    scale: int = Field(ge=1, le=16)
    purpose: Purpose
    licence: str = Field(min_length=1)
    source: str = Field(min_length=1)
    notes: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("use lower-case letters, digits, '.', '_' and '-' only")
        return value

    @field_validator("file")
    @classmethod
    def _check_file(cls, value: str) -> str:
        path = Path(value)
        if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
            raise ValueError("must be a relative path inside the weights folder")
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("sha256")
    @classmethod
    def _check_sha(cls, value: str | None) -> str | None:
        if value is not None and not _SHA_RE.match(value):
            raise ValueError("must be 64 lower-case hex digits")
        return value

    @model_validator(mode="after")
    def _check_origin(self) -> ModelEntry:
        if self.bundled and self.url is not None:
            raise ValueError("a bundled model has no url")
        if not self.bundled and self.url is None:
            raise ValueError("needs a url, or bundled: true")
        if self.bundled and self.sha256 is None:
            raise ValueError("a bundled model needs its sha256")
        return self


class Manifest(BaseModel):
    """The whole manifest file.

    Attributes:
        version: format version, 1.
        models: the entries, names unique.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    models: list[ModelEntry]

    @model_validator(mode="after")
    def _unique(self) -> Manifest:
        seen: set[str] = set()
        for entry in self.models:
            if entry.name in seen:
                raise ValueError(f"model name {entry.name!r} appears twice")
            seen.add(entry.name)
        return self


def weights_dir() -> Path:
    """The folder holding the manifest and the bundled weights.

    ``DIFFUSIFY_WEIGHTS_DIR`` when set, else ``weights/`` at the root of the source tree.
    """
    env = os.environ.get("DIFFUSIFY_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "weights"


def default_cache_dir() -> Path:
    """Where downloaded weights go: ``DIFFUSIFY_CACHE_DIR``, else ``$XDG_CACHE_HOME/diffusify/weights``."""
    env = os.environ.get("DIFFUSIFY_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "diffusify" / "weights"


def _describe(error: ValidationError, data: object) -> str:
    """One line out of a pydantic error: the first problem, located by model name where possible."""
    first = error.errors()[0]
    loc = list(first.get("loc", ()))
    where = ""
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        index = loc[1]
        name = None
        if isinstance(data, dict):
            models = data.get("models")
            if isinstance(models, list) and index < len(models) and isinstance(models[index], dict):
                name = models[index].get("name")
        where = f"models[{index}]" + (f" ({name!r})" if name else "")
        rest = [str(p) for p in loc[2:]]
        if rest:
            where += "." + ".".join(rest)
    else:
        where = ".".join(str(p) for p in loc) or "top level"
    message = first.get("msg", "invalid").replace("Value error, ", "")
    if first.get("type") == "extra_forbidden":
        message = "unknown field"
    more = error.error_count() - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where}: {message}{suffix}"


def parse_manifest(text: str, source: str = MANIFEST_NAME) -> Manifest:
    """Parse and validate manifest YAML text.

    Args:
        text: the YAML document.
        source: name used in messages.

    Returns:
        The validated manifest.

    Raises:
        WeightsError: malformed YAML or an invalid entry (one line naming the entry and field).
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise WeightsError(f"{source}:{line} invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{source}: expected a mapping with 'version' and 'models'")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise WeightsError(f"{source}: {_describe(exc, data)}") from None


_CACHE: dict[Path, tuple[float, Manifest]] = {}


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Load and validate a manifest file (cached until the file changes).

    Args:
        path: the YAML file; default ``models.yaml`` in :func:`weights_dir`.

    Returns:
        The validated manifest.

    Raises:
        WeightsError: the file is missing, malformed or invalid.
    """
    path = Path(path) if path is not None else weights_dir() / MANIFEST_NAME
    try:
        mtime = path.stat().st_mtime
        cached = _CACHE.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WeightsError(f"cannot read model manifest {path}: {exc.strerror or exc}") from None
    manifest = parse_manifest(text, str(path))
    _CACHE[path] = (mtime, manifest)
    return manifest


def list_models(path: str | Path | None = None, *, purpose: str | None = None) -> list[ModelEntry]:
    """The manifest's models, in file order.

    Args:
        path: the manifest file (default: the bundled one).
        purpose: keep only models with this purpose (``upscale``, ``denoise``...).

    Returns:
        The entries.
    """
    models = load_manifest(path).models
    return [m for m in models if purpose is None or m.purpose == purpose]


def find(name: str, path: str | Path | None = None) -> ModelEntry:
    """The manifest entry called ``name``.

    Args:
        name: the model name (case-insensitive).
        path: the manifest file (default: the bundled one).

    Returns:
        The entry.

    Raises:
        WeightsError: no such model; the message suggests the closest names.
    """
    models = load_manifest(path).models
    wanted = name.strip().lower()
    for entry in models:
        if entry.name == wanted:
            return entry
    names = [m.name for m in models]
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.5)
    if not close:
        close = [n for n in names if wanted and (wanted in n or n in wanted)][:3]
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise WeightsError(f"unknown model {name!r}{hint} (known: {', '.join(names) or 'none'})")


def local_path(entry: ModelEntry, *, search: Sequence[str | Path] | None = None) -> Path | None:
    """Where the entry's file already is on this machine, or None.

    Bundled entries are looked up in :func:`weights_dir`, downloads in :func:`default_cache_dir`; the
    file is only located here, not verified (see :func:`diffusify.weights.pull.verify`).

    Args:
        entry: the model.
        search: folders to look in instead of the defaults.

    Returns:
        The path of an existing file, or None.
    """
    folders = [Path(p) for p in search] if search is not None else [weights_dir(), default_cache_dir()]
    for folder in folders:
        candidate = folder / entry.file
        if candidate.is_file():
            return candidate
    return None


def resolve_file(name: str, *, manifest: str | Path | None = None) -> str | None:
    """The local file of the manifest model called ``name``, or None.

    None when the name is not in the manifest or its file is neither bundled nor downloaded yet (use
    :func:`find` for an error with suggestions, and :func:`diffusify.weights.pull.pull` to download).

    Args:
        name: a model name from the manifest.
        manifest: the manifest file (default: the bundled one).

    Returns:
        The file's path as a string, or None.
    """
    try:
        entry = find(name, manifest)
    except WeightsError:
        return None
    path = local_path(entry)
    return str(path) if path is not None else None
