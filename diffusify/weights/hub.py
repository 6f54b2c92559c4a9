"""Hub models: diffusers pipelines known by name (``weights/hub.yaml``), found in and pulled into huggingface_hub's
cache.

A Hub entry names a repository and a revision rather than a file::

    version: 1
    models:
      - name: wan2.1-t2v-1.3b
        repo: Wan-AI/Wan2.1-T2V-1.3B-Diffusers
        revision: main                  # a branch, tag or commit; pin a commit for reproducible runs
        pipeline: WanPipeline
        purpose: text2video
        licence: Apache-2.0
        size: null                      # download bytes when known
        source: https://huggingface.co/Wan-AI/Wan2.1-T2V-1.3B-Diffusers

Finding a downloaded model reads the cache's folders only (no import of huggingface_hub); pulling uses
``huggingface_hub.snapshot_download``, which shows its own progress and resumes interrupted files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from diffusify.weights.errors import WeightsError

__all__ = ["HUB_MANIFEST", "HubEntry", "cache_dir", "find_hub", "hub_models", "pull_hub", "snapshot"]

HUB_MANIFEST = "hub.yaml"
_REPO_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$"


class HubEntry(BaseModel):
    """One Hub model.

    Attributes:
        name: lower-case name used by recipes and ``diffusify weights pull``.
        repo: the Hub repository id.
        revision: branch, tag or commit to download.
        pipeline: the diffusers pipeline class its model_index.json names.
        purpose: what it generates.
        licence: SPDX id of the weights' licence, or ``LicenseRef-...`` for a custom one (see its model card).
        size: download size in bytes, None when not measured.
        source: the model card's address.
        notes: free text.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    repo: str = Field(pattern=_REPO_RE)
    revision: str = Field(min_length=1)
    pipeline: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    purpose: Literal["text2video", "image2video", "video"]
    licence: str = Field(min_length=1)
    size: int | None = Field(default=None, ge=0)
    source: str = Field(min_length=1)
    notes: str | None = None


class _HubManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    models: list[HubEntry]


def hub_models(path: str | Path | None = None) -> list[HubEntry]:
    """The Hub entries (``hub.yaml`` beside the weights manifest; none when it is absent)."""
    from ruamel.yaml import YAML

    from diffusify.weights.manifest import weights_dir

    path = Path(path) if path is not None else weights_dir() / HUB_MANIFEST
    if not path.is_file():
        return []
    try:
        data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
        return _HubManifest.model_validate(data).models
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise WeightsError(f"{path}: {where}: {first.get('msg', 'invalid')}") from None
    except Exception as e:  # noqa: BLE001 - malformed YAML of any kind is one line for the user
        raise WeightsError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None


def find_hub(name: str, path: str | Path | None = None) -> HubEntry | None:
    """The Hub entry called ``name`` (case-insensitive), or None."""
    wanted = name.strip().lower()
    return next((m for m in hub_models(path) if m.name == wanted), None)


def cache_dir() -> Path:
    """huggingface_hub's cache folder, found as huggingface_hub finds it."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def snapshot(repo: str, revision: str | None = None, *, marker: str = "model_index.json") -> Path | None:
    """The cached snapshot folder of ``repo`` at ``revision`` (default ``main``) holding ``marker``, or None."""
    if not re.match(_REPO_RE, repo):
        return None
    folder = cache_dir() / ("models--" + repo.replace("/", "--"))
    rev = revision or "main"
    try:
        rev = (folder / "refs" / rev).read_text(encoding="utf-8").strip()
    except OSError:
        pass  # a commit names its snapshot directly
    snap = folder / "snapshots" / rev
    return snap if (snap / marker).is_file() else None


def pull_hub(entry: HubEntry, *, snapshot_download: Callable[..., Any] | None = None) -> Path:
    """Download a Hub entry into huggingface_hub's cache (resuming; the library shows progress bars).

    Raises:
        WeightsError: huggingface_hub is missing, or the download failed (one line).
    """
    if snapshot_download is None:
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            raise WeightsError("pulling a Hub model needs huggingface_hub: pip install 'diffusify[generate]'") from None
    try:
        path = snapshot_download(repo_id=entry.repo, revision=entry.revision)
    except Exception as e:  # noqa: BLE001 - network, auth and disk errors all become one line
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise WeightsError(f"{entry.name}: cannot download {entry.repo}@{entry.revision}: {first}") from None
    return Path(path)
