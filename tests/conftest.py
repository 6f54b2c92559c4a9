"""Shared fixtures: seeded RNGs, the test device, a registry with test processors, recipe helpers."""

from __future__ import annotations

import os
import random
import textwrap
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from diffusify.processors.base import Params, Port, Processor, Resources, Temporal
from diffusify.processors.registry import Registry, default_registry

ROOT = Path(__file__).resolve().parents[1]
# What "auto" means in tests: the CPU unless DIFFUSIFY_TEST_DEVICE says otherwise, so results compared with exact
# CPU references do not depend on whether the machine has a GPU (tests/test_cuda.py names its devices).
TEST_DEVICE = os.environ.get("DIFFUSIFY_TEST_DEVICE", "cpu")


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Model facts and downloads go to a folder of this test session, never the user's cache."""
    os.environ.setdefault("DIFFUSIFY_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def _auto_device(monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusify.runtime import plan

    monkeypatch.setattr(plan, "visible_devices", lambda: [TEST_DEVICE])


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    try:
        import numpy as np

        np.random.seed(0)
    except ImportError:
        pass
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(0)


class CollectParams(Params):
    name: str = Field("collected", description="Key in CollectSink.results.")


class CollectSink(Processor):
    """Test sink: keeps every frame it receives (on the CPU) in ``CollectSink.results[name]``."""

    type_name = "test.collect"
    Params = CollectParams
    inputs = (Port("input", "any"),)  # video or masks
    is_sink = True
    temporal = Temporal.ORDERED
    resources = Resources(device="cpu", max_replicas=1)
    results: dict[str, list[Any]] = {}
    lock = threading.Lock()

    def setup(self) -> None:
        with self.lock:
            self.results[self.params.name] = []

    def write(self, frame: Any) -> None:
        self.results[self.params.name].append(frame)

    def finish(self, *, aborted: bool) -> dict[str, Any]:
        return {"path": f"memory:{self.params.name}", "frames": len(self.results[self.params.name]),
                "aborted": aborted}


class SlowParams(Params):
    ms: float = Field(20.0, ge=0, description="Milliseconds of sleep per frame.")
    fail_at: int | None = Field(None, description="Raise at this frame index.")
    setup_ms: float = Field(0.0, ge=0, description="Milliseconds of sleep in setup (a model loading).")
    spin: bool = Field(False, description="Keep the CPU busy for the milliseconds instead of sleeping.")


class Slow(Processor):
    """Test processor: sleeps (releasing the GIL like a GPU kernel would) and passes the frame on."""

    type_name = "test.slow"
    Params = SlowParams

    def setup(self) -> None:
        import time

        time.sleep(self.params.setup_ms / 1000)

    def _process(self, frames: Mapping[str, Any]) -> Any:
        import time

        f = frames["input"]
        if self.params.fail_at is not None and f.index == self.params.fail_at:
            raise RuntimeError("boom")
        if self.params.spin:
            until = time.process_time() + self.params.ms / 1000
            while time.process_time() < until:
                pass
        else:
            time.sleep(self.params.ms / 1000)
        return f.data


@pytest.fixture
def registry() -> Registry:
    reg = default_registry().copy()
    reg.add(CollectSink, Slow)
    CollectSink.results.clear()
    return reg


@pytest.fixture
def write_recipe(tmp_path: Path):
    """Write a recipe (dedented) to tmp_path and return its path as a string."""

    def write(text: str, name: str = "recipe.yaml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return str(path)

    return write
