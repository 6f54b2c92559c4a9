"""Frames at their native depth: decoded samples travel as uint8/uint16 until a node computes, are widened exactly
once where they must be, and reach writers untouched; against the float path as the reference."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import diffusify
from diffusify.io.pixels import PlanePacker
from diffusify.io.probe import probe
from diffusify.io.reader import VideoReader
from diffusify.ops.samples import widen
from tests._media import framemd5
from tests.conftest import CollectSink

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "media" / "sample.mp4"


@pytest.mark.parametrize("high", [False, True])
def test_native_samples_widen_to_exactly_what_the_float_reader_gives(high):
    info = probe(SAMPLE)
    floats = [f.data for f in VideoReader(str(SAMPLE), info, end=3, high_bit_depth=high)]
    native = [f.data for f in VideoReader(str(SAMPLE), info, end=3, high_bit_depth=high, native=True)]
    assert native[0].dtype == (torch.uint16 if high else torch.uint8) and native[0].shape == (3, 270, 480)
    for a, b in zip(floats, native, strict=True):
        assert torch.equal(widen(b), a)


def test_the_packer_gives_the_float_paths_bytes_from_samples_at_any_depth():
    g = torch.Generator().manual_seed(0)
    s8 = torch.randint(0, 256, (3, 5, 7), generator=g, dtype=torch.int32).to(torch.uint8)
    s16 = torch.randint(0, 65536, (3, 5, 7), generator=g, dtype=torch.int32).to(torch.uint16)
    for samples in (s8, s16):
        for high in (False, True):
            want = bytes(PlanePacker(high).pack(widen(samples)))
            assert bytes(PlanePacker(high).pack(samples)) == want, (samples.dtype, high)


def test_an_untouched_stream_is_written_as_the_float_path_would_write_it(tmp_path):
    """read -> crop -> stack -> write keeps samples native end to end; the same graph with a colour node that
    changes nothing goes through float: the files' frames are identical."""
    def recipe(extra: str, out: str) -> str:
        return f"""
version: 1
nodes:
  src:  {{type: video.read, with: {{path: "{SAMPLE}", end: 10}}}}
  a:    {{type: crop, input: {extra}, with: {{x: 0, y: 0, width: 240, height: 270}}}}
  b:    {{type: crop, input: {extra}, with: {{x: 240, y: 0, width: 240, height: 270}}}}
  both: {{type: compose.stack, inputs: {{left: b, right: a}}}}
  out:  {{type: video.write, input: both, with: {{path: "{tmp_path / out}", codec: ffv1}}}}
  grade: {{type: color, input: src}}
"""
    p, _ = diffusify.plan(recipe("src", "native.mkv"))
    assert not any(n.widen_output for n in p.nodes.values() if n.id != "src")
    diffusify.run(recipe("src", "native.mkv"))
    diffusify.run(recipe("grade", "float.mkv"))
    assert framemd5(tmp_path / "native.mkv")[0] == framemd5(tmp_path / "float.mkv")[0]


def test_computing_nodes_get_float32_and_native_ones_get_samples(registry):
    diffusify.run(f"""
version: 1
nodes:
  src:  {{type: video.read, with: {{path: "{SAMPLE}", end: 2}}}}
  cut:  {{type: crop, input: src, with: {{x: 8, y: 8, width: 64, height: 32}}}}
  out:  {{type: test.collect, input: cut}}
""", registry=registry)
    got = CollectSink.results.pop("collected")
    assert got[0].data.dtype == torch.float32 and got[0].data.shape == (3, 32, 64)  # a computing sink: float
    ref = next(iter(VideoReader(str(SAMPLE), probe(SAMPLE), end=1))).data[:, 8:40, 8:72]
    assert torch.equal(got[0].data, ref)


def test_the_plan_widens_once_where_several_would_widen():
    def plan(nodes: str) -> dict[str, bool]:
        p, _ = diffusify.plan(f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{SAMPLE}", end: 2}}}}
{nodes}
""")
        return {nid: n.widen_output for nid, n in p.nodes.items()}

    # a writer alone: samples all the way
    assert not plan("  out: {type: discard, input: src}")["src"]
    # one computing consumer behind a crop: the crop's smaller frames are widened there, not the whole frame
    assert plan("""  cut: {type: crop, input: src, with: {width: 64, height: 32}}
  s: {type: sharpen, input: cut}
  out: {type: discard, input: s}""") == {"src": False, "cut": False, "s": False, "out": False}
    # two computing consumers of one crop: the crop widens once for both
    assert plan("""  cut: {type: crop, input: src, with: {width: 64, height: 32}}
  s: {type: sharpen, input: cut}
  c: {type: color, input: cut}
  m: {type: compose.blend, inputs: {a: s, b: c}}
  out: {type: discard, input: m}""")["cut"]
    # a computing consumer and a crop feeding another: the decoder widens once, fused with its unpacking
    assert plan("""  cut: {type: crop, input: src, with: {width: 64, height: 32}}
  big: {type: resize, input: cut, with: {width: 480, height: 270, keep_aspect: false}}
  c: {type: color, input: src}
  m: {type: compose.blend, inputs: {a: big, b: c}}
  out: {type: discard, input: m}""")["src"]
