"""The same pipelines on a CUDA GPU: results agree with the CPU, frames cross devices correctly, decoded bytes go
to the GPU before widening, GPU memory is reported. Skipped where no CUDA device is visible."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from diffusify import run
from diffusify.api import plan
from diffusify.io.reader import VideoReader
from tests._media import count_decodable_frames, make_clip
from tests.conftest import ROOT, CollectSink

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

BUNDLED = ROOT / "weights" / "realesr-animevideov3-x2.safetensors"


def _frames(name: str) -> torch.Tensor:
    return torch.stack([f.data.float().cpu() for f in CollectSink.results[name]])


def test_reader_widens_on_the_gpu_and_matches_the_cpu(tmp_path: Path):
    clip = make_clip(tmp_path / "c.mp4", size="96x64", frames=6)
    from diffusify.io.probe import probe

    info = probe(clip)
    with VideoReader(str(clip), info, device="cpu") as r:
        cpu = [f.data for f in r]
    with VideoReader(str(clip), info, device="cuda") as r:
        gpu = [f.data for f in r]
    assert len(gpu) == len(cpu) == 6
    assert all(g.device.type == "cuda" and g.dtype == torch.float32 for g in gpu)
    # the same bytes widened on either side: equal up to float rounding (CUDA divides by a reciprocal)
    assert max((g.cpu() - c).abs().max().item() for g, c in zip(gpu, cpu, strict=True)) <= 1e-6


def test_graph_on_gpu_equals_graph_on_cpu(registry, write_recipe, tmp_path: Path):
    clip = make_clip(tmp_path / "c.mp4", size="128x72", frames=8)
    text = f"""
        version: 1
        nodes:
          src:  {{type: video.read, with: {{path: "{clip}"}}}}
          warm: {{type: color, input: src, with: {{brightness: 0.05, saturation: 1.3, gamma: 1.1}}}}
          big:  {{type: resize, input: src, with: {{scale: 2, method: lanczos}}}}
          back: {{type: resize, input: big, with: {{width: 128, height: 72, method: area}}}}
          mix:  {{type: compose.blend, inputs: {{a: warm, b: back}}, with: {{weight: 0.3}}}}
          out:  {{type: test.collect, input: mix, with: {{name: NAME}}}}
    """
    cpu_recipe = write_recipe(text.replace("NAME", "cpu"), "cpu.yaml")
    gpu_recipe = write_recipe(text.replace("NAME", "gpu"), "gpu.yaml")
    p, _ = plan(gpu_recipe, devices=["cuda:0"], registry=registry)
    # the decoder hands its bytes to the GPU, where its consumers run
    assert p.nodes["src"].devices == ["cpu"] and p.nodes["src"].output_device == "cuda:0"
    assert p.nodes["warm"].devices == ["cuda:0"]
    run(cpu_recipe, devices=["cpu"], registry=registry)
    summary = run(gpu_recipe, devices=["cuda:0"], registry=registry)
    a, b = _frames("cpu"), _frames("gpu")
    assert a.shape == b.shape == (8, 3, 72, 128)
    assert (a - b).abs().max().item() < 2e-4
    assert summary["peak_gpu_bytes"]["cuda:0"] > 0


def test_replicas_across_cpu_and_gpu_keep_order_and_values(registry, write_recipe):
    recipe = write_recipe("""
        version: 1
        nodes:
          src: {type: pattern, with: {kind: moving, width: 64, height: 48, frames: 24}}
          g:   {type: color, input: src, replicas: 2, device: [cpu, "cuda:0"], with: {contrast: 1.2}}
          c:   {type: crop, input: g, device: cpu, with: {x: 2, y: 2, width: 60, height: 44}}
          out: {type: test.collect, input: c, with: {name: mixed}}
    """)
    run(recipe, registry=registry)
    frames = CollectSink.results["mixed"]
    assert [f.index for f in frames] == list(range(24))
    ref = write_recipe("""
        version: 1
        nodes:
          src: {type: pattern, with: {kind: moving, width: 64, height: 48, frames: 24}}
          g:   {type: color, input: src, with: {contrast: 1.2}}
          c:   {type: crop, input: g, with: {x: 2, y: 2, width: 60, height: 44}}
          out: {type: test.collect, input: c, with: {name: ref}}
    """, "ref.yaml")
    run(ref, devices=["cpu"], registry=registry)
    assert (_frames("mixed") - _frames("ref")).abs().max().item() < 1e-5


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_bundled_model_half_precision_on_gpu_matches_fp32_on_cpu(registry, write_recipe, precision):
    text = f"""
        version: 1
        nodes:
          src: {{type: image.read, with: {{path: "{ROOT / 'examples' / 'media' / 'sample.png'}"}}}}
          up:  {{type: upscale.spandrel, input: src, with: {{model: "{BUNDLED}", precision: PREC}}}}
          out: {{type: test.collect, input: up, with: {{name: NAME}}}}
    """
    run(write_recipe(text.replace("PREC", "fp32").replace("NAME", "cpu"), "a.yaml"), devices=["cpu"],
        registry=registry)
    run(write_recipe(text.replace("PREC", precision).replace("NAME", "gpu"), "b.yaml"), devices=["cuda:0"],
        registry=registry)
    a, b = _frames("cpu"), _frames("gpu")
    assert a.shape == b.shape
    mse = ((a - b) ** 2).mean().item()
    psnr = 10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))).item()
    assert psnr > (40.0 if precision == "fp16" else 32.0), psnr


def test_tiled_upscale_on_gpu_matches_whole_frame(registry, write_recipe):
    text = f"""
        version: 1
        nodes:
          src: {{type: image.read, with: {{path: "{ROOT / 'examples' / 'media' / 'sample.png'}"}}}}
          up:  {{type: upscale.spandrel, input: src, with: {{model: "{BUNDLED}", precision: fp32, TILE}}}}
          out: {{type: test.collect, input: up, with: {{name: NAME}}}}
    """
    run(write_recipe(text.replace("TILE", "tile: none").replace("NAME", "whole"), "a.yaml"), devices=["cuda:0"],
        registry=registry)
    run(write_recipe(text.replace("TILE", "tile: 96, overlap: 16").replace("NAME", "tiled"), "b.yaml"),
        devices=["cuda:0"], registry=registry)
    a, b = _frames("whole"), _frames("tiled")
    assert a.shape == b.shape and a.shape[-1] > 2 * 96
    # seams would show as lines of errors along the tile borders
    mse = ((a - b) ** 2).mean().item()
    assert 10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))).item() >= 45


def test_video_file_through_the_gpu_to_an_encoder(write_recipe, tmp_path: Path):
    clip = make_clip(tmp_path / "c.mp4", size="160x96", frames=12)
    out = tmp_path / "o.mkv"
    recipe = write_recipe(f"""
        version: 1
        nodes:
          src: {{type: video.read, with: {{path: "{clip}"}}}}
          up:  {{type: upscale.spandrel, input: src, with: {{model: "{BUNDLED}"}}}}
          out: {{type: video.write, input: up, with: {{path: "{out}", crf: 18}}}}
    """)
    summary = run(recipe, devices=["cuda:0"])
    assert summary["frames"] == 12
    assert count_decodable_frames(out) == 12


def test_cheap_nodes_keep_samples_native_on_the_gpu_as_on_the_cpu(registry, write_recipe, tmp_path: Path):
    """Colour tables, the blend's pair table, a diff and a nearest resize on 8-bit samples on the GPU: the same
    samples as on the CPU (tables made on the frame's device)."""
    clip = make_clip(tmp_path / "c.mp4", size="128x72", frames=4)
    text = f"""
        version: 1
        nodes:
          src:  {{type: video.read, with: {{path: "{clip}"}}}}
          warm: {{type: color, input: src, with: {{brightness: 0.05, gamma: 1.1}}}}
          big:  {{type: resize, input: src, with: {{scale: 2, method: nearest}}}}
          back: {{type: resize, input: big, with: {{width: 128, height: 72, method: nearest}}}}
          mix:  {{type: compose.blend, inputs: {{a: warm, b: back}}, with: {{weight: 0.3}}}}
          diff: {{type: compose.diff, inputs: {{a: mix, b: src}}}}
          out:  {{type: test.collect, input: diff, with: {{name: NAME}}}}
    """
    run(write_recipe(text.replace("NAME", "cpu"), "cpu.yaml"), devices=["cpu"], registry=registry)
    run(write_recipe(text.replace("NAME", "gpu"), "gpu.yaml"), devices=["cuda:0"], registry=registry)
    a, b = _frames("cpu"), _frames("gpu")
    assert a.shape == b.shape == (4, 3, 72, 128)
    assert (a - b).abs().max().item() <= 1e-6  # the same samples (a level is 1/255), widened on either device
