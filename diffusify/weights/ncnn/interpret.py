"""Reference interpreter: runs a normalised ncnn graph with torch, to check a conversion."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffusify.weights.errors import WeightsError
from diffusify.weights.ncnn.match import _Graph, _Match, _Node
from diffusify.weights.ncnn.metadata import _RESIZE_MODES
from diffusify.weights.ncnn.parser import NcnnLayer

if TYPE_CHECKING:
    import torch


def _activate(x: torch.Tensor, act: tuple[str, float] | None, layer: NcnnLayer) -> torch.Tensor:
    import torch
    import torch.nn.functional as F

    if act is None:
        return x
    kind, value = act
    if kind == "relu":
        return F.relu(x)
    if kind == "leaky":
        return F.leaky_relu(x, value)
    if kind == "other" and int(value) == 4:
        return torch.sigmoid(x)
    if kind == "other" and int(value) == 3:
        lo, hi = (layer.get(10) or [-math.inf, math.inf])[:2]
        return x.clamp(lo, hi)
    raise WeightsError(f"{layer.where()}: activation type {int(value)} cannot be checked")


def _eval_node(node: _Node, ins: list[torch.Tensor]) -> torch.Tensor:
    """One layer of a normalised graph; blobs are NCHW tensors, 1-D ncnn blobs are (1, C, 1, 1)."""
    import torch
    import torch.nn.functional as F

    t, layer, x = node.type, node.layer, ins[0]
    p = node.p
    if t in ("Convolution", "Deconvolution"):
        out_ch = int(p(0, 0))
        kw = int(p(1, 0))
        kh = int(p(11, kw))
        dw, sw = int(p(2, 1)), int(p(3, 1))
        dh, sh = int(p(12, dw)), int(p(13, sw))
        left = int(p(4, 0))
        top, right = int(p(14, left)), int(p(15, left))
        bottom = int(p(16, top))
        w = torch.from_numpy(node.weights["weight"].copy())
        b = node.weights.get("bias")
        bias = torch.from_numpy(b.copy()) if b is not None else None
        if t == "Convolution":
            if min(left, top, right, bottom) < 0:  # SAME padding (stride 1)
                left = right = dw * (kw - 1) // 2
                top = bottom = dh * (kh - 1) // 2
            w = w.view(out_ch, -1, kh, kw)
            y = F.conv2d(F.pad(x, (left, right, top, bottom)), w, bias, (sh, sw), 0, (dh, dw))
        else:
            if int(p(18, 0)) or int(p(19, 0)) or int(p(20, 0)) or int(p(21, 0)):
                raise WeightsError(f"{layer.where()}: deconvolution output padding cannot be checked")
            w = w.view(out_ch, -1, kh, kw).transpose(0, 1)
            y = F.conv_transpose2d(x, w, bias, (sh, sw), 0, 0, 1, (dh, dw))
            y = y[..., top : y.shape[-2] - bottom, left : y.shape[-1] - right]
        return _activate(y, node.act, layer)
    if t == "InnerProduct":
        w = torch.from_numpy(node.weights["weight"].copy()).view(int(p(0, 0)), -1)
        b = node.weights.get("bias")
        y = F.linear(x.flatten(1), w, torch.from_numpy(b.copy()) if b is not None else None)
        return _activate(y.view(y.shape[0], -1, 1, 1), node.act, layer)
    if t == "PReLU":
        return F.prelu(x, torch.from_numpy(node.weights["slope"].copy()))
    if t == "ReLU":
        return _activate(x, ("relu", 0.0) if float(p(0, 0.0)) == 0.0 else ("leaky", float(p(0))), layer)
    if t == "Sigmoid":
        return torch.sigmoid(x)
    if t == "Pooling":
        if not int(p(4, 0)):
            raise WeightsError(f"{layer.where()}: only global pooling can be checked")
        return x.mean(dim=(2, 3), keepdim=True) if int(p(0, 0)) == 1 else x.amax(dim=(2, 3), keepdim=True)
    if t == "BinaryOp":
        op = int(p(0, 0))
        other = torch.tensor(float(p(2, 0.0))) if int(p(1, 0)) else ins[1]
        ops = {0: torch.add, 1: torch.sub, 2: torch.mul, 3: torch.div, 4: torch.maximum, 5: torch.minimum}
        if op not in ops:
            raise WeightsError(f"{layer.where()}: binary operation {op} cannot be checked")
        return ops[op](x, other)
    if t == "Eltwise":
        op = int(p(0, 0))
        if op == 1:
            coeffs = p(1, []) or [1.0] * len(ins)
            return sum(float(c) * v for c, v in zip(coeffs, ins, strict=True))
        y = ins[0]
        for v in ins[1:]:
            y = y * v if op == 0 else torch.maximum(y, v)
        return y
    if t == "Concat":
        return torch.cat(ins, dim=1)
    if t == "Crop":
        starts, ends, axes = p(9), p(10), p(11)
        if starts is None or ends is None or axes is None:
            raise WeightsError(f"{layer.where()}: only start/end/axes crops can be checked")
        index: list[slice] = [slice(None)] * 4
        for a, st, en in zip(axes, starts, ends, strict=True):
            dim = int(a) + 1 if int(a) >= 0 else 4 + int(a)
            index[dim] = slice(int(st), int(en) if int(en) < (1 << 30) else None)
        return x[tuple(index)]
    if t == "PixelShuffle":
        r = int(p(0, 1))
        if int(p(1, 0)) == 1:
            n, ch, h, w = x.shape
            c = ch // (r * r)
            return x.view(n, r, r, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c, h * r, w * r)
        return F.pixel_shuffle(x, r)
    if t == "Interp":
        mode = _RESIZE_MODES.get(int(p(0, 0)))
        if mode is None:
            raise WeightsError(f"{layer.where()}: resize type {p(0, 0)} cannot be checked")
        kwargs: dict[str, Any] = {} if mode == "nearest" else {"align_corners": False}
        return F.interpolate(x, scale_factor=(float(p(1, 1.0)), float(p(2, 1.0))), mode=mode, **kwargs)
    raise WeightsError(f"{layer.where()}: layer type {t} cannot be checked")


def _run_graph(g: _Graph, x: torch.Tensor, stop: str) -> torch.Tensor:
    values = {g.input: x}
    for node in g.nodes:
        values[node.output] = _eval_node(node, [values[b] for b in node.inputs])
        if node.output == stop:
            break
    return values[stop]


def _verify_against_graph(
    g: _Graph, out: str, descriptor: Any, match: _Match, *, pro: bool, where: Path
) -> None:
    """Require the converted model to compute what the ncnn graph computes, on a small random input."""
    import torch
    import torch.nn.functional as F

    model = descriptor.model.eval()
    in_ch = descriptor.input_channels
    gen = torch.Generator().manual_seed(1234)
    size = 36 if match.architecture == "RealCUGAN" else 20
    x = torch.rand(1, in_ch, size, size, generator=gen)
    with torch.inference_mode():
        expected = model(x)
        if match.architecture == "RealCUGAN":
            pad = {2: 18, 3: 14}[match.scale]
            xin = x * 0.7 + 0.15 if pro else x
            got = _run_graph(g, F.pad(xin, (pad, pad, pad, pad), mode="reflect"), out)
            if pro:
                got = (got - 0.15) / 0.7
        else:
            got = _run_graph(g, x, out)
    if got.shape != expected.shape:
        raise WeightsError(
            f"{where}: the converted {match.description} gives shape {tuple(expected.shape)} where the ncnn "
            f"graph gives {tuple(got.shape)}; the graph is not wired like spandrel's network"
        )
    err = float((got - expected).abs().max())
    tol = 1e-3 * max(1.0, float(expected.abs().max()))
    if not err <= tol:
        raise WeightsError(
            f"{where}: the converted {match.description} differs from the ncnn graph by up to {err:.3g} on a "
            "test input; the graph is not wired like spandrel's network"
        )

