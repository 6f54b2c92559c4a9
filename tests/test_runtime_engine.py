"""The streaming runtime with synthetic sources and in-memory sinks: shapes, order, backpressure, errors."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from diffusify import PipelineError, run
from diffusify.runtime.events import format_summary
from tests.conftest import CollectSink


def _frames(name: str):
    return CollectSink.results[name]


def test_linear_pipeline_keeps_order_and_values(registry, write_recipe):
    path = write_recipe("""
        version: 1
        nodes:
          src: {type: pattern, with: {kind: noise, width: 32, height: 16, frames: 12}}
          bright: {type: color, input: src, with: {brightness: 0.1}}
          out: {type: test.collect, input: bright}
    """)
    summary = run(path, registry=registry)
    frames = _frames("collected")
    assert [f.index for f in frames] == list(range(12))
    assert summary["frames"] == 12
    g = torch.Generator().manual_seed(3)
    expected = (torch.rand(3, 16, 32, generator=g) + 0.1).clamp(0, 1)
    assert torch.allclose(frames[3].data, expected, atol=1e-6)


def test_diamond_with_replicas_restores_order(registry, write_recipe):
    path = write_recipe("""
        version: 1
        queue: {frames: 2}
        nodes:
          src: {type: pattern, with: {kind: noise, width: 16, height: 16, frames: 30}}
          fast: {type: color, input: src, with: {gamma: 2}}
          slow: {type: test.slow, input: src, with: {ms: 3}, replicas: 3}
          mix: {type: compose.blend, inputs: {a: fast, b: slow}, with: {weight: 0.5}}
          out: {type: test.collect, input: mix}
          raw: {type: test.collect, input: slow, with: {name: raw}}
    """)
    summary = run(path, registry=registry)
    assert [f.index for f in _frames("collected")] == list(range(30))
    assert [f.index for f in _frames("raw")] == list(range(30))
    slow = next(n for n in summary["nodes"] if n["id"] == "slow")
    assert slow["replicas"] == 3 and slow["frames"] == 30


def test_fan_out_shares_the_frame_without_copy(registry, write_recipe):
    path = write_recipe("""
        version: 1
        nodes:
          src: {type: pattern, with: {width: 8, height: 8, frames: 3}}
          a: {type: test.collect, input: src, with: {name: a}}
          b: {type: test.collect, input: src, with: {name: b}}
    """)
    run(path, registry=registry)
    assert all(x.data is y.data for x, y in zip(_frames("a"), _frames("b"), strict=False))


def test_backpressure_bounds_the_queue(registry, write_recipe):
    path = write_recipe("""
        version: 1
        queue: {frames: 3}
        nodes:
          src: {type: pattern, with: {kind: noise, width: 16, height: 16, frames: 40}}
          slow: {type: test.slow, input: src, with: {ms: 5}}
          out: {type: test.collect, input: slow}
    """)
    peaks = []

    def hook(*, event, **f):
        if event == "progress":
            peaks.append(max(n["queue_frames"] for n in f["nodes"]))

    from diffusify.api import plan as make_plan
    from diffusify.runtime.engine import Engine

    p, _ = make_plan(path, registry=registry)
    engine = Engine(p, hooks=[hook], progress_interval=0.02)
    engine.run()
    assert max(q.peak_frames for st in engine.states.values() for q in st.queues.values()) <= 3
    assert peaks and max(peaks) <= 3


def test_byte_budget_admits_one_oversized_frame(registry, write_recipe):
    path = write_recipe("""
        version: 1
        queue: {frames: 8, bytes: 1KB}
        nodes:
          src: {type: pattern, with: {width: 64, height: 64, frames: 5}}
          out: {type: test.collect, input: src}
    """)
    run(path, registry=registry)
    assert len(_frames("collected")) == 5


def _chain(write_recipe, *, frames: int, slow: str) -> str:
    """A recipe: 16x16 pattern -> test.slow (node 'slow', with ``slow`` as its params) -> test.collect."""
    return write_recipe(f"""
        version: 1
        nodes:
          src: {{type: pattern, with: {{width: 16, height: 16, frames: {frames}}}}}
          slow: {{type: test.slow, input: src, with: {{{slow}}}}}
          out: {{type: test.collect, input: slow}}
    """)


def test_failing_processor_names_node_type_and_frame_and_stops_fast(registry, write_recipe):
    path = _chain(write_recipe, frames=1000, slow="ms: 1, fail_at: 7")
    before = threading.active_count()
    with pytest.raises(PipelineError) as info:
        run(path, registry=registry)
    err = info.value
    # it stopped at the error: the source read a few frames past it (its queue), not the 1000 frames
    src = next(n for n in err.summary["nodes"] if n["id"] == "src")  # type: ignore[attr-defined]
    assert src["frames"] < 100
    assert (err.node, err.node_type, err.frame) == ("slow", "test.slow", 7)
    assert "node 'slow' (test.slow) at frame 7: RuntimeError: boom" in str(err)
    # the first error wins: frames already handed to the sink are written, the rest are dropped at once
    got = [f.index for f in _frames("collected")]
    assert got == list(range(len(got))) and len(got) <= 7
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before


def test_stop_drains_in_flight_frames(registry, write_recipe):
    path = _chain(write_recipe, frames=100000, slow="ms: 2")
    from diffusify.api import plan as make_plan
    from diffusify.runtime.engine import Engine

    p, _ = make_plan(path, registry=registry)
    engine = Engine(p)
    threading.Timer(0.3, engine.stop).start()
    summary = engine.run()
    frames = _frames("collected")
    assert 0 < len(frames) < 100000
    assert [f.index for f in frames] == list(range(len(frames)))
    assert summary["frames"] == len(frames)


def test_progress_says_which_nodes_still_set_up(registry, write_recipe):
    path = _chain(write_recipe, frames=100, slow="ms: 3, setup_ms: 400")
    from diffusify.api import plan as make_plan
    from diffusify.runtime.engine import Engine

    events: list[dict] = []
    p, _ = make_plan(path, registry=registry)
    summary = Engine(p, hooks=[lambda **e: events.append(e)], progress_interval=0.05).run()
    ready = [{n["id"]: n["ready"] for n in e["nodes"]} for e in events if e["event"] == "progress"]
    assert {"src": True, "slow": False, "out": True} in ready  # while its "model" loads
    assert ready[-1] == {"src": True, "slow": True, "out": True}  # 100 frames x 3 ms after it
    model = next(n for n in summary["nodes"] if n["id"] == "slow")
    assert model["setup_seconds"] >= 0.4 and summary["first_frame_seconds"] >= 0.4


@pytest.mark.parametrize("spin", [False, True])
def test_the_summary_says_what_cpu_the_process_spent(registry, write_recipe, spin):
    path = write_recipe(f"""
        version: 1
        nodes:
          src: {{type: pattern, with: {{kind: noise, width: 32, height: 32, frames: 30}}}}
          slow: {{type: test.slow, input: src, with: {{ms: 20, spin: {str(spin).lower()}}}}}
          out: {{type: test.collect, input: slow}}
    """)
    summary = run(path, registry=registry)
    cpu = summary["process_cpu_seconds"]
    # 30 x 20 ms: spent on the CPU when the node spins, asleep when it sleeps (the rest is tiny frames)
    assert (cpu >= 0.6) if spin else (0 < cpu < 0.3), cpu
    assert "CPU-s in this process" in format_summary(summary)[0]


def test_overlap_hides_source_and_sink_behind_compute(registry, write_recipe):
    path = write_recipe("""
        version: 1
        nodes:
          src: {type: pattern, with: {kind: noise, width: 64, height: 64, frames: 40}}
          slow: {type: test.slow, input: src, with: {ms: 10}}
          out: {type: test.collect, input: slow}
    """)
    summary = run(path, registry=registry)
    slow = next(n for n in summary["nodes"] if n["id"] == "slow")
    assert summary["bottleneck"] == "slow"
    assert slow["busy_share"] > 0.5
    # start-up is reported apart from streaming: the first frame needs one 10 ms step, the other 39 follow
    assert all(n["setup_seconds"] >= 0 for n in summary["nodes"])
    first = summary["first_frame_seconds"]
    assert first is not None and 0.01 <= first < summary["wall_seconds"]
