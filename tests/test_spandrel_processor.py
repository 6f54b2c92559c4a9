"""spandrel models inside the engine: plan-time scale, exact outputs, tiling without seams, OOM backoff."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from diffusify import run
from diffusify.graph.validate import validate_file
from diffusify.processors.spandrel import OutOfMemory, UpscaleSpandrel, load_descriptor
from tests._helpers import save_model, tiny_compact, tiny_esrgan, tiny_span
from tests.conftest import ROOT, CollectSink

BUNDLED = ROOT / "weights" / "realesr-animevideov3-x2.safetensors"
SAMPLE = ROOT / "examples" / "media" / "sample.png"


def _compact(tmp_path: Path, scale: int = 2, name: str = "compact.safetensors") -> Path:
    torch.manual_seed(1)
    return save_model(tiny_compact(scale), tmp_path / name)


def _esrgan(tmp_path: Path) -> Path:
    torch.manual_seed(2)
    return save_model(tiny_esrgan(4), tmp_path / "esrgan.pth")


def _span(tmp_path: Path) -> Path:
    torch.manual_seed(3)
    return save_model(tiny_span(2), tmp_path / "span.safetensors")


def _recipe(write_recipe, model: Path, extra: str = "", size: str = "width: 40, height: 24") -> str:
    return write_recipe(f"""
        version: 1
        nodes:
          src: {{type: pattern, with: {{kind: noise, {size}, frames: 3}}}}
          up:  {{type: upscale.spandrel, input: src, with: {{model: "{model}"{extra}}}}}
          out: {{type: test.collect, input: up}}
    """)


@pytest.mark.parametrize("maker,scale", [(_compact, 2), (_esrgan, 4), (_span, 2)])
def test_random_models_run_through_the_users_path(tmp_path, registry, write_recipe, maker, scale):
    model = maker(tmp_path)
    path = _recipe(write_recipe, model, ", tile: none, border: 0")
    v = validate_file(path, registry=registry)
    assert v.ok, v.problems
    assert (v.streams["up"].width, v.streams["up"].height) == (40 * scale, 24 * scale)
    run(path, registry=registry)
    frames = CollectSink.results["collected"]
    assert len(frames) == 3
    desc = load_descriptor(str(model), "cpu")
    x = frames[0].data
    src = torch.rand(3, 24, 40, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = desc.model(src.unsqueeze(0)).clamp(0, 1)[0]
    assert x.shape == expected.shape
    assert torch.allclose(x, expected, atol=1e-5)


def test_merge_with_upscaled_branch_is_a_plan_time_error(tmp_path, registry, write_recipe):
    model = _compact(tmp_path)
    path = write_recipe(f"""
        version: 1
        nodes:
          src: {{type: pattern, with: {{width: 40, height: 24, frames: 3}}}}
          up:  {{type: upscale.spandrel, input: src, with: {{model: "{model}"}}}}
          mix: {{type: compose.blend, inputs: {{a: src, b: up}}}}
          out: {{type: test.collect, input: mix}}
    """)
    v = validate_file(path, registry=registry)
    assert any("resolutions differ: a is 40x24, b is 80x48" in p.message for p in v.errors)


def test_batch_and_replicas_match_single_frame_output(tmp_path, registry, write_recipe):
    model = _compact(tmp_path)
    run(_recipe(write_recipe, model, ", tile: none"), registry=registry)
    single = [f.data for f in CollectSink.results["collected"]]
    path = write_recipe(
        f"""
        version: 1
        nodes:
          src: {{type: pattern, with: {{kind: noise, width: 40, height: 24, frames: 3}}}}
          up:  {{type: upscale.spandrel, input: src, with: {{model: "{model}", tile: none, batch: 2}}, replicas: 2}}
          out: {{type: test.collect, input: up}}
    """,
        name="batched.yaml",
    )
    run(path, registry=registry)
    batched = [f.data for f in CollectSink.results["collected"]]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(single, batched, strict=False))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def _load_png(path: Path) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255


def _processor(model: Path, stream_w: int, stream_h: int, **params) -> UpscaleSpandrel:
    from diffusify.core.stream import StreamInfo
    from diffusify.processors.base import PlanContext

    p = UpscaleSpandrel.Params(model=str(model), **params)
    src = StreamInfo(width=stream_w, height=stream_h)
    out = UpscaleSpandrel.infer_stream(p, {"input": src}, PlanContext())
    proc = UpscaleSpandrel("up", p, inputs={"input": src}, output=out, device="cpu")
    proc.setup()
    return proc


def test_tiled_output_matches_untiled_on_real_content():
    img = _load_png(SAMPLE)[:, :192, :256]
    h, w = img.shape[-2:]
    whole = _processor(BUNDLED, w, h, tile="none")._infer(img.unsqueeze(0))
    tiled = _processor(BUNDLED, w, h, tile=64, overlap=16)._infer(img.unsqueeze(0))
    assert tiled.shape == whole.shape == (1, 3, 2 * h, 2 * w)
    value = psnr(tiled, whole)
    assert value >= 45, f"tiled vs untiled PSNR {value:.1f} dB"


def test_out_of_memory_halves_the_tile_and_keeps_it(tmp_path):
    model = _compact(tmp_path)
    proc = _processor(model, 256, 192, tile=256, min_tile=64, border=0)
    real = proc._run_model
    seen: list[int] = []

    def flaky(x):
        seen.append(x.shape[-1])
        if max(x.shape[-2:]) > 64:
            raise OutOfMemory("injected: CUDA out of memory")
        return real(x)

    proc._run_model = flaky  # the single place the network is called
    img = torch.rand(1, 3, 192, 256)
    out = proc._infer(img)
    assert out.shape == (1, 3, 384, 512)
    assert proc.tile == 64
    seen.clear()
    proc._infer(img)
    assert seen and max(seen) == 64, "the smaller tile must stick for later frames"
    proc._run_model = real
    reference = _processor(model, 256, 192, tile=64, min_tile=64, border=0)._infer(img)
    assert torch.allclose(out, reference, atol=1e-5)


def test_out_of_memory_below_min_tile_fails_clearly(tmp_path):
    model = _compact(tmp_path)
    proc = _processor(model, 128, 128, tile=128, min_tile=64, border=0)

    def always(x):
        raise OutOfMemory("injected")

    proc._run_model = always
    with pytest.raises(OutOfMemory):
        proc._infer(torch.rand(1, 3, 128, 128))


@pytest.mark.parametrize("faster", [True, False])
def test_channels_last_auto_keeps_the_layout_measured_faster(tmp_path, monkeypatch, faster):
    """auto times both layouts at setup and keeps the faster one; either way the frames are the same."""
    import diffusify.processors.spandrel as module

    model = _compact(tmp_path)
    calls: list[bool] = []
    real = torch.nn.Module.__call__

    def timed(net, x, *a, **k):  # the channels-last calls "take" 1 s or 3 s, the default ones 2 s
        calls.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return real(net, x, *a, **k)

    clock = iter(range(10_000))
    monkeypatch.setattr(torch.nn.Module, "__call__", timed)
    monkeypatch.setattr(module.time, "perf_counter",
                        lambda: next(clock) * (2 if not calls[-1] else (1 if faster else 3)) if calls else 0)
    proc = _processor(model, 64, 48, tile="none", border=0, channels_last="auto")
    monkeypatch.undo()
    assert proc.channels_last is faster and any(calls) and not all(calls)
    img = torch.rand(1, 3, 48, 64)
    forced = _processor(model, 64, 48, tile="none", border=0, channels_last=not faster)
    assert torch.allclose(proc._infer(img), forced._infer(img), atol=1e-5)
