"""Mask streams: making a mask from a picture, and the mask operations, against independent references; and the
mask port kinds in a graph."""

from __future__ import annotations

import pytest
import torch

import diffusify
from diffusify.graph.validate import validate_text
from diffusify.processors.mask import (
    Mask,
    MaskCombine,
    MaskDilate,
    MaskErode,
    MaskFeather,
    MaskInvert,
    MaskThreshold,
)
from tests._helpers import frame, make_processor, push_one, stream_of
from tests.conftest import CollectSink


def _run(cls, params, **inputs: torch.Tensor) -> torch.Tensor:
    proc = make_processor(cls, params, streams={p: stream_of(t) for p, t in inputs.items()})
    out = push_one(proc, {p: frame(3, t) for p, t in inputs.items()})
    assert out.data.shape[0] == 1 and out.pts == frame(3, out.data).pts
    return out.data


def _dot(size: int = 21, at: int = 10) -> torch.Tensor:
    m = torch.zeros(1, size, size)
    m[0, at, at] = 1
    return m


def test_mask_from_luma_and_a_channel():
    x = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))
    luma = 0.2126 * x[0] + 0.7152 * x[1] + 0.0722 * x[2]
    assert torch.allclose(_run(Mask, {}, input=x)[0], luma, atol=1e-6)
    assert torch.equal(_run(Mask, {"channel": "green", "threshold": 0.5}, input=x)[0], (x[1] >= 0.5).float())


def test_threshold_hard_and_soft():
    m = torch.linspace(0, 1, 11).view(1, 1, 11)
    assert _run(MaskThreshold, {"level": 0.5}, input=m)[0, 0].tolist() == [0.0] * 5 + [1.0] * 6
    soft = _run(MaskThreshold, {"level": 0.5, "softness": 0.2}, input=m)[0, 0]
    assert soft[3] == 0 and soft[7] == 1 and abs(float(soft[5]) - 0.5) < 1e-6
    assert all(a <= b for a, b in zip(soft, soft[1:], strict=False))


@pytest.mark.parametrize("radius", [1, 2, 3, 6])
def test_dilate_grows_a_dot_into_an_octagon_and_erode_takes_it_back(radius):
    grown = _run(MaskDilate, {"radius": radius}, input=_dot())[0]
    ys, xs = torch.nonzero(grown, as_tuple=True)
    assert int(ys.min()) == 10 - radius and int(ys.max()) == 10 + radius  # the radius along the axes
    assert int(xs.min()) == 10 - radius and int(xs.max()) == 10 + radius
    corner = grown[10 - radius, 10 - radius]
    assert corner == (1 if radius == 1 else 0)  # a disc-like shape: no square corners past the first step
    back = _run(MaskErode, {"radius": radius}, input=grown[None])
    assert torch.equal(back, _dot())


def test_erode_removes_specks_smaller_than_the_radius():
    m = torch.zeros(1, 20, 20)
    m[0, 2, 2] = 1  # a speck
    m[0, 8:16, 8:16] = 1  # a block
    out = _run(MaskErode, {"radius": 2}, input=m)[0]
    assert out[2, 2] == 0 and out[11, 11] == 1 and out[8, 8] == 0


def test_feather_softens_the_edge_and_keeps_the_inside():
    m = torch.zeros(1, 40, 40)
    m[0, 10:30, 10:30] = 1
    out = _run(MaskFeather, {"radius": 4}, input=m)[0]
    assert out[20, 20] > 0.999 and out[2, 2] < 1e-3
    row = out[20, 4:17]
    assert all(a <= b + 1e-7 for a, b in zip(row, row[1:], strict=False)) and 0.3 < float(out[20, 10]) < 0.7


def test_invert_and_combine():
    a = torch.tensor([[[0.0, 0.3, 1.0, 0.6]]])
    b = torch.tensor([[[1.0, 0.5, 0.2, 0.6]]])
    assert torch.allclose(_run(MaskInvert, {}, input=a), 1 - a)
    assert torch.equal(_run(MaskCombine, {"op": "union"}, a=a, b=b), torch.maximum(a, b))
    assert torch.equal(_run(MaskCombine, {"op": "intersection"}, a=a, b=b), torch.minimum(a, b))
    assert torch.allclose(_run(MaskCombine, {"op": "difference"}, a=a, b=b),
                          torch.tensor([[[0.0, 0.0, 0.8, 0.0]]]))


def test_a_matte_pipeline_runs_and_video_on_a_mask_port_is_refused(registry):
    text = """
version: 1
nodes:
  src: {type: pattern, with: {kind: moving, width: 64, height: 36, frames: 3}}
  matte: {type: mask, input: src, with: {threshold: 0.6}}
  grown: {type: mask.dilate, input: matte, with: {radius: 2}}
  soft: {type: mask.feather, input: grown, with: {radius: 3}}
  blurred: {type: denoise, input: src, with: {method: gaussian, strength: 3}}
  comp: {type: compose.mask, inputs: {background: blurred, foreground: src, mask: soft}}
  out: {type: test.collect, input: comp}
"""
    diffusify.run(text, registry=registry)
    assert len(CollectSink.results["collected"]) == 3
    v = validate_text(text.replace("input: grown", "input: src"))
    assert any("port 'input' of mask.feather takes mask frames, but 'src' gives a video stream" in p.format()
               for p in v.errors)


def _tiny_segformer(folder):
    """A randomly initialised SegFormer with the classes background, person, car, saved as a model folder."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    torch.manual_seed(0)
    labels = {0: "background", 1: "person", 2: "car"}
    cfg = SegformerConfig(num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
                          num_attention_heads=[1, 1], patch_sizes=[7, 3], strides=[4, 2], mlp_ratios=[2, 2],
                          decoder_hidden_size=16, num_labels=3, id2label=labels,
                          label2id={v: k for k, v in labels.items()})
    SegformerForSemanticSegmentation(cfg).save_pretrained(folder)
    SegformerImageProcessor(size={"height": 32, "width": 48}).save_pretrained(folder)
    return folder


def test_segment_with_a_transformers_model_gives_the_chosen_classes_probability(registry, tmp_path):
    model = _tiny_segformer(tmp_path / "segformer")
    text = f"""
version: 1
nodes:
  src: {{type: pattern, with: {{kind: moving, width: 64, height: 40, frames: 2}}}}
  who: {{type: segment, input: src, with: {{model: "{model}", classes: [person, car]}}}}
  out: {{type: test.collect, input: who}}
"""
    diffusify.run(text, registry=registry)
    got = CollectSink.results.pop("collected")
    assert len(got) == 2 and got[0].data.shape == (1, 40, 64)
    from transformers import SegformerForSemanticSegmentation

    from diffusify.processors.synthetic import TestPattern

    net = SegformerForSemanticSegmentation.from_pretrained(model).eval()
    pattern = make_processor(TestPattern, {"kind": "moving", "width": 64, "height": 40, "frames": 2})
    x = pattern._draw(1, 64, 40, torch.device("cpu"))
    y = torch.nn.functional.interpolate(x[None], size=(32, 48), mode="bilinear", align_corners=False,
                                        antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.inference_mode():
        logits = net(pixel_values=(y - mean) / std).logits
    # probabilities at the model's size, the chosen classes' sum resized to the frame (resizing every class's
    # logits first would cost classes x frame size: 5 GB for 150 classes at 4K)
    probs = logits.softmax(1)[:, 1:3].sum(1, keepdim=True)
    want = torch.nn.functional.interpolate(probs, size=(40, 64), mode="bilinear")[0, 0]
    assert torch.allclose(got[1].data[0], want, atol=1e-5)
    assert 0 <= float(got[1].data.min()) and float(got[1].data.max()) <= 1


def test_segment_names_an_unknown_class_at_validation(tmp_path):
    model = _tiny_segformer(tmp_path / "segformer")
    v = validate_text(f"""
version: 1
nodes:
  src: {{type: pattern, with: {{width: 64, height: 40, frames: 2}}}}
  who: {{type: segment, input: src, with: {{model: "{model}", classes: [persn]}}}}
  out: {{type: discard, input: who}}
""")
    assert any("the model has no class 'persn' (did you mean 'person'?) (its classes: background, person, car)"
               in p.format() for p in v.errors)


def test_smooth_removes_a_one_frame_flicker_without_lagging(registry):
    from fractions import Fraction

    from diffusify import Frame, Window

    proc = make_processor(diffusify.default_registry().get("mask.smooth"), {},
                          streams={"input": stream_of(torch.zeros(1, 2, 2))})
    on, off = torch.ones(1, 2, 2), torch.zeros(1, 2, 2)
    seq = [off, off, on, off, off, on, on, on]  # a flicker at 2; a real change from 5 on
    sets = [{"input": Frame(i, Fraction(i, 25), m)} for i, m in enumerate(seq)]
    out = []
    for i in range(len(seq)):
        lo, hi = max(i - 1, 0), min(i + 1, len(seq) - 1)
        w = Window((sets[lo], sets[i], sets[hi]), 1, i, padded_before=int(i == 0), padded_after=int(i == 7))
        out.append(float(proc.push(w)[0].data.mean()))
    assert out == [0, 0, 0, 0, 0, 1, 1, 1]  # the flicker gone; the change at frame 5 kept at frame 5


def test_blur_a_background_and_a_solid_colour_to_composite_over(registry):
    from diffusify.processors.classical import Blur

    x = torch.zeros(1, 31, 31)
    x[0, 15, 15] = 1
    out = _run(Blur, {"radius": 4}, input=x)[0]
    assert abs(float(out.sum()) - 1) < 1e-4 and out[15, 15] == out.max() and out[15, 15] < 0.1
    diffusify.run("""
version: 1
nodes:
  src: {type: pattern, with: {kind: moving, width: 64, height: 36, frames: 2}}
  green: {type: pattern, with: {kind: solid, color: "#00ff80", width: 64, height: 36, frames: 2}}
  matte: {type: mask, input: src, with: {threshold: 0.5}}
  comp: {type: compose.mask, inputs: {background: green, foreground: src, mask: matte}}
  out: {type: test.collect, input: comp}
""", registry=registry)
    got = CollectSink.results.pop("collected")[1].data
    from diffusify.processors.synthetic import TestPattern

    pattern = make_processor(TestPattern, {"kind": "moving", "width": 64, "height": 36, "frames": 2})
    src = pattern._draw(1, 64, 36, torch.device("cpu"))
    inside = (0.2126 * src[0] + 0.7152 * src[1] + 0.0722 * src[2]) >= 0.5
    green = torch.tensor([0.0, 1.0, 128 / 255]).view(3, 1, 1).expand(3, 36, 64)
    assert 0 < int(inside.sum()) < inside.numel()  # both parts are there
    assert torch.allclose(got[:, inside], src[:, inside]) and torch.allclose(got[:, ~inside], green[:, ~inside])
