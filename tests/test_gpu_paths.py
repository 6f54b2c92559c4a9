"""The GPU fast paths, as far as a CPU can check them: batch sizing from measured memory, narrowing before the
download (bit-exact against the writer), the NVDEC option's fallbacks and errors, the NVENC choice of
``codec: auto``, and that CPU runs stay as they were. The tests at the end need a CUDA device (and torchcodec
for NVDEC) and are skipped elsewhere."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import diffusify
from diffusify.core.errors import PipelineError, RecipeError, UsageError
from diffusify.graph.validate import validate_file
from diffusify.io import codecs
from diffusify.io.pixels import PlanePacker
from diffusify.io.probe import probe
from diffusify.io.reader import VideoReader, nvdec_problem
from diffusify.ops.samples import narrow
from diffusify.processors.base import HostOutput
from diffusify.processors.spandrel import AUTO_BATCH_MOST, UpscaleSpandrel, fit_batch
from diffusify.runtime.engine import Engine, host_output
from tests._helpers import save_model, tiny_compact
from tests._media import framemd5, make_clip
from tests.conftest import ROOT, CollectSink

BUNDLED = ROOT / "weights" / "realesr-animevideov3-x2.safetensors"
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
GiB = 2**30


@pytest.fixture
def model(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    return save_model(tiny_compact(2), tmp_path / "compact.safetensors")


# ---- batch: auto ---------------------------------------------------------------------------------------------

def test_auto_batch_is_the_largest_that_fits_half_the_free_memory():
    assert fit_batch(2 * GiB, 40 * GiB) == AUTO_BATCH_MOST == 8  # room for 10: capped
    assert fit_batch(5 * GiB, 40 * GiB) == 4  # 20 GiB of 40 free
    assert fit_batch(5 * GiB, 39 * GiB) == 3
    assert fit_batch(30 * GiB, 40 * GiB) == 1  # not even one: 1 (tiling copes)
    assert fit_batch(1 * GiB, 10 * GiB, share=0.8, most=16) == 8
    assert fit_batch(0, 1 * GiB) == AUTO_BATCH_MOST  # nothing measured: the cap


def test_batch_takes_auto_or_1_to_64_with_one_clear_line(write_recipe, model):
    path = write_recipe(f"""
        version: 1
        nodes:
          src: {{type: pattern, with: {{width: 32, height: 24, frames: 2}}}}
          a:   {{type: upscale.spandrel, input: src, with: {{model: "{model}", batch: auto}}}}
          b:   {{type: upscale.spandrel, input: src, with: {{model: "{model}", batch: 0}}}}
          c:   {{type: upscale.spandrel, input: src, with: {{model: "{model}", batch: fast}}}}
          oa:  {{type: discard, input: a}}
          ob:  {{type: discard, input: b}}
          oc:  {{type: discard, input: c}}
    """)
    errors = [(p.path, p.message) for p in validate_file(path).errors]
    assert errors == [("nodes.b.with.batch", "must be auto or a whole number from 1 to 64 (got 0)"),
                      ("nodes.c.with.batch", "must be auto or a whole number from 1 to 64 (got 'fast')")]


def test_auto_batch_is_one_on_the_cpu_and_runs_like_batch_one(registry, write_recipe, model):
    def recipe(batch: str, name: str) -> str:
        return write_recipe(f"""
            version: 1
            nodes:
              src: {{type: pattern, with: {{kind: noise, width: 40, height: 24, frames: 3}}}}
              up:  {{type: upscale.spandrel, input: src, with: {{model: "{model}", tile: none, channels_last: false,
                     batch: {batch}}}}}
              out: {{type: test.collect, input: up, with: {{name: {name}}}}}
        """, f"{name}.yaml")

    summary = diffusify.run(recipe("auto", "auto"), registry=registry)
    diffusify.run(recipe("1", "one"), registry=registry)
    a, b = CollectSink.results["auto"], CollectSink.results["one"]
    assert len(a) == 3 and all(torch.equal(x.data, y.data) for x, y in zip(a, b, strict=True))
    up = next(n for n in summary["nodes"] if n["id"] == "up")
    assert up["notes"] == ["fp32, batch 1"]  # what it chose, in the summary; no CUDA stream or autotuning


# ---- narrowing before the download -----------------------------------------------------------------------------

def _awkward_floats(depth: int, count: int = 4000) -> torch.Tensor:
    """Random floats, exact halves after scaling (float32 values v with v * peak == k + 0.5 exactly), NaN, infinities
    and values out of [0, 1], as ``(3, H, W)``."""
    peak = 65535.0 if depth == 16 else 255.0
    g = torch.Generator().manual_seed(depth)
    k = torch.randint(0, int(peak), (count,), generator=g).float()
    ties = ((k + 0.5) / peak).float()
    ties = ties[ties * peak == k + 0.5]
    assert ties.numel() > count // 10  # the test really has ties to round
    values = torch.cat([torch.rand(count, generator=g), ties, torch.rand(64, generator=g) * 3 - 1,
                        torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, 1.0, 0.5 / peak, 1.5 / peak])])
    values = values[: values.numel() // 3 * 3]
    return values.view(3, 1, -1)


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_narrowing_first_gives_the_writers_own_bytes(depth, dtype):
    data = _awkward_floats(depth).to(dtype)
    high = depth == 16
    for channels in (1, 3, 4):
        frame = data.repeat(2, 1, 1)[:channels]
        samples = narrow(frame, depth)
        assert samples.dtype == (torch.uint16 if high else torch.uint8) and samples.shape == frame.shape
        for gray in (False, True):
            if gray and channels != 1:
                continue
            own = bytes(PlanePacker(high, gray=gray).pack(frame))
            assert bytes(PlanePacker(high, gray=gray).pack(samples)) == own, (channels, gray)


def test_narrow_rounds_half_to_even_like_the_writer():
    x = torch.tensor([0.5 / 255, 1.5 / 255, 2.5 / 255, float("nan"), -0.1, 1.2]).float()
    assert narrow(x, 8).tolist() == [0, 2, 2, 0, 0, 255]
    assert narrow(torch.tensor([7], dtype=torch.uint8), 16).tolist() == [7]  # samples pass as they are
    with pytest.raises(ValueError, match="8 or 16"):
        narrow(x, 10)


def _write_recipe_text(model: Path, out: Path, pix_fmt: str) -> str:
    return f"""
version: 1
nodes:
  src: {{type: pattern, with: {{kind: noise, width: 40, height: 24, frames: 4}}}}
  up:  {{type: upscale.spandrel, input: src, with: {{model: "{model}", tile: none}}}}
  out: {{type: video.write, input: up, with: {{path: "{out}", codec: ffv1, pix_fmt: {pix_fmt}}}}}
"""


@pytest.mark.parametrize("pix_fmt,depth", [("yuv444p", 8), ("yuv444p10le", 16)])
def test_a_producer_that_narrows_before_the_writer_changes_no_output_byte(tmp_path, model, pix_fmt, depth):
    """What a GPU node does before its download, run on the CPU: the node narrows to the writer's depth and the
    writer packs the samples; the encoded frames are those of the float path."""
    plain, narrowed = tmp_path / "float.mkv", tmp_path / "narrowed.mkv"
    diffusify.run(_write_recipe_text(model, plain, pix_fmt))
    p, _ = diffusify.plan(_write_recipe_text(model, narrowed, pix_fmt))
    engine = Engine(p)
    seen: list[torch.dtype] = []
    sink = engine.states["out"].processors[0]
    write = sink.write
    sink.write = lambda frame: (seen.append(frame.data.dtype), write(frame))  # type: ignore[method-assign]
    for proc in engine.states["up"].processors:
        proc.host_output = HostOutput(depth)
    engine.run()
    assert seen == [torch.uint16 if depth == 16 else torch.uint8] * 4
    assert framemd5(narrowed)[0] == framemd5(plain)[0]


def test_the_engine_hands_a_gpu_nodes_frames_over_narrowed_only_to_writers_on_the_cpu(tmp_path, model, registry):
    def decide(sinks: str, gpu: tuple[str, ...] = ("up",)) -> HostOutput | None:
        p, _ = diffusify.plan(f"""
version: 1
nodes:
  src: {{type: pattern, with: {{width: 40, height: 24, frames: 2}}}}
  up:  {{type: upscale.spandrel, input: src, with: {{model: "{model}"}}}}
{sinks}
""", registry=registry)
        for nid in gpu:  # placed as on a GPU machine; the rule reads only the plan
            p.nodes[nid].devices = ["cuda:0"]
        return host_output(p, "up")

    one = f'  out: {{type: video.write, input: up, with: {{path: "{tmp_path / "a.mkv"}"}}}}'
    deep = f'  ten: {{type: video.write, input: up, with: {{path: "{tmp_path / "b.mkv"}", pix_fmt: yuv420p10le}}}}'
    assert decide(one) == HostOutput(8)
    assert decide(deep) == HostOutput(16)
    assert decide(one + "\n" + deep) == HostOutput(None)  # two depths: the frames as they are
    assert decide(one + "\n  c: {type: test.collect, input: up}") == HostOutput(None)
    assert decide(one, gpu=("up", "out")) is None  # a consumer on the GPU: nothing to download
    assert decide(one, gpu=()) is None  # the node runs on the CPU
    matte = (f'  m:   {{type: mask, input: src}}\n  out: {{type: video.write, inputs: {{input: up, alpha: m}}, '
             f'with: {{path: "{tmp_path / "c.mov"}", codec: prores_ks}}}}')
    assert decide(matte.replace("input: src", "input: up")) == HostOutput(None)  # a matte is joined first


def test_cpu_runs_get_no_stream_and_no_hand_over(tmp_path, model):
    p, _ = diffusify.plan(_write_recipe_text(model, tmp_path / "o.mkv", "yuv444p"))
    engine = Engine(p)
    procs = [proc for st in engine.states.values() for proc in st.processors]
    assert all(proc.host_output is None for proc in procs)
    up = engine.states["up"].processors[0]
    up.use_cuda_stream()
    assert up.cuda_stream is None
    with up.on_cuda_stream():  # a no-op on the CPU
        pass
    engine.run()
    assert up.cuda_stream is None and up.batch_size == 1


# ---- NVDEC: decode auto|cpu|nvdec --------------------------------------------------------------------------------

def test_nvdec_takes_bt709_tagged_8bit_420_video_only(tmp_path):
    ok = make_clip(tmp_path / "ok.mp4", size="64x48", frames=3, color=("bt709", "tv"))
    assert nvdec_problem(probe(ok)) is None
    assert "high_bit_depth" in nvdec_problem(probe(ok), high_bit_depth=True)
    assert "deinterlaced" in nvdec_problem(probe(ok), deinterlace="on")
    untagged = make_clip(tmp_path / "untagged.mp4", size="64x48", frames=3)
    assert "tagged" in nvdec_problem(probe(untagged))
    full = make_clip(tmp_path / "full.mp4", size="64x48", frames=3, color=("bt709", "pc"))
    assert "yuvj420p" in nvdec_problem(probe(full))  # full range, as ffmpeg tags it
    wide = make_clip(tmp_path / "444.mp4", size="64x48", frames=3, pix_fmt="yuv444p", color=("bt709", "tv"))
    assert "yuv444p" in nvdec_problem(probe(wide))
    deep = make_clip(tmp_path / "10.mkv", size="64x48", frames=3, pix_fmt="yuv420p10le", color=("bt709", "tv"))
    assert "yuv420p10le" in nvdec_problem(probe(deep))
    png = make_clip(tmp_path / "png.mkv", size="64x48", frames=3, codec="png", pix_fmt="rgb24")
    assert "does not decode png" in nvdec_problem(probe(png))


def _read_recipe(write_recipe, clip: Path, decode: str, name: str = "r.yaml") -> str:
    return write_recipe(f"""
        version: 1
        nodes:
          src: {{type: video.read, with: {{path: "{clip}", decode: {decode}}}}}
          out: {{type: test.collect, input: src, with: {{name: {decode}}}}}
    """, name)


def test_explicit_nvdec_on_a_source_it_cannot_take_is_a_validation_error(tmp_path, write_recipe, registry):
    clip = make_clip(tmp_path / "c.mp4", size="64x48", frames=3)  # untagged: the GPU would pick BT.601
    v = validate_file(_read_recipe(write_recipe, clip, "nvdec"), registry=registry)
    [error] = v.errors
    assert error.path == "nodes.src.with.decode"
    assert error.message.startswith(f"decode: nvdec cannot decode {clip}: its colours are tagged untagged")
    assert "use decode: cpu" in error.message and "\n" not in error.message


@pytest.mark.skipif(importlib.util.find_spec("torchcodec") is not None, reason="torchcodec is installed here")
def test_explicit_nvdec_without_torchcodec_is_a_plan_error_naming_the_extra(tmp_path, write_recipe, registry):
    clip = make_clip(tmp_path / "c.mp4", size="64x48", frames=3, color=("bt709", "tv"))
    with pytest.raises(UsageError, match=r"node 'src': video.read needs torchcodec, which come with the 'gpu' "
                                         r"extra: pip install 'diffusify\[gpu\]'"):
        diffusify.plan(_read_recipe(write_recipe, clip, "nvdec"), registry=registry)


def test_decode_auto_falls_back_to_ffmpeg_with_a_note_and_the_same_frames(tmp_path, write_recipe, registry):
    clip = make_clip(tmp_path / "c.mp4", size="64x48", frames=4, color=("bt709", "tv"))
    summary = diffusify.run(_read_recipe(write_recipe, clip, "auto", "a.yaml"), registry=registry)
    diffusify.run(_read_recipe(write_recipe, clip, "cpu", "c.yaml"), registry=registry)
    auto, cpu = CollectSink.results["auto"], CollectSink.results["cpu"]
    assert len(auto) == 4 and all(torch.equal(a.data, c.data) for a, c in zip(auto, cpu, strict=True))
    [note] = next(n for n in summary["nodes"] if n["id"] == "src")["notes"]
    assert note == "decode auto: the ffmpeg pipe, since its consumers run on cpu, and NVDEC frames land on a GPU " \
                   "(give them one CUDA device)"


def test_explicit_nvdec_with_consumers_on_the_cpu_fails_before_the_first_frame(tmp_path, write_recipe, registry,
                                                                               monkeypatch):
    from diffusify.processors.video import VideoRead

    clip = make_clip(tmp_path / "c.mp4", size="64x48", frames=3, color=("bt709", "tv"))
    monkeypatch.setattr(VideoRead, "requirements", classmethod(lambda cls, params=None: ()))  # as if installed
    with pytest.raises(PipelineError) as info:
        diffusify.run(_read_recipe(write_recipe, clip, "nvdec"), registry=registry)
    assert "decode: nvdec cannot be used: its consumers run on cpu" in str(info.value)
    assert info.value.frame is None and "\n" not in str(info.value)


# ---- NVENC: codec auto -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("failure,depth,want,says", [
    (None, 8, "h264_nvenc", "codec auto: h264_nvenc (NVENC opens on this machine)"),
    (None, 10, "hevc_nvenc", "codec auto: hevc_nvenc (NVENC opens on this machine)"),
    ("OpenEncodeSessionEx failed: unsupported device (2): (no details)", 8, "libx264",
     "codec auto: libx264 on all {cores} cores: no NVENC on this GPU (data-centre GPUs such as the H100 and H200 "
     "have no video encoder); h264_nvenc: OpenEncodeSessionEx failed: unsupported device (2): (no details)"),
    ("Cannot load libcuda.so.1", 8, "libx264",
     "codec auto: libx264 on all {cores} cores: no NVIDIA driver here; h264_nvenc: Cannot load libcuda.so.1"),
])
def test_codec_auto_takes_nvenc_where_it_opens(monkeypatch, failure, depth, want, says):
    import os

    monkeypatch.setattr(codecs, "encoder_failure", lambda name: failure)
    monkeypatch.setattr(codecs, "available_encoders", lambda: frozenset({"h264_nvenc", "hevc_nvenc", "libx264"}))
    assert codecs.resolve_codec("auto", depth) == (want, says.format(cores=os.cpu_count()))
    assert codecs.resolve_codec("libx265", depth) == ("libx265", None)  # a named codec is left alone


def test_codec_auto_in_the_plan_and_the_run(tmp_path, monkeypatch):
    out = tmp_path / "o.mp4"
    text = f"""
version: 1
nodes:
  src: {{type: pattern, with: {{width: 64, height: 48, frames: 3}}}}
  out: {{type: video.write, input: src, with: {{path: "{out}", codec: auto, crf: 20}}}}
"""
    monkeypatch.setattr(codecs, "encoder_failure", lambda name: "OpenEncodeSessionEx failed: unsupported device")
    p, _ = diffusify.plan(text)
    line = next(x for x in p.describe() if x.strip().startswith("out"))
    assert f"{out}: libx264 yuv420p, crf 20 (codec auto: libx264 on all" in line
    assert "no NVENC on this GPU" in line
    summary = diffusify.run(text)
    assert probe(out).video_codec == "h264"
    [note] = next(n for n in summary["nodes"] if n["id"] == "out")["notes"]
    assert note.startswith("codec auto: libx264 on all")
    with pytest.raises(RecipeError, match="codec auto chooses the encoder on the machine that runs it"):
        diffusify.plan(text.replace("crf: 20", "preset: veryfast"))
    default = diffusify.plan(text.replace("codec: auto, ", ""), overwrite=True)[0]
    assert default.nodes["out"].params.codec == "libx264"  # the default stays libx264 everywhere


# ---- on a CUDA device ------------------------------------------------------------------------------------------

def _upscale_to_file(model: Path, out: Path, extra: str = "", frames: int = 6, replicas: int = 1) -> str:
    return f"""
version: 1
nodes:
  src: {{type: pattern, with: {{kind: noise, width: 64, height: 48, frames: {frames}}}}}
  up:  {{type: upscale.spandrel, input: src, with: {{model: "{model}", tile: none{extra}}}, replicas: {replicas}}}
  out: {{type: video.write, input: up, with: {{path: "{out}", codec: ffv1}}}}
"""


@cuda
def test_gpu_node_narrows_before_its_download_and_the_file_is_unchanged(tmp_path, model):
    narrowed, plain = tmp_path / "n.mkv", tmp_path / "p.mkv"
    p, _ = diffusify.plan(_upscale_to_file(model, narrowed, ", precision: fp32"), devices=["cuda:0"])
    engine = Engine(p)
    up = engine.states["up"].processors[0]
    assert up.host_output == HostOutput(8)
    engine.run()
    assert up.cuda_stream is not None
    p, _ = diffusify.plan(_upscale_to_file(model, plain, ", precision: fp32"), devices=["cuda:0"])
    engine = Engine(p)
    for proc in engine.states["up"].processors:
        proc.host_output = None  # the writer narrows the float frames itself, on the GPU
    engine.run()
    assert framemd5(narrowed)[0] == framemd5(plain)[0]


@cuda
def test_two_replicas_on_their_own_streams_keep_order_and_values(registry, write_recipe, model):
    text = f"""
        version: 1
        nodes:
          src: {{type: pattern, with: {{kind: noise, width: 96, height: 64, frames: 24}}}}
          up:  {{type: upscale.spandrel, input: src, with: {{model: "{model}", tile: none, precision: fp32,
                 batch: BATCH}}, replicas: REPLICAS}}
          big: {{type: resize, input: up, with: {{scale: 0.5}}}}
          out: {{type: test.collect, input: big, with: {{name: NAME}}}}
    """
    diffusify.run(write_recipe(text.replace("BATCH", "1").replace("REPLICAS", "1").replace("NAME", "one"), "a.yaml"),
                  devices=["cuda:0"], registry=registry)
    diffusify.run(write_recipe(text.replace("BATCH", "3").replace("REPLICAS", "2").replace("NAME", "two"), "b.yaml"),
                  devices=["cuda:0"], registry=registry)
    one, two = CollectSink.results["one"], CollectSink.results["two"]
    assert [f.index for f in two] == list(range(24))
    assert max((a.data.float().cpu() - b.data.float().cpu()).abs().max().item()
               for a, b in zip(one, two, strict=True)) < 1e-4


@cuda
def test_auto_batch_on_the_gpu_measures_and_says_what_it_chose(model):
    from diffusify.core.stream import StreamInfo
    from diffusify.processors.base import PlanContext

    p = UpscaleSpandrel.Params(model=str(model), tile="none", batch="auto")
    src = StreamInfo(width=320, height=240)
    proc = UpscaleSpandrel("up", p, inputs={"input": src},
                           output=UpscaleSpandrel.infer_stream(p, {"input": src}, PlanContext()), device="cuda:0")
    proc.setup()
    assert 1 <= proc.batch_size <= AUTO_BATCH_MOST
    assert torch.backends.cudnn.benchmark
    assert f"batch {proc.batch_size}, cuDNN autotuning, batch auto: " in proc.notes[0]


@cuda
def test_compiled_model_never_recompiles_on_the_streams_tail(tmp_path, model, monkeypatch):
    import torch._dynamo

    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    out = tmp_path / "c.mkv"
    summary = diffusify.run(_upscale_to_file(model, out, ", batch: 4, compile: true", frames=7),
                            devices=["cuda:0"])
    assert summary["frames"] == 7 and len(framemd5(out)[0]) == 7
    assert any("compiled in" in n for n in next(n for n in summary["nodes"] if n["id"] == "up")["notes"])


@cuda
@pytest.mark.skipif(importlib.util.find_spec("torchcodec") is None, reason="needs torchcodec")
def test_nvdec_frames_are_close_to_the_ffmpeg_paths(tmp_path):
    from diffusify.io.reader import NvdecReader

    clip = make_clip(tmp_path / "c.mp4", size="320x240", frames=12, color=("bt709", "tv"))
    info = probe(clip)
    with VideoReader(str(clip), info, start=2, native=True) as r:
        ref = [f for f in r]
    with NvdecReader(str(clip), info, start=2, device="cuda:0", native=True) as r:
        got = [f for f in r]
    assert [(f.index, f.pts) for f in got] == [(f.index, f.pts) for f in ref]
    a = torch.stack([torch.from_numpy(f.data).float() for f in ref])  # the CPU reader's samples: numpy
    b = torch.stack([f.data.float().cpu() for f in got])
    assert got[0].data.is_cuda and got[0].data.dtype == torch.uint8
    mse = ((a - b) ** 2).mean().item()
    assert 10 * torch.log10(torch.tensor(255.0**2 / max(mse, 1e-9))).item() > 35  # a few levels, not a matrix off


def test_devices_are_found_without_torch_where_cuda_cannot_run(monkeypatch):
    """No NVIDIA device node (or CUDA_VISIBLE_DEVICES empty): no CUDA, and planning a CPU recipe needs no torch."""
    from diffusify.runtime import plan as planning

    monkeypatch.setattr(planning.sys, "platform", "linux")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(planning.os, "listdir", lambda _d: ["null", "tty"])
    monkeypatch.setattr(planning.os.path, "exists", lambda _p: False)
    assert not planning._may_have_cuda()
    monkeypatch.setattr(planning.os, "listdir", lambda _d: ["null", "nvidia0", "nvidiactl"])
    assert planning._may_have_cuda()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not planning._may_have_cuda()


def test_planning_a_cpu_recipe_does_not_import_torch(tmp_path):
    import os
    import subprocess
    import sys

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{ROOT / 'examples' / 'media' / 'sample.mp4'}"}}}}
  out: {{type: video.write, input: src, with: {{path: "{tmp_path / 'o.mkv'}"}}}}
""")
    code = ("import sys; from diffusify import api; api.plan(sys.argv[1]); "
            "print('torch' in sys.modules)")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # as on a machine without a GPU, whatever this one has
    out = subprocess.run([sys.executable, "-c", code, str(recipe)], capture_output=True, text=True, env=env,
                         check=True).stdout.strip()
    assert out == "False"
