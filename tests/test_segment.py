"""Segmentation models through the ``segment`` node (the bundled selfie models on a real photograph; tiny random
transformers instance/panoptic models), and mattes written as alpha channels or as gray video."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import diffusify
from diffusify.core.errors import UsageError
from diffusify.graph.validate import validate_text
from tests.conftest import CollectSink

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "segmentation"
PHOTO = FIXTURES / "astronaut.jpg"
REFERENCE = FIXTURES / "astronaut_person.png"

pytest.importorskip("ai_edge_litert")


def _collect(registry, text: str, name: str = "collected") -> list:
    diffusify.run(text, registry=registry)
    return CollectSink.results.pop(name)


def _iou(mask: torch.Tensor, reference: np.ndarray) -> float:
    a = mask.numpy() >= 0.5
    return float((a & reference).sum() / (a | reference).sum())


def _photo_recipe(model: str = "", extra: str = "") -> str:
    with_model = f"model: {model}, " if model else ""
    return f"""
version: 1
nodes:
  src: {{type: image.read, with: {{path: "{PHOTO}"}}}}
  who: {{type: segment, input: src, with: {{{with_model}{extra}}}}}
  out: {{type: test.collect, input: who}}
"""


def test_the_bundled_model_covers_the_person_and_not_the_background(registry):
    reference = np.asarray(Image.open(REFERENCE)) > 0
    mask = _collect(registry, _photo_recipe())[0].data
    assert mask.shape == (1, 512, 512) and mask.dtype == torch.float32
    assert 0 <= float(mask.min()) and float(mask.max()) <= 1
    assert _iou(mask[0], reference) >= 0.9
    # soft probabilities, not a hard cut, unless asked
    assert ((mask > 0.05) & (mask < 0.95)).any()
    hard = _collect(registry, _photo_recipe(extra="threshold: 0.5"))[0].data
    assert set(hard.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(hard, (mask >= 0.5).float())


def test_the_landscape_variant_and_the_background_class(registry):
    reference = np.asarray(Image.open(REFERENCE)) > 0
    fg = _collect(registry, _photo_recipe("selfie-segmentation-landscape"))[0].data
    assert _iou(fg[0], reference) >= 0.85  # a square photo squeezed into 256x144: a little coarser
    bg = _collect(registry, _photo_recipe("selfie-segmentation-landscape", "classes: [background]"))[0].data
    assert torch.allclose(bg, 1 - fg, atol=1e-6)


def test_the_selfie_models_classes_are_checked_at_validation():
    v = validate_text(_photo_recipe(extra="classes: [foregound]").replace("test.collect", "discard"))
    assert any("the model has no class 'foregound' (did you mean 'foreground'?) (its classes: background, "
               "foreground)" in p.format() for p in v.errors), [p.format() for p in v.errors]
    v = validate_text(_photo_recipe(extra="instances: 1").replace("test.collect", "discard"))
    assert any(p.path.endswith("instances") and "instances needs an instance or panoptic model" in p.message
               for p in v.errors), [p.format() for p in v.errors]


def test_a_missing_runtime_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ai_edge_litert"
                        else real(name, *a))
    with pytest.raises(UsageError, match=r"segment needs ai_edge_litert.*pip install 'diffusify\[segment\]'"):
        diffusify.plan(_photo_recipe().replace("test.collect", "discard"))


def test_a_mask_on_a_video_port_is_a_located_error():
    v = validate_text("""
version: 1
nodes:
  src: {type: pattern, with: {width: 64, height: 48, frames: 2}}
  who: {type: segment, input: src}
  up: {type: sharpen, input: who}
  out: {type: discard, input: up}
""")
    [problem] = [p for p in v.errors if "port 'input' of sharpen takes video frames, but 'who' gives a mask" in
                 p.message]
    assert problem.line == 6


# ---- transformers instance/panoptic (query-based) models ---------------------------------------------------------


def _build_mask2former(folder: Path) -> None:
    """A randomly initialised Mask2Former (Swin backbone) with the classes person, car, sky."""
    from transformers import (
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        Mask2FormerImageProcessor,
        SwinConfig,
    )

    labels = {0: "person", 1: "car", 2: "sky"}
    backbone = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, image_size=64,
                          out_features=["stage1", "stage2", "stage3", "stage4"])
    cfg = Mask2FormerConfig(backbone_config=backbone, num_queries=6, hidden_dim=32, feature_size=32,
                            mask_feature_size=32, encoder_layers=1, decoder_layers=2, num_attention_heads=2,
                            encoder_feedforward_dim=64, dim_feedforward=64, num_labels=3, id2label=labels,
                            label2id={v: k for k, v in labels.items()}, use_pretrained_backbone=False)
    torch.manual_seed(0)
    Mask2FormerForUniversalSegmentation(cfg).save_pretrained(folder)
    Mask2FormerImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=32).save_pretrained(folder)


def _build_detr(folder: Path) -> None:
    """A randomly initialised DETR panoptic model (transformers' own ResNet backbone) with the same classes."""
    from transformers import DetrConfig, DetrForSegmentation, DetrImageProcessor, ResNetConfig

    labels = {0: "person", 1: "car", 2: "sky"}
    backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], layer_type="basic",
                            out_features=["stage1", "stage2", "stage3", "stage4"])
    cfg = DetrConfig(use_timm_backbone=False, backbone_config=backbone, use_pretrained_backbone=False, d_model=32,
                     encoder_layers=1, decoder_layers=1, encoder_attention_heads=8, decoder_attention_heads=8,
                     encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=6, num_labels=3, id2label=labels,
                     label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    DetrForSegmentation(cfg).eval().save_pretrained(folder)
    DetrImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}).save_pretrained(folder)


@pytest.fixture(scope="module", params=["mask2former", "detr"])
def query_model(request, tmp_path_factory) -> Path:
    """A tiny random instance/panoptic model folder of each family the test is run for."""
    pytest.importorskip("scipy")  # transformers builds these models' matchers with it
    folder = tmp_path_factory.mktemp(request.param)
    {"mask2former": _build_mask2former, "detr": _build_detr}[request.param](folder)
    return folder


def _reference_outputs(folder: Path, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities (Q, C) and mask probabilities (Q, h, w) for frame ``x``, prepared by hand: shortest edge
    64 (a 48x72 frame becomes 64x96, already a multiple of 32), ImageNet mean and std."""
    from transformers import AutoModelForUniversalSegmentation

    net = AutoModelForUniversalSegmentation.from_pretrained(folder).eval()
    y = torch.nn.functional.interpolate(x[None], size=(64, 96), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.inference_mode():
        out = net(pixel_values=(y - mean) / std)
    if hasattr(out, "class_queries_logits"):  # Mask2Former
        return out.class_queries_logits[0].softmax(-1)[:, :-1], out.masks_queries_logits[0].sigmoid()
    return out.logits[0].softmax(-1)[:, :-1], out.pred_masks[0].sigmoid()  # DETR


def _pattern_recipe(folder: Path, extra: str) -> str:
    return f"""
version: 1
nodes:
  src: {{type: pattern, with: {{kind: moving, width: 72, height: 48, frames: 2}}}}
  who: {{type: segment, input: src, with: {{model: "{folder}", {extra}}}}}
  out: {{type: test.collect, input: who}}
"""


def _pattern_frame(index: int) -> torch.Tensor:
    from diffusify.processors.synthetic import TestPattern
    from tests._helpers import make_processor

    pattern = make_processor(TestPattern, {"kind": "moving", "width": 72, "height": 48, "frames": 2})
    return pattern._draw(index, 72, 48, torch.device("cpu"))


def _resized(mask: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.interpolate(mask[None, None], size=(48, 72), mode="bilinear",
                                           align_corners=False)[0, 0].clamp(0, 1)


def test_a_panoptic_model_gives_the_chosen_classes_share_of_each_pixel(registry, query_model):
    got = _collect(registry, _pattern_recipe(query_model, "classes: [person, sky]"))
    assert len(got) == 2 and got[1].data.shape == (1, 48, 72)
    probs, masks = _reference_outputs(query_model, _pattern_frame(1))
    per_class = torch.einsum("qc,qhw->chw", probs, masks)
    want = _resized((per_class[0] + per_class[2]) / per_class.sum(0))
    assert torch.allclose(got[1].data[0], want, atol=1e-4)
    # every class together covers everything
    every = _collect(registry, _pattern_recipe(query_model, "classes: [person, car, sky]"))
    assert torch.allclose(every[1].data, torch.ones_like(every[1].data), atol=1e-4)


def test_instances_keep_the_best_segments_of_the_chosen_class(registry, query_model):
    probs, masks = _reference_outputs(query_model, _pattern_frame(0))
    scores, labels = probs.max(-1)
    cls_id = next((c for c in range(3) if int((labels == c).sum()) >= 2), None)
    assert cls_id is not None, "the random model predicts no class for two queries"
    name = ("person", "car", "sky")[cls_id]
    ranked = [q for q in torch.argsort(scores, descending=True).tolist() if labels[q] == cls_id]
    got = _collect(registry, _pattern_recipe(query_model, f"classes: [{name}], instances: 1, min_score: 0"))
    assert torch.allclose(got[0].data[0], _resized(masks[ranked[0]]), atol=1e-4)
    two = _collect(registry, _pattern_recipe(query_model, f"classes: [{name}], instances: 2, min_score: 0"))
    assert torch.allclose(two[0].data[0], _resized(masks[ranked[:2]].amax(0)), atol=1e-4)
    # a score no segment reaches keeps nothing
    none = _collect(registry, _pattern_recipe(query_model, f"classes: [{name}], instances: 2, min_score: 1"))
    assert float(none[0].data.abs().max()) == 0


def test_a_panoptic_models_class_names_are_checked_at_validation(query_model):
    v = validate_text(_pattern_recipe(query_model, "classes: [persn]").replace("test.collect", "discard"))
    assert any("the model has no class 'persn' (did you mean 'person'?) (its classes: person, car, sky)"
               in p.format() for p in v.errors)


# ---- mattes out --------------------------------------------------------------------------------------------------


def _decode(path: Path, pix_fmt: str, width: int, height: int, dtype=np.uint8) -> np.ndarray:
    """Every frame of ``path`` as ``pix_fmt`` samples, decoded by the ffmpeg binary: (frames, planes, H, W)."""
    import imageio_ffmpeg

    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", pix_fmt, "-"], capture_output=True, check=True).stdout
    planes = {"gbrap": 4, "gbrap16le": 4, "gray": 1, "gray16le": 1}[pix_fmt]
    return np.frombuffer(raw, dtype).reshape(-1, planes, height, width)


MATTE = """
version: 1
nodes:
  src: {type: pattern, with: {kind: moving, width: 64, height: 48, frames: 3}}
  matte: {type: mask, input: src}
  out: {type: OUT, inputs: {input: src, alpha: matte}, with: {path: "PATH", SETTINGS}}
  keep: {type: test.collect, input: matte}
"""


@pytest.mark.parametrize("codec,name", [("prores_ks", "matte.mov"), ("ffv1", "matte.mkv")])
def test_a_matte_written_as_the_alpha_of_a_video_decodes_back(registry, tmp_path, codec, name):
    path = tmp_path / name
    text = MATTE.replace("OUT", "video.write").replace("PATH", str(path)).replace("SETTINGS", f"codec: {codec}")
    matte = torch.stack([f.data[0] for f in _collect(registry, text)]).numpy()
    if codec == "prores_ks":  # ProRes 4444 with a 16-bit alpha plane, fed 16-bit samples
        alpha = _decode(path, "gbrap16le", 64, 48, np.uint16)[:, 3].astype(np.float64) / 65535
        assert alpha.shape[0] == 3 and np.abs(alpha - matte).max() <= 1 / 1024
    else:  # FFV1 yuva444p: 8-bit alpha, lossless
        alpha = _decode(path, "gbrap", 64, 48)[:, 3]
        assert alpha.shape[0] == 3 and np.array_equal(alpha, np.round(matte * 255).astype(np.uint8))


def test_alpha_in_16_bit_png_and_a_mask_as_gray_video(registry, tmp_path):
    folder = tmp_path / "rgba"
    text = MATTE.replace("OUT", "image.write").replace("PATH", str(folder)).replace("SETTINGS", "bit_depth: 16")
    text += f"""  gray: {{type: video.write, input: matte, with: {{path: "{tmp_path / 'gray.mkv'}", codec: ffv1,
                                                          pix_fmt: gray16le}}}}
"""
    matte = torch.stack([f.data[0] for f in _collect(registry, text)])
    images = sorted(folder.glob("*.png"))
    assert len(images) == 3
    # the IHDR chunk: bit depth 16, colour type 6 (RGB with alpha)
    assert all(p.read_bytes()[24:26] == bytes([16, 6]) for p in images)
    alpha = _decode(folder / "frame_%06d.png", "gbrap16le", 64, 48, np.uint16)[:, 3].astype(np.float32) / 65535
    assert np.abs(alpha - matte.numpy()).max() <= 0.5 / 65535 + 1e-7
    gray = _decode(tmp_path / "gray.mkv", "gray16le", 64, 48, np.uint16)[:, 0].astype(np.float32) / 65535
    assert np.abs(gray - matte.numpy()).max() <= 0.5 / 65535 + 1e-7


def test_alpha_problems_are_located_validation_errors(tmp_path):
    text = MATTE.replace("OUT", "video.write").replace("PATH", str(tmp_path / "x.mp4")).replace(
        "SETTINGS", "codec: libx264").replace("test.collect", "discard")
    v = validate_text(text)
    assert any("libx264 cannot store an alpha channel; use prores_ks in a .mov (ProRes 4444) or ffv1" in p.message
               and p.path.endswith("codec") for p in v.errors), [p.format() for p in v.errors]
    text = MATTE.replace("OUT", "video.write").replace("PATH", str(tmp_path / "x.mov")).replace(
        "SETTINGS", "codec: prores_ks, preset: hq").replace("test.collect", "discard")
    assert any("ProRes stores alpha only in the 4444 profiles" in p.message for p in validate_text(text).errors)
    text = MATTE.replace("OUT", "image.write").replace("PATH", str(tmp_path / "seq")).replace(
        "SETTINGS", "bit_depth: 8").replace("test.collect", "discard").replace(
        "matte: {type: mask, input: src}", "small: {type: resize, input: src, with: {width: 32, height: 24}}\n"
                                            "  matte: {type: mask, input: small}")
    [problem] = [p for p in validate_text(text).errors if "the matte is 32x24 and the picture 64x48" in p.message]
    assert problem.line == 7 and problem.path == "nodes.out.inputs.alpha"
