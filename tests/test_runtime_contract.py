"""The processor contract: many-to-many filters, windows gathered by the framework, flushes, replicas, and the
engine's own numbering. Every frame is checked for its order, time and metadata."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any

import pytest
import torch
from pydantic import Field

from diffusify import Frame, PipelineError, Window, run
from diffusify.core.stream import StreamInfo
from diffusify.processors.base import Params, PlanContext, Processor, Resources, Temporal
from diffusify.processors.registry import default_registry
from tests._helpers import assert_processor_contract
from tests.conftest import CollectSink

FRAMES = 24


class JitterParams(Params):
    ms: float = Field(0.0, ge=0, description="Sleep per frame, in ms, varied by frame so replicas overtake.")


def _jitter(params: JitterParams, i: int) -> None:
    import time

    if params.ms:
        time.sleep(params.ms / 1000 * (1 + (i * 7) % 3))  # uneven: replicas finish out of order


class Double(Processor):
    """Test: two frames per input, at its time and half a frame later (1 -> 2)."""

    type_name = "test.double"
    Params = JitterParams

    @classmethod
    def infer_stream(cls, params: JitterParams, inputs: Mapping[str, StreamInfo], ctx: PlanContext) -> StreamInfo:
        s = inputs["input"]
        return s.replace(fps=s.fps * 2, frames=None if s.frames is None else s.frames * 2)

    def _process(self, frames: Mapping[str, Frame]) -> list[Frame]:
        f = frames["input"]
        _jitter(self.params, f.index)
        half = Fraction(1, 2 * 25)
        return [f.derive(meta={"src": f.index, "half": 0}),
                f.derive(f.data * 0.5, pts=f.pts + half, meta={"src": f.index, "half": 1})]


class Gaps(Processor):
    """Test: drops every third input (1 -> 0 on some frames)."""

    type_name = "test.gaps"
    Params = JitterParams

    @classmethod
    def infer_stream(cls, params: JitterParams, inputs: Mapping[str, StreamInfo], ctx: PlanContext) -> StreamInfo:
        s = inputs["input"]
        return s.replace(frames=None if s.frames is None else s.frames - s.frames // 3, vfr=True)

    def _process(self, frames: Mapping[str, Frame]) -> Frame | None:
        f = frames["input"]
        _jitter(self.params, f.index)
        return None if f.index % 3 == 2 else f.derive(meta={"src": f.index})


class Smooth(Processor):
    """Test: the mean of each frame and its two neighbours (window 1, 1)."""

    type_name = "test.smooth"
    Params = JitterParams
    temporal = Temporal.WINDOW
    window = (1, 1)

    def _process_window(self, window: Window) -> Frame:
        prev, cur, nxt = window.at(-1), window.at(0), window.at(1)
        _jitter(self.params, window.position)
        return cur.derive((prev.data + cur.data + nxt.data) / 3,
                          meta={"around": (prev.meta["source"], cur.meta["source"], nxt.meta["source"]),
                                "padded": (window.padded_before, window.padded_after)})


class Hold(Processor):
    """Test: emits each frame two frames late and the last two at the end (a flush)."""

    type_name = "test.hold"
    temporal = Temporal.ORDERED
    resources = Resources(max_replicas=1)

    def setup(self) -> None:
        self.held: list[Frame] = []

    def _process(self, frames: Mapping[str, Frame]) -> Frame | None:
        self.held.append(frames["input"])
        return self.held.pop(0) if len(self.held) > 2 else None

    def _flush(self) -> list[Frame]:
        out, self.held = self.held, []
        return [f.derive(meta={"flushed": True}) for f in out]


class GappySource(Processor):
    """Test: a source whose frames carry the indices 0, 1, 3, 4, 6, 7 (gaps), as a cut or a drop would leave."""

    type_name = "test.gappy"
    inputs = ()
    temporal = Temporal.ORDERED
    resources = Resources(device="cpu", max_replicas=1)

    @classmethod
    def infer_stream(cls, params: Any, inputs: Mapping[str, StreamInfo], ctx: PlanContext) -> StreamInfo:
        return StreamInfo(width=8, height=8, fps=Fraction(25), frames=6)

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        for i in (0, 1, 3, 4, 6, 7):
            yield Frame(i, Fraction(i, 25), torch.full((3, 8, 8), i / 10), {"source": i})


class Liar(Processor):
    """Test: declares one frame per input but emits two."""

    type_name = "test.liar"

    def _process(self, frames: Mapping[str, Frame]) -> list[Frame]:
        f = frames["input"]
        return [f, f.derive(pts=f.pts + Fraction(1, 100))]


class Backwards(Processor):
    """Test: emits frame times that go backwards."""

    type_name = "test.backwards"

    def _process(self, frames: Mapping[str, Frame]) -> Frame:
        f = frames["input"]
        return f.derive(pts=Fraction(100) - f.pts)


TEST_PROCESSORS = (Double, Gaps, Smooth, Hold, GappySource, Liar, Backwards)


@pytest.fixture
def reg(registry):
    registry.add(*TEST_PROCESSORS)
    return registry


def _recipe(write_recipe, node: str, *, frames: int = FRAMES) -> str:
    return write_recipe(f"""
        version: 1
        queue: {{frames: 2}}
        nodes:
          src: {{type: pattern, with: {{kind: noise, width: 8, height: 8, frames: {frames}}}}}
          tag: {{type: color, input: src}}
          node: {node}
          out: {{type: test.collect, input: node}}
    """)


def _source_frames() -> list[torch.Tensor]:
    return [torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(FRAMES)]


def _check_dense(frames: list[Frame]) -> None:
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(a.pts < b.pts for a, b in zip(frames, frames[1:], strict=False)), [f.pts for f in frames]


@pytest.mark.parametrize("replicas", [1, 3])
def test_one_to_two_with_new_times(reg, write_recipe, replicas):
    summary = run(_recipe(write_recipe, f"{{type: test.double, input: src, with: {{ms: 2}}, replicas: {replicas}}}"),
                  registry=reg)
    got = CollectSink.results["collected"]
    src = _source_frames()
    assert len(got) == 2 * FRAMES and summary["frames"] == 2 * FRAMES
    _check_dense(got)
    for k, f in enumerate(got):
        i, half = divmod(k, 2)
        assert f.meta["src"] == i and f.meta["half"] == half
        assert f.pts == Fraction(i, 25) + Fraction(half, 50)
        assert torch.equal(f.data, src[i] * (0.5 if half else 1.0))


@pytest.mark.parametrize("replicas", [1, 3])
def test_one_to_none_on_some_frames(reg, write_recipe, replicas):
    run(_recipe(write_recipe, f"{{type: test.gaps, input: src, with: {{ms: 2}}, replicas: {replicas}}}"),
        registry=reg)
    got = CollectSink.results["collected"]
    kept = [i for i in range(FRAMES) if i % 3 != 2]
    _check_dense(got)
    assert [f.meta["src"] for f in got] == kept
    assert [f.pts for f in got] == [Fraction(i, 25) for i in kept]
    src = _source_frames()
    assert all(torch.equal(f.data, src[i]) for f, i in zip(got, kept, strict=True))


@pytest.mark.parametrize("replicas", [1, 2])
def test_window_gets_its_neighbours_with_the_ends_repeated(reg, write_recipe, replicas):
    path = write_recipe(f"""
        version: 1
        queue: {{frames: 2}}
        nodes:
          src: {{type: test.gappy}}
          node: {{type: test.smooth, input: src, with: {{ms: 2}}, replicas: {replicas}}}
          out: {{type: test.collect, input: node}}
    """)
    run(path, registry=reg)
    got = CollectSink.results["collected"]
    order = [0, 1, 3, 4, 6, 7]
    _check_dense(got)
    assert [f.pts for f in got] == [Fraction(i, 25) for i in order]
    for k, f in enumerate(got):
        around = (order[max(k - 1, 0)], order[k], order[min(k + 1, 5)])
        assert f.meta["around"] == around
        assert f.meta["padded"] == ((1 if k == 0 else 0), (1 if k == 5 else 0))
        assert torch.allclose(f.data, torch.full((3, 8, 8), sum(around) / 30))


def test_flush_emits_what_a_stateful_processor_holds(reg, write_recipe):
    run(_recipe(write_recipe, "{type: test.hold, input: src}"), registry=reg)
    got = CollectSink.results["collected"]
    src = _source_frames()
    _check_dense(got)
    assert [f.pts for f in got] == [Fraction(i, 25) for i in range(FRAMES)]
    assert all(torch.equal(f.data, src[i]) for i, f in enumerate(got))
    assert [bool(f.meta.get("flushed")) for f in got] == [False] * (FRAMES - 2) + [True, True]


def test_replicas_after_a_source_with_index_gaps_deliver_every_frame(reg, write_recipe):
    # once a regression: replicas reordered by frame.index, so indices 0,1,3,4,6,7 delivered [0, 1] and succeeded
    path = write_recipe("""
        version: 1
        nodes:
          src: {type: test.gappy}
          slow: {type: test.slow, input: src, with: {ms: 3}, replicas: 3}
          out: {type: test.collect, input: slow}
    """)
    summary = run(path, registry=reg)
    got = CollectSink.results["collected"]
    assert summary["frames"] == 6
    _check_dense(got)
    assert [f.meta["source"] for f in got] == [0, 1, 3, 4, 6, 7]
    assert [f.pts for f in got] == [Fraction(i, 25) for i in (0, 1, 3, 4, 6, 7)]


def test_merge_after_frame_count_changes_joins_on_the_dense_index(reg, write_recipe):
    path = write_recipe(f"""
        version: 1
        nodes:
          src: {{type: pattern, with: {{kind: noise, width: 8, height: 8, frames: {FRAMES}}}}}
          a: {{type: test.double, input: src, replicas: 2}}
          b: {{type: test.double, input: src}}
          mix: {{type: compose.diff, inputs: {{a: a, b: b}}}}
          out: {{type: test.collect, input: mix}}
    """)
    run(path, registry=reg)
    got = CollectSink.results["collected"]
    assert len(got) == 2 * FRAMES
    _check_dense(got)
    assert all(float(f.data.abs().max()) == 0 for f in got)  # both branches agree frame for frame


def test_a_count_that_disagrees_with_the_stream_is_an_error_naming_the_node(reg, write_recipe):
    with pytest.raises(PipelineError) as info:
        run(_recipe(write_recipe, "{type: test.liar, input: src}", frames=5), registry=reg)
    assert info.value.node == "node" and "emitted 10 frames for 5 input frames" in str(info.value)
    assert "declares 5" in str(info.value)


def test_times_going_backwards_are_an_error_naming_the_node(reg, write_recipe):
    with pytest.raises(PipelineError) as info:
        run(_recipe(write_recipe, "{type: test.backwards, input: src}", frames=5), registry=reg)
    assert info.value.node == "node" and "times must not go backwards" in str(info.value)


@pytest.mark.parametrize("cls", list(default_registry()) + list(TEST_PROCESSORS), ids=lambda c: c.type_name)
def test_every_processor_keeps_the_declared_contract(cls):
    assert_processor_contract(cls)
