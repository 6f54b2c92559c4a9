"""Frames at their native depth: decoded samples travel as uint8/uint16 until a node computes, are widened exactly
once where they must be, and reach writers untouched; against the float path as the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import diffusify
from diffusify.core.stream import StreamInfo
from diffusify.io.pixels import PlanePacker
from diffusify.io.probe import probe
from diffusify.io.reader import VideoReader
from diffusify.ops.samples import (
    affine_table,
    depth,
    level_table,
    lookup,
    mix,
    mix_table,
    narrow,
    pair_lookup,
    widen,
)
from diffusify.processors.color import Color, ColorParams
from diffusify.processors.compose import Blend, BlendParams, Diff, Stack, StackParams
from diffusify.processors.geometry import Crop, Resize
from tests._helpers import frame, make_processor, push_one, stream_of
from tests._media import framemd5
from tests.conftest import CollectSink

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "media" / "sample.mp4"


@pytest.mark.parametrize("high", [False, True])
def test_native_samples_widen_to_exactly_what_the_float_reader_gives(high):
    info = probe(SAMPLE)
    floats = [f.data for f in VideoReader(str(SAMPLE), info, end=3, high_bit_depth=high)]
    native = [f.data for f in VideoReader(str(SAMPLE), info, end=3, high_bit_depth=high, native=True)]
    # on the CPU the decoder's samples are a numpy array: torch is not needed until a node computes
    assert isinstance(native[0], np.ndarray)
    assert native[0].dtype == (np.uint16 if high else np.uint8) and native[0].shape == (3, 270, 480)
    for a, b in zip(floats, native, strict=True):
        assert torch.equal(widen(b), a)


def test_samples_read_straight_into_frames_are_the_planes_reordered():
    """FrameBuffer.read_samples puts each plane of a GBR frame where planes_to_samples would copy it, and counts
    a short read at the end of the stream."""
    import io

    from diffusify.io.pixels import FrameBuffer, planes_to_samples

    rng = np.random.default_rng(1)
    for high, dtype in ((False, np.uint8), (True, np.uint16)):
        gbr = rng.integers(0, np.iinfo(dtype).max + 1, (3, 6, 10), dtype=dtype)
        raw = gbr.tobytes()
        got, n = FrameBuffer(len(raw)).read_samples(io.BytesIO(raw), 6, 10, high)
        assert isinstance(got, np.ndarray) and n == len(raw)
        want = planes_to_samples(torch.from_numpy(np.frombuffer(raw, np.uint8).copy()), 6, 10, high, "cpu")
        assert np.array_equal(got, want.numpy())
        assert np.array_equal(got, gbr[[2, 0, 1]])  # R, G, B from G, B, R
        assert FrameBuffer(len(raw)).read_samples(io.BytesIO(raw[:-5]), 6, 10, high)[1] == len(raw) - 5


def test_the_packers_views_are_its_bytes_without_a_copy_where_it_can():
    g = torch.Generator().manual_seed(3)
    for dtype, high in ((torch.uint8, False), (torch.uint16, True), (torch.uint8, True), (torch.uint16, False)):
        x = torch.randint(0, 256 if dtype == torch.uint8 else 65536, (4, 6, 9), generator=g, dtype=torch.int32).to(dtype)
        for data in (x[:3], x, x[:3, 1:5, 2:7], x[:3].numpy(), x.numpy()):
            packer = PlanePacker(high)
            views = packer.views(data)
            assert b"".join(bytes(v) for v in views) == bytes(PlanePacker(high).pack(data)), (dtype, high)
            same_depth = (dtype == torch.uint16) == high
            contiguous = data.shape[1:] == (6, 9)
            assert len(views) == (data.shape[0] if same_depth and contiguous else 1)  # planes, else one packed


def test_the_packer_gives_the_float_paths_bytes_from_samples_at_any_depth():
    g = torch.Generator().manual_seed(0)
    s8 = torch.randint(0, 256, (3, 5, 7), generator=g, dtype=torch.int32).to(torch.uint8)
    s16 = torch.randint(0, 65536, (3, 5, 7), generator=g, dtype=torch.int32).to(torch.uint16)
    for samples in (s8, s16):
        for high in (False, True):
            want = bytes(PlanePacker(high).pack(widen(samples)))
            assert bytes(PlanePacker(high).pack(samples)) == want, (samples.dtype, high)
            # a decoder's numpy array of the same samples packs to the same bytes, without torch
            assert bytes(PlanePacker(high).pack(samples.numpy())) == want, (samples.dtype, high, "numpy")


def test_an_untouched_stream_is_written_as_the_float_path_would_write_it(tmp_path):
    """read -> crop -> stack -> write keeps samples native end to end; the same graph behind a resize that changes
    nothing (a computing node) goes through float: the files' frames are identical."""
    def recipe(extra: str, out: str) -> str:
        return f"""
version: 1
nodes:
  src:  {{type: video.read, with: {{path: "{SAMPLE}", end: 10}}}}
  a:    {{type: crop, input: {extra}, with: {{x: 0, y: 0, width: 240, height: 270}}}}
  b:    {{type: crop, input: {extra}, with: {{x: 240, y: 0, width: 240, height: 270}}}}
  both: {{type: compose.stack, inputs: {{left: b, right: a}}}}
  out:  {{type: video.write, input: both, with: {{path: "{tmp_path / out}", codec: ffv1}}}}
  grade: {{type: resize, input: src, with: {{width: 480, height: 270}}}}
"""
    p, _ = diffusify.plan(recipe("src", "native.mkv"))
    assert not any(n.widen_output for n in p.nodes.values() if n.id != "src")
    diffusify.run(recipe("src", "native.mkv"))
    diffusify.run(recipe("grade", "float.mkv"))
    assert framemd5(tmp_path / "native.mkv")[0] == framemd5(tmp_path / "float.mkv")[0]


@pytest.mark.parametrize("high", [False, True])
def test_a_transcode_never_imports_torch_and_writes_the_float_paths_frames(tmp_path, high):
    """read -> write (a trim, at 8 or 16 bits) carries the decoder's numpy samples to the writer: the process never
    imports torch, and the file has the frames the same graph writes through a computing node (float32)."""
    import json
    import os
    import subprocess
    import sys

    def recipe(head: str, out: str) -> str:
        grade = "\n  grade: {type: resize, input: src, with: {width: 480, height: 270}}" if head == "grade" else ""
        return f"""
version: 1
nodes:
  src:   {{type: video.read, with: {{path: "{SAMPLE}", start: 3, end: 12, high_bit_depth: {str(high).lower()}}}}}{grade}
  out:   {{type: video.write, input: {head}, with: {{path: "{tmp_path / out}", codec: ffv1,
          pix_fmt: {'gbrp16le' if high else 'bgr0'}}}}}
"""
    transcode = tmp_path / "transcode.yaml"
    transcode.write_text(recipe("src", "native.mkv"))
    graded = tmp_path / "graded.yaml"
    graded.write_text(recipe("grade", "graded.mkv"))
    code = ("import json, sys, diffusify; s = diffusify.run(sys.argv[1]); "
            "print(json.dumps([s['frames'], 'torch' in sys.modules, s['torch_import_seconds'], "
            "s['first_frame_seconds']]))")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # as on a machine without a GPU, whatever this one has

    def run_fresh(path: Path) -> list:
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env,
                             check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    assert run_fresh(transcode)[:3] == [9, False, 0.0]
    # a graph that computes imports torch in the run, and says how long that took of its first frame's wait
    frames, imported, took, first = run_fresh(graded)
    assert (frames, imported) == (9, True) and 0 < took <= first
    diffusify.run(recipe("grade", "float.mkv"))
    assert framemd5(tmp_path / "native.mkv")[0] == framemd5(tmp_path / "float.mkv")[0]
    assert not diffusify.plan(str(transcode), overwrite=True)[0].needs_torch
    assert diffusify.plan(recipe("grade", "float.mkv"), overwrite=True)[0].needs_torch


@pytest.mark.parametrize("bits", [8, 16])
def test_image_sequences_in_and_out_never_import_torch_and_match_the_float_path(tmp_path, bits):
    """video -> images and images -> video carry samples as numpy arrays (a depth change to 16 bits on the way):
    the process never imports torch, and the images and the video are those the float path writes."""
    import json
    import os
    import subprocess
    import sys

    def recipes(tag: str, grade: bool) -> tuple[str, str]:
        mid = "\n  grade: {type: resize, input: src, with: {width: 480, height: 270}}" if grade else ""
        head = "grade" if grade else "src"
        out = f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{SAMPLE}", end: 4}}}}{mid}
  out: {{type: image.write, input: {head}, with: {{path: "{tmp_path / tag}", bit_depth: {bits}}}}}
"""
        back = f"""
version: 1
nodes:
  src: {{type: image.read, with: {{path: "{tmp_path / tag}"}}}}{mid}
  out: {{type: video.write, input: {head}, with: {{path: "{tmp_path / tag}.mkv", codec: ffv1,
        pix_fmt: {'gbrp16le' if bits == 16 else 'bgr0'}}}}}
"""
        return out, back

    files = []
    for i, text in enumerate(recipes("native", grade=False)):
        files.append(tmp_path / f"r{i}.yaml")
        files[-1].write_text(text)
    code = ("import json, sys, diffusify; frames = [diffusify.run(r)['frames'] for r in sys.argv[1:]]; "
            "print(json.dumps([frames, 'torch' in sys.modules]))")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", code, *map(str, files)], capture_output=True, text=True, env=env,
                         check=True).stdout.strip().splitlines()[-1]
    assert json.loads(out) == [[4, 4], False]
    for text in recipes("float", grade=True):
        diffusify.run(text)
    native, floated = sorted((tmp_path / "native").iterdir()), sorted((tmp_path / "float").iterdir())
    assert len(native) == 4 and [p.read_bytes() for p in native] == [p.read_bytes() for p in floated]
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
    # two computing consumers of one crop (a saturation change mixes channels: float): the crop widens once
    assert plan("""  cut: {type: crop, input: src, with: {width: 64, height: 32}}
  s: {type: sharpen, input: cut}
  c: {type: color, input: cut, with: {saturation: 0.5}}
  m: {type: compose.blend, inputs: {a: s, b: c}}
  out: {type: discard, input: m}""")["cut"]
    # a computing consumer and a crop feeding another: the decoder widens once, fused with its unpacking
    assert plan("""  cut: {type: crop, input: src, with: {width: 64, height: 32}}
  big: {type: resize, input: cut, with: {width: 480, height: 270, keep_aspect: false}}
  c: {type: color, input: src, with: {saturation: 0.5}}
  m: {type: compose.blend, inputs: {a: big, b: c}}
  out: {type: discard, input: m}""")["src"]
    # point adjustments, blends and crops keep samples native all the way down to the writer: nothing widens
    six = plan("""  warm: {type: color, input: src, with: {brightness: 0.001}}
  cut: {type: crop, input: src, with: {x: 0, y: 0}}
  mix: {type: compose.blend, inputs: {a: warm, b: cut}}
  grade: {type: color, input: mix, with: {contrast: 1.001}}
  out: {type: discard, input: grade}""")
    assert not any(six.values())


# ---- cheap nodes on native samples: the rule is "the nearest level to the float result", tested per node ----

def _samples(dtype: torch.dtype, seed: int, shape=(3, 24, 40)) -> torch.Tensor:
    top = 255 if dtype == torch.uint8 else 65535
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, top + 1, shape, generator=g, dtype=torch.int32).to(dtype)


def _written(data: torch.Tensor, high: bool) -> torch.Tensor:
    """What a writer stores for a frame: its packed planes, as integers."""
    planes = bytes(PlanePacker(high).pack(data))
    return torch.frombuffer(bytearray(planes), dtype=torch.uint16 if high else torch.uint8).to(torch.int64)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
@pytest.mark.parametrize("params", [{"brightness": 0.1}, {"contrast": 1.7, "brightness": -0.2}, {"gamma": 2.2},
                                    {"contrast": 0.3, "gamma": 0.6}, {}])
def test_point_adjustments_on_samples_write_the_float_paths_bytes(dtype, params):
    """A colour node without a saturation change looks each sample up in a table made by its float path: the
    written bytes are the float path's, bit for bit, at both depths."""
    x = _samples(dtype, 1)
    node = make_processor(Color, params, streams={"input": stream_of(x)})
    assert node.native_for(node.params)
    native = push_one(node, {"input": frame(0, x)}).data
    floated = push_one(node, {"input": frame(0, widen(x))}).data
    assert native.dtype == dtype and floated.dtype == torch.float32
    high = dtype == torch.uint16
    assert torch.equal(_written(native, high), _written(floated, high))


def test_a_saturation_change_computes_in_float():
    x = _samples(torch.uint8, 2)
    node = make_processor(Color, {"saturation": 0.4}, streams={"input": stream_of(x)})
    assert not node.native_for(node.params)
    out = push_one(node, {"input": frame(0, x)}).data
    assert out.dtype == torch.float32
    assert torch.equal(out, push_one(node, {"input": frame(0, widen(x))}).data)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
@pytest.mark.parametrize("weight", [0.0, 0.5, 0.3, 0.731, 1.0])
def test_a_blend_of_samples_is_the_nearest_level_to_the_exact_mix(dtype, weight):
    a, b = _samples(dtype, 3), _samples(dtype, 4)
    node = make_processor(Blend, {"weight": weight}, streams={"a": stream_of(a), "b": stream_of(b)})
    out = push_one(node, {"a": frame(0, a), "b": frame(0, b)}).data
    assert out.dtype == dtype
    exact = a.double() * (1 - weight) + b.double() * weight
    assert float((out.double() - exact).abs().max()) <= 0.5 + 1e-6
    # and the float path, rounded as a writer rounds, lands on the same level except where the exact value is a
    # half level (up to float32's error at that depth)
    floated = narrow(push_one(node, {"a": frame(0, widen(a)), "b": frame(0, widen(b))}).data, depth(a))
    near_half = ((exact - exact.floor()) - 0.5).abs() < (1e-3 if dtype == torch.uint8 else 1e-2)
    assert torch.equal(out[~near_half], floated[~near_half])


def test_mix_rounds_halves_up_in_every_path():
    a = torch.tensor([[[10, 11, 200]]], dtype=torch.uint8)
    b = torch.tensor([[[11, 10, 255]]], dtype=torch.uint8)
    want = [[[11, 11, 228]]]  # 10.5 -> 11 from either side, 227.5 -> 228
    assert mix(a, b, 0.5).tolist() == want  # 16-bit integer arithmetic (a weight in 128ths)
    assert pair_lookup(a, b, mix_table(0.5)).tolist() == want  # the table of every pair
    assert mix(a.to(torch.uint16), b.to(torch.uint16), 0.5).tolist() == want  # the 16-bit samples' arithmetic


@pytest.mark.parametrize("weight", [0.5, 0.25, 0.0078125, 0.3, 0.731])
def test_the_8_bit_pair_table_is_the_mix_arithmetic_for_every_pair(weight):
    levels = torch.arange(256, dtype=torch.int32)
    a = levels.repeat_interleave(256).to(torch.uint8).view(1, 256, 256)  # all 65536 pairs, in a picture's shape
    b = levels.repeat(256).to(torch.uint8).view(1, 256, 256)
    assert torch.equal(pair_lookup(a, b, mix_table(weight)), mix(a, b, weight))
    assert torch.equal(mix(a, b, weight), mix(a.to(torch.uint16), b.to(torch.uint16), weight).to(torch.uint8))
    assert torch.equal(pair_lookup(a.expand(3, -1, -1), b.expand(3, -1, -1), mix_table(weight))[2],
                       mix(a, b, weight)[0])  # more than one chunk, channels in turn
    assert torch.equal(mix(a.expand(3, -1, -1), b.expand(3, -1, -1), weight)[2], mix(a, b, weight)[0])  # likewise


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
def test_a_diff_of_samples_is_the_nearest_level_to_the_exact_difference(dtype):
    a, b = _samples(dtype, 5), _samples(dtype, 6)
    top = 255 if dtype == torch.uint8 else 65535
    b[0, 0, :8] = a[0, 0, :8]  # some equal samples: a difference of zero
    node = make_processor(Diff, {"gain": 3.3}, streams={"a": stream_of(a), "b": stream_of(b)})
    out = push_one(node, {"a": frame(0, a), "b": frame(0, b)}).data
    assert out.dtype == dtype
    exact = ((a.double() - b.double()).abs() * 3.3).clamp(0, top)
    assert float((out.double() - exact).abs().max()) <= 0.5 + 1e-6
    assert (out[0, 0, :8] == 0).all()


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
@pytest.mark.parametrize("size", [(48, 80), (18, 30), (24, 40)])
def test_nearest_resize_of_samples_picks_the_float_paths_samples(dtype, size):
    x = _samples(dtype, 7)
    params = {"width": size[1], "height": size[0], "keep_aspect": False, "method": "nearest"}
    node = make_processor(Resize, params, streams={"input": stream_of(x)})
    native = push_one(node, {"input": frame(0, x)}).data
    assert native.dtype == dtype and native.shape == (3, *size)
    assert torch.equal(widen(native), push_one(node, {"input": frame(0, widen(x))}).data)
    # other kernels compute in float
    smooth = make_processor(Resize, {**params, "method": "bilinear"}, streams={"input": stream_of(x)})
    assert push_one(smooth, {"input": frame(0, x)}).data.dtype == torch.float32


def test_the_six_node_graph_writes_what_the_float_path_writes_to_the_level(tmp_path):
    """The bench's graph (two point adjustments, a crop, a blend) on samples against the same graph in float
    (a resize to the same size in front widens the frames): every written sample within one level, since each
    native node rounds to the nearest level where the float path carries the fraction on."""
    def recipe(head: str, out: str) -> str:
        return f"""
version: 1
nodes:
  src:   {{type: video.read, with: {{path: "{SAMPLE}", end: 6}}}}
  wide:  {{type: resize, input: src, with: {{width: 480, height: 270}}}}
  warm:  {{type: color, input: {head}, with: {{brightness: 0.03, gamma: 1.2}}}}
  cut:   {{type: crop, input: {head}, with: {{x: 0, y: 0}}}}
  mix:   {{type: compose.blend, inputs: {{a: warm, b: cut}}, with: {{weight: 0.4}}}}
  grade: {{type: color, input: mix, with: {{contrast: 1.2}}}}
  out:   {{type: video.write, input: grade, with: {{path: "{tmp_path / out}", codec: ffv1, pix_fmt: bgr0}}}}
"""
    diffusify.run(recipe("src", "native.mkv"))
    diffusify.run(recipe("wide", "float.mkv"))
    info = probe(tmp_path / "native.mkv")
    native = [f.data for f in VideoReader(str(tmp_path / "native.mkv"), info, native=True)]
    floated = [f.data for f in VideoReader(str(tmp_path / "float.mkv"), info, native=True)]
    assert len(native) == len(floated) == 6
    worst = max(int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max()) for a, b in zip(native, floated, strict=True))
    assert worst <= 1
    assert all(a.astype(np.float32).std() > 10 for a in native)  # real pictures, not flat ones


# ---- cheap nodes without torch: numpy samples in, numpy samples out, the tensor path's samples ----

_TORCH_FREE = [
    (Crop, {"x": 3, "y": 5, "width": 20, "height": 11}, ("input",)),
    (Color, {"brightness": 0.1, "contrast": 1.3}, ("input",)),
    (Color, {"contrast": 0.7}, ("input",)),
    (Blend, {"weight": 0.5}, ("a", "b")),
    (Blend, {"weight": 0.25}, ("a", "b")),
    (Blend, {"weight": 0.3}, ("a", "b")),
    (Diff, {"gain": 3.3}, ("a", "b")),
    (Stack, {"axis": "horizontal"}, ("left", "right")),
    (Stack, {"axis": "vertical"}, ("left", "right")),
]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
@pytest.mark.parametrize(("cls", "params", "ports"), _TORCH_FREE,
                         ids=[f"{c.type_name}-{'-'.join(map(str, p.values()))}" for c, p, _ in _TORCH_FREE])
def test_torch_free_nodes_make_numpy_samples_equal_to_the_tensor_paths(dtype, cls, params, ports):
    """A node that says it runs without torch takes a decoder's numpy samples and hands numpy samples on: the
    same samples, at the same depth, as its path for tensors (itself held to the float reference above)."""
    data = {p: _samples(dtype, 11 + i) for i, p in enumerate(ports)}
    node = make_processor(cls, params, streams={p: stream_of(x) for p, x in data.items()})
    assert cls.torch_free(node.params, device="cpu", widen_output=False, inputs=node.input_streams)
    got = push_one(node, {p: frame(0, x.numpy()) for p, x in data.items()}).data
    want = push_one(node, {p: frame(0, x) for p, x in data.items()}).data
    assert isinstance(got, np.ndarray) and isinstance(want, torch.Tensor)
    assert got.dtype == want.numpy().dtype and torch.equal(torch.from_numpy(np.ascontiguousarray(got)), want)
    assert node.frames_done == 2 and node.flush() == []


def test_what_needs_torch_says_so():
    """A gamma or a saturation change, a GPU, a widened output, a stack that resamples: the node computes with
    torch."""
    one = {"input": StreamInfo(width=40, height=24)}

    def free(cls, params, device="cpu", widen_output=False, inputs=one) -> bool:
        return cls.torch_free(params, device=device, widen_output=widen_output, inputs=inputs)

    assert not free(Color, ColorParams(gamma=2.2))
    assert not free(Color, ColorParams(saturation=0.5))
    assert not free(Color, ColorParams(brightness=0.1), device="cuda:0")
    assert not free(Blend, BlendParams(), widen_output=True)
    assert free(Color, ColorParams(brightness=0.1))
    pair = {"left": StreamInfo(width=40, height=24), "right": StreamInfo(width=20, height=24)}
    assert free(Stack, StackParams(), inputs=pair)
    assert not free(Stack, StackParams(), inputs={**pair, "right": StreamInfo(width=20, height=12)})  # a resize
    assert free(Stack, StackParams(fit="none", axis="vertical"),
                inputs={"left": StreamInfo(width=40, height=24), "right": StreamInfo(width=40, height=12)})


@pytest.mark.parametrize("bits", [8, 16])
def test_the_numpy_table_of_brightness_and_contrast_is_the_float_paths(bits):
    """affine_table does the float path's steps in numpy float32: every level of 60 random adjustments (and the
    edges: no change, a flat result, the largest gain) is the one the torch float path and a writer give."""
    import random

    rng = random.Random(bits)
    cases = [(0.0, 1.0), (0.001, 1.0), (0.0, 1.001), (-1.0, 1.0), (1.0, 4.0), (0.0, 0.0), (0.2, 4.0)]
    cases += [(rng.uniform(-1, 1), rng.uniform(0, 4)) for _ in range(60)]
    like = torch.zeros(1, 1, 1, dtype=torch.uint8 if bits == 8 else torch.uint16)
    for brightness, contrast in cases:
        node = make_processor(Color, {"brightness": brightness, "contrast": contrast},
                              streams={"input": stream_of(like)})
        want = level_table(node._adjust, like)
        got = affine_table(*Color._affine(node.params), bits)
        assert np.array_equal(got, want.numpy()), (brightness, contrast)


def test_a_graph_of_cheap_nodes_never_imports_torch_and_writes_the_tensor_paths_frames(tmp_path):
    """The bench's six-node graph (colour, crop, blend, colour) with visible adjustments, at 8 and 16 bits: in a
    fresh process it never imports torch, and it writes the frames of the same graph fed tensors (a nearest
    resize to the same size in front makes the decoder's samples tensors: the same samples)."""
    import json
    import os
    import subprocess
    import sys

    def recipe(head: str, out: str, high: bool) -> str:
        return f"""
version: 1
nodes:
  src:   {{type: video.read, with: {{path: "{SAMPLE}", end: 5, high_bit_depth: {str(high).lower()}}}}}
  same:  {{type: resize, input: src, with: {{width: 480, height: 270, method: nearest}}}}
  warm:  {{type: color, input: {head}, with: {{brightness: 0.05, contrast: 1.1}}}}
  cut:   {{type: crop, input: {head}, with: {{x: 0, y: 0}}}}
  mix:   {{type: compose.blend, inputs: {{a: warm, b: cut}}, with: {{weight: 0.3}}}}
  grade: {{type: color, input: mix, with: {{contrast: 1.2}}}}
  out:   {{type: video.write, input: grade, with: {{path: "{tmp_path / out}", codec: ffv1,
          pix_fmt: {'gbrp16le' if high else 'bgr0'}}}}}
"""
    files = []
    for high in (False, True):
        files.append(tmp_path / f"numpy{int(high)}.yaml")
        files[-1].write_text(recipe("src", f"numpy{int(high)}.mkv", high).replace(
            "  same:  {type: resize, input: src, with: {width: 480, height: 270, method: nearest}}\n", ""))
        assert not diffusify.plan(str(files[-1]), overwrite=True)[0].needs_torch
    code = ("import json, sys, diffusify; s = [diffusify.run(r) for r in sys.argv[1:]]; "
            "print(json.dumps([[x['frames'] for x in s], 'torch' in sys.modules, s[0]['torch_import_seconds']]))")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", code, *map(str, files)], capture_output=True, text=True, env=env,
                         check=True).stdout.strip().splitlines()[-1]
    assert json.loads(out) == [[5, 5], False, 0.0]
    for high in (False, True):
        plan = diffusify.plan(recipe("same", f"tensor{int(high)}.mkv", high))[0]
        assert plan.needs_torch
        diffusify.run(recipe("same", f"tensor{int(high)}.mkv", high))
        numpy_md5, tensor_md5 = framemd5(tmp_path / f"numpy{int(high)}.mkv")[0], \
            framemd5(tmp_path / f"tensor{int(high)}.mkv")[0]
        assert len(numpy_md5) == 5 and numpy_md5 == tensor_md5
    # and the adjustments changed the picture: the test compares computed frames, not copies of the source
    diffusify.run(f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{SAMPLE}", end: 5}}}}
  out: {{type: video.write, input: src, with: {{path: "{tmp_path / 'source.mkv'}", codec: ffv1, pix_fmt: bgr0}}}}
""")
    assert framemd5(tmp_path / "source.mkv")[0] != framemd5(tmp_path / "numpy0.mkv")[0]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
def test_the_device_paths_give_the_numpy_paths_samples(dtype):
    """On a GPU, lookup, pair_lookup and mix run torch code (on the CPU, numpy): that code, run here on CPU
    tensors, gives the numpy path's samples, for every pair of 8-bit samples and for random 16-bit ones."""
    from diffusify.ops.samples import _lookup_torch, _mix_torch, _pair_lookup_torch

    if dtype == torch.uint8:
        levels = torch.arange(256, dtype=torch.int32)
        a = levels.repeat_interleave(256).to(dtype).view(1, 256, 256).expand(3, -1, -1).contiguous()
        b = levels.repeat(256).to(dtype).view(1, 256, 256).expand(3, -1, -1).contiguous()
    else:
        a, b = _samples(dtype, 21), _samples(dtype, 22)
    table = affine_table(1.3, -0.1, depth(a))
    assert torch.equal(_lookup_torch(a, table), lookup(a, table))
    per_channel = np.ascontiguousarray(np.concatenate([table, table[:, ::-1], affine_table(0.5, 0.2, depth(a))]))
    assert torch.equal(_lookup_torch(a, per_channel), lookup(a, per_channel))
    for weight in (0.5, 0.25, 0.3, 0.731):
        assert torch.equal(_mix_torch(a, b, weight), mix(a, b, weight)), weight
        if dtype == torch.uint8:
            assert torch.equal(_pair_lookup_torch(a, b, mix_table(weight)), pair_lookup(a, b, mix_table(weight)))


def test_the_plan_says_which_nodes_import_torch():
    """The dry run's first line and the plan's JSON (the start event) say whether a run imports torch, and for
    which nodes: what a start-up of seconds instead of one comes from."""
    def plan(warm: str):
        return diffusify.plan(f"""
version: 1
nodes:
  src:  {{type: video.read, with: {{path: "{SAMPLE}", end: 2}}}}
  warm: {{type: color, input: src, with: {{{warm}}}}}
  cut:  {{type: crop, input: src, with: {{width: 64, height: 32}}}}
  side: {{type: compose.stack, inputs: {{left: warm, right: src}}}}
  out:  {{type: discard, input: side}}
  out2: {{type: discard, input: cut}}
""")[0]

    free = plan("brightness: 0.1")
    assert free.describe()[0].endswith("runs without torch")
    assert free.to_json()["needs_torch"] is False
    assert all(n["torch_free"] for n in free.to_json()["nodes"])
    graded = plan("gamma: 2.2")
    assert graded.describe()[0].endswith("imports torch for warm")
    assert graded.to_json()["needs_torch"] is True
    assert [n["id"] for n in graded.to_json()["nodes"] if not n["torch_free"]] == ["warm"]
