"""The Ray executor on a real local Ray cluster (started once for these tests): the same frames as the local
executor, and a segment whose worker is killed mid-way is retried by Ray with the same result."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import diffusify
from diffusify.processors.registry import default_registry
from tests._crashing import CrashOnce
from tests._media import framemd5
from tests.test_segments import SHARPEN, _recipe

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "DIFFUSIFY_CACHE_DIR":
                                       os.environ.get("DIFFUSIFY_CACHE_DIR", "")}})
    yield
    ray.shutdown()


@pytest.mark.slow
def test_the_ray_executor_gives_the_local_frames(cluster, tmp_path):
    recipe = _recipe(tmp_path, SHARPEN, frames=30)
    diffusify.run(recipe, output=str(tmp_path / "local.mkv"))
    events: list[dict] = []
    s = diffusify.run(recipe, output=str(tmp_path / "ray.mkv"), segments=3, backend="ray",
                      hooks=[lambda **e: events.append(e)])
    assert s["executor"] == "ray" and s["frames"] == 30 and s["segments"] == 3
    assert framemd5(tmp_path / "ray.mkv") == framemd5(tmp_path / "local.mkv")
    assert sorted(e["segment"] for e in events if e["event"] == "segment_finished") == [0, 1, 2]
    started = [e for e in events if e["event"] == "segment_started"]  # sent from inside each task
    assert sorted(e["segment"] for e in started) == [0, 1, 2] and all(e["pid"] != os.getpid() for e in started)
    assert not (tmp_path / "ray.mkv.parts").exists()


@pytest.mark.slow
def test_a_task_killed_mid_way_is_retried_with_the_same_result(cluster, tmp_path):
    registry = default_registry().copy()
    registry.add(CrashOnce)
    marker = tmp_path / "crashed"
    text = SHARPEN + f'\n  crash: {{type: test.crash_once, input: last, with: {{marker: "{marker}", at: 4}}}}'
    recipe = _recipe(tmp_path, text.replace("  last:", "  sharp:").replace("input: last", "input: sharp")
                     .replace("crash:", "last:"), frames=30)
    marker.touch()  # the local reference run passes every frame
    diffusify.run(recipe, output=str(tmp_path / "local.mkv"), registry=registry)
    marker.unlink()  # and the Ray run dies once
    s = diffusify.run(recipe, output=str(tmp_path / "ray.mkv"), segments=3, backend="ray", registry=registry)
    assert marker.exists()  # a worker died at frame 4 of a segment
    assert s["frames"] == 30
    assert framemd5(tmp_path / "ray.mkv") == framemd5(tmp_path / "local.mkv")
