"""The normalised graph view of an ncnn model and the matchers that recognise each network family.

Each matcher maps the layers of a supported family to the state-dict keys spandrel detects, or raises
``_Mismatch`` saying which layer or structure did not fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffusify.weights.errors import WeightsError
from diffusify.weights.ncnn.metadata import _RESIZE_MODES
from diffusify.weights.ncnn.parser import NcnnGraph, NcnnLayer

_PASSTHROUGH = frozenset({"Split", "Noop", "Dropout"})


class _Mismatch(Exception):
    """The graph is not of the family a matcher looks for."""


@dataclass(eq=False)
class _Node:
    layer: NcnnLayer
    inputs: list[str]
    output: str
    weights: dict[str, np.ndarray]
    act: tuple[str, float] | None = None  # ("relu", 0.0) / ("leaky", slope) / ("other", type)

    @property
    def type(self) -> str:
        return self.layer.type

    @property
    def name(self) -> str:
        return self.layer.name

    def p(self, key: int, default: Any = None) -> Any:
        return self.layer.get(key, default)


def _fused_activation(layer: NcnnLayer) -> tuple[str, float] | None:
    kind = int(layer.get(9, 0))
    if kind == 0:
        return None
    if kind == 1:
        return ("relu", 0.0)
    if kind == 2:
        values = layer.get(10, [0.0])
        return ("leaky", float(values[0]) if values else 0.0)
    return ("other", float(kind))


class _Graph:
    """A normalised graph: pass-through layers removed, standalone ReLUs folded into their convolution."""

    def __init__(self, graph: NcnnGraph, weights: dict[str, dict[str, np.ndarray]]) -> None:
        self.source = graph.source
        alias: dict[str, str] = {}
        nodes: list[_Node] = []
        inputs: list[str] = []

        def resolve(blob: str) -> str:
            while blob in alias:
                blob = alias[blob]
            return blob

        for layer in graph.layers:
            if layer.type == "Input":
                inputs.extend(layer.outputs)
                continue
            if layer.type in _PASSTHROUGH:
                if len(layer.inputs) != 1:
                    raise WeightsError(f"{layer.where()} must have one input")
                for out in layer.outputs:
                    alias[out] = resolve(layer.inputs[0])
                continue
            if len(layer.outputs) != 1:
                raise WeightsError(
                    f"{layer.where()} has {len(layer.outputs)} outputs; the importer supports single-output layers"
                )
            node = _Node(
                layer, [resolve(b) for b in layer.inputs], layer.outputs[0], weights.get(layer.name, {})
            )
            if layer.type in ("Convolution", "Deconvolution", "InnerProduct"):
                node.act = _fused_activation(layer)
            nodes.append(node)

        if len(inputs) != 1:
            raise WeightsError(
                f"{graph.source}: the graph has {len(inputs)} inputs; exactly one is supported"
            )
        self.input = inputs[0]

        # Fold ReLU / LeakyReLU layers that directly follow a convolution without activation.
        producer = {n.output: n for n in nodes}
        consumers = self._consumers(nodes)
        kept: list[_Node] = []
        for node in nodes:
            if node.type == "ReLU" and len(node.inputs) == 1:
                conv = producer.get(node.inputs[0])
                if (
                    conv is not None
                    and conv.type == "Convolution"
                    and conv.act is None
                    and len(consumers.get(conv.output, [])) == 1
                ):
                    slope = float(node.p(0, 0.0))
                    conv.act = ("relu", 0.0) if slope == 0.0 else ("leaky", slope)
                    old = conv.output
                    conv.output = node.output
                    producer.pop(old, None)
                    producer[conv.output] = conv
                    continue
            kept.append(node)
        self.nodes = kept
        self.producer = {n.output: n for n in kept}
        self.consumers = self._consumers(kept)
        produced = set(self.producer)
        consumed = set(self.consumers)
        outputs = sorted(produced - consumed)
        if len(outputs) != 1:
            raise WeightsError(
                f"{graph.source}: the graph has {len(outputs)} outputs; exactly one is supported"
            )
        self.output = outputs[0]
        self.used: set[str] = set()

    @staticmethod
    def _consumers(nodes: Sequence[_Node]) -> dict[str, list[_Node]]:
        out: dict[str, list[_Node]] = {}
        for node in nodes:
            for blob in node.inputs:
                out.setdefault(blob, []).append(node)
        return out

    # -- helpers for matchers ------------------------------------------------------------------------------

    def reset(self) -> None:
        self.used = set()

    def produced_by(self, blob: str, layer_type: str, what: str) -> _Node:
        node = self.producer.get(blob)
        if node is None or node.type != layer_type:
            found = "the graph input" if node is None else node.layer.where()
            raise _Mismatch(f"expected {what} ({layer_type}) but found {found}")
        self.used.add(node.name)
        return node

    def peek(self, blob: str) -> _Node | None:
        return self.producer.get(blob)

    def weighted_sum(self, blob: str, what: str) -> list[tuple[float, str]]:
        """Terms ``(coefficient, blob)`` of an Eltwise sum / BinaryOp add producing ``blob``."""
        node = self.producer.get(blob)
        if node is None:
            raise _Mismatch(f"expected {what} (a sum) but found the graph input")
        if node.type == "Eltwise" and int(node.p(0, 0)) == 1:
            coeffs = node.p(1, []) or [1.0] * len(node.inputs)
            if len(coeffs) != len(node.inputs):
                raise _Mismatch(
                    f"{node.layer.where()} has {len(coeffs)} coefficients for {len(node.inputs)} inputs"
                )
            self.used.add(node.name)
            return [(float(c), b) for c, b in zip(coeffs, node.inputs, strict=True)]
        if (
            node.type == "BinaryOp"
            and int(node.p(0, 0)) == 0
            and not int(node.p(1, 0))
            and len(node.inputs) == 2
        ):
            self.used.add(node.name)
            terms = []
            for b in node.inputs:
                inner = self.producer.get(b)
                if (
                    inner is not None
                    and inner.type == "BinaryOp"
                    and int(inner.p(0, 0)) == 2
                    and int(inner.p(1, 0)) == 1
                ):
                    self.used.add(inner.name)
                    terms.append((float(inner.p(2, 0.0)), inner.inputs[0]))
                else:
                    terms.append((1.0, b))
            return terms
        raise _Mismatch(f"expected {what} (a sum) but found {node.layer.where()}")

    def check_all_used(self) -> None:
        unused = [n for n in self.nodes if n.name not in self.used]
        if unused:
            extra = ", ".join(n.layer.where() for n in unused[:3])
            more = f" and {len(unused) - 3} more" if len(unused) > 3 else ""
            raise _Mismatch(f"layers outside the recognised structure: {extra}{more}")


def _conv_tensors(
    node: _Node,
    *,
    kernel: int = 3,
    act: str | None = None,
    slope: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Check a ``kernel``x``kernel``, stride-1, same-padding convolution and return ``(OIHW weight, bias)``."""
    where = node.layer.where()
    kw = int(node.p(1, 0))
    kh = int(node.p(11, kw))
    dw = int(node.p(2, 1))
    dh = int(node.p(12, dw))
    sw = int(node.p(3, 1))
    sh = int(node.p(13, sw))
    pads = [int(node.p(4, 0))]
    pads.append(int(node.p(14, pads[0])))
    pads.append(int(node.p(15, pads[0])))
    pads.append(int(node.p(16, pads[1])))
    same = kernel // 2
    if (kw, kh) != (kernel, kernel) or (dw, dh) != (1, 1) or (sw, sh) != (1, 1):
        raise _Mismatch(
            f"{where}: expected a {kernel}x{kernel} stride-1 convolution, got {kw}x{kh} stride {sw}"
        )
    if any(p not in (same, -233, -234) for p in pads) or float(node.p(18, 0.0)) != 0.0:
        raise _Mismatch(f"{where}: expected zero 'same' padding, got pads {pads}")
    if act is None and node.act is not None:
        raise _Mismatch(f"{where}: unexpected fused activation {node.act[0]}")
    if act is not None:
        if node.act is None or node.act[0] != act:
            raise _Mismatch(f"{where}: expected a fused {act} activation")
        if slope is not None and not math.isclose(node.act[1], slope, rel_tol=1e-5, abs_tol=1e-7):
            raise _Mismatch(f"{where}: expected activation slope {slope}, got {node.act[1]}")
    out_ch = int(node.p(0, 0))
    data = node.weights["weight"]
    per_out = out_ch * kernel * kernel
    if out_ch <= 0 or data.size % per_out:
        raise _Mismatch(
            f"{where}: weight_data_size {data.size} does not fit num_output={out_ch}, {kernel}x{kernel}"
        )
    weight = data.reshape(out_ch, data.size // per_out, kernel, kernel)
    bias = node.weights.get("bias", np.zeros(out_ch, dtype=np.float32))
    return weight, bias


def _approx(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)


@dataclass
class _Match:
    architecture: str
    scale: int
    state: dict[str, np.ndarray]
    description: str


def _interp_scale(node: _Node) -> tuple[str, float]:
    """``(mode, scale)`` of an Interp layer with one uniform scale factor."""
    where = node.layer.where()
    mode = _RESIZE_MODES.get(int(node.p(0, 0)))
    hs, ws = float(node.p(1, 1.0)), float(node.p(2, 1.0))
    if mode is None:
        raise _Mismatch(f"{where}: unsupported resize type {node.p(0, 0)}")
    if int(node.p(3, 0)) or int(node.p(4, 0)) or int(node.p(5, 0)):
        raise _Mismatch(f"{where}: resizes to a fixed or dynamic size; only scale factors are supported")
    if int(node.p(6, 0)):
        raise _Mismatch(f"{where}: align_corner resizes are not supported")
    if not _approx(hs, ws):
        raise _Mismatch(f"{where}: different height and width scales ({hs}, {ws})")
    return mode, hs


def _match_compact(g: _Graph, out: str) -> _Match:
    """SRVGGNetCompact: conv, act, (conv, act) x n, conv, PixelShuffle(r), + nearest-upscaled input."""
    terms = g.weighted_sum(out, "the residual add")
    if len(terms) != 2 or any(not _approx(c, 1.0) for c, _ in terms):
        raise _Mismatch("the output is not a plain two-way residual add")
    by_type = {}
    for _, blob in terms:
        node = g.peek(blob)
        by_type[node.type if node else "Input"] = blob
    if set(by_type) != {"PixelShuffle", "Interp"}:
        raise _Mismatch("the residual add does not join a PixelShuffle with an upscaled input")
    shuffle = g.produced_by(by_type["PixelShuffle"], "PixelShuffle", "the pixel shuffle")
    near = g.produced_by(by_type["Interp"], "Interp", "the nearest-neighbour base upscale")
    r = int(shuffle.p(0, 1))
    mode, base_scale = _interp_scale(near)
    if mode != "nearest" or not _approx(base_scale, r) or near.inputs[0] != g.input:
        raise _Mismatch(f"{near.layer.where()} is not a nearest x{r} upscale of the graph input")

    convs: list[_Node] = [g.produced_by(shuffle.inputs[0], "Convolution", "the last convolution")]
    slopes: list[np.ndarray] = []
    blob = convs[0].inputs[0]
    while blob != g.input:
        node = g.peek(blob)
        if node is not None and node.type == "PReLU":
            g.used.add(node.name)
            slopes.append(node.weights["slope"])
            conv = g.produced_by(node.inputs[0], "Convolution", "a body convolution")
        else:
            conv = g.produced_by(blob, "Convolution", "a body convolution")
            if conv.act is None or conv.act[0] not in ("relu", "leaky"):
                raise _Mismatch(f"{conv.layer.where()}: body convolution without activation")
            slopes.append(np.full(1, conv.act[1], dtype=np.float32))
        convs.append(conv)
        blob = conv.inputs[0]
    g.check_all_used()
    convs.reverse()
    slopes.reverse()
    if len(convs) < 2:
        raise _Mismatch("too few convolutions for a Compact network")

    state: dict[str, np.ndarray] = {}
    feat = 0
    for i, conv in enumerate(convs):
        last = i == len(convs) - 1
        weight, bias = _conv_tensors(conv, act=None if (last or conv.act is None) else conv.act[0])
        if last:
            out_ch = weight.shape[0]
            if out_ch % (r * r):
                raise _Mismatch(f"{conv.layer.where()}: {out_ch} outputs do not fit a pixel shuffle by {r}")
            if int(shuffle.p(1, 0)) == 1:
                # depth-column-row order: output channel (i*r + j)*C + c -> torch order c*r*r + i*r + j.
                c = out_ch // (r * r)
                weight = (
                    weight.reshape(r * r, c, *weight.shape[1:]).transpose(1, 0, 2, 3, 4).reshape(weight.shape)
                )
                bias = bias.reshape(r * r, c).T.reshape(-1)
        else:
            feat = weight.shape[0]
        state[f"body.{2 * i}.weight"] = weight
        state[f"body.{2 * i}.bias"] = bias
        if not last:
            slope = slopes[i]
            if slope.size == 1:
                slope = np.full(feat, float(slope[0]), dtype=np.float32)
            if slope.size != feat:
                raise _Mismatch(
                    f"activation after {conv.layer.where()} has {slope.size} slopes for {feat} channels"
                )
            state[f"body.{2 * i + 1}.weight"] = slope
    return _Match("Compact", r, state, f"Compact {feat}nf {len(convs) - 2}nc x{r}")


def _match_dense_block(g: _Graph, out: str, d_in: str, slope: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """One residual dense block: 5 convolutions, each reading the concatenation of all earlier outputs."""
    terms = g.weighted_sum(out, "a dense-block residual")
    if len(terms) != 2:
        raise _Mismatch("a dense-block residual must have two terms")
    skip = [b for c, b in terms if _approx(c, 1.0) and b == d_in]
    body = [b for c, b in terms if _approx(c, 0.2) and b != d_in]
    if len(skip) != 1 or len(body) != 1:
        raise _Mismatch(f"expected 0.2 * conv5 + input at a dense block, got {terms}")
    convs: dict[int, _Node] = {}
    cats: dict[int, _Node] = {}
    blob = body[0]
    for k in range(5, 0, -1):
        conv = g.produced_by(blob, "Convolution", f"dense conv{k}")
        convs[k] = conv
        if k == 1:
            if conv.inputs[0] != d_in:
                raise _Mismatch(f"{conv.layer.where()} does not read the block input")
            break
        cat = g.produced_by(conv.inputs[0], "Concat", f"the concatenation before dense conv{k}")
        if int(cat.p(0, 0)) not in (0, -3):
            raise _Mismatch(f"{cat.layer.where()} concatenates along axis {cat.p(0, 0)}, not channels")
        if len(cat.inputs) != k:
            raise _Mismatch(f"{cat.layer.where()} concatenates {len(cat.inputs)} blobs, expected {k}")
        cats[k] = cat
        blob = cat.inputs[-1]
    for k, cat in cats.items():
        expected = [d_in] + [convs[j].output for j in range(1, k)]
        if cat.inputs != expected:
            raise _Mismatch(
                f"{cat.layer.where()} does not concatenate the block input and earlier outputs in order"
            )
    tensors = []
    for k in range(1, 6):
        conv = convs[k]
        if k < 5:
            tensors.append(_conv_tensors(conv, act="leaky", slope=slope))
        else:
            tensors.append(_conv_tensors(conv))
    return tensors


def _match_esrgan(g: _Graph, out: str) -> _Match:
    """RRDBNet: conv_first, RRDB trunk, conv_body, + feat, (nearest x2, conv) x n, conv_hr, conv_last."""
    slope = 0.2
    last = g.produced_by(out, "Convolution", "conv_last")
    hr = g.produced_by(last.inputs[0], "Convolution", "conv_hr")
    ups: list[_Node] = []
    blob = hr.inputs[0]
    while True:
        node = g.peek(blob)
        if node is None or node.type != "Convolution":
            break
        interp = g.peek(node.inputs[0])
        if interp is None or interp.type != "Interp":
            break
        mode, factor = _interp_scale(interp)
        if mode != "nearest" or not _approx(factor, 2.0):
            raise _Mismatch(
                f"{interp.layer.where()}: ESRGAN upsampling must be nearest x2, got {mode} x{factor}"
            )
        g.used.update({node.name, interp.name})
        ups.append(node)
        blob = interp.inputs[0]
    ups.reverse()

    terms = g.weighted_sum(blob, "the trunk residual add")
    if len(terms) != 2 or any(not _approx(c, 1.0) for c, _ in terms):
        raise _Mismatch("the trunk output is not a plain two-way residual add")
    first_blob = next((b for _, b in terms if (n := g.peek(b)) is not None and n.inputs[0] == g.input), None)
    if first_blob is None:
        raise _Mismatch("the trunk residual add does not read conv_first")
    body_blob = next(b for _, b in terms if b != first_blob)
    first = g.produced_by(first_blob, "Convolution", "conv_first")
    body = g.produced_by(body_blob, "Convolution", "conv_body")

    blocks: list[list[list[tuple[np.ndarray, np.ndarray]]]] = []
    trunk = body.inputs[0]
    while trunk != first_blob:
        terms = g.weighted_sum(trunk, "an RRDB residual")
        if len(terms) != 2:
            raise _Mismatch("an RRDB residual must have two terms")
        skip = [b for c, b in terms if _approx(c, 1.0)]
        path = [b for c, b in terms if _approx(c, 0.2)]
        if len(skip) != 1 or len(path) != 1:
            raise _Mismatch(f"expected 0.2 * dense blocks + input at an RRDB, got {terms}")
        rdbs: list[list[tuple[np.ndarray, np.ndarray]]] = []
        d_out = path[0]
        for _ in range(3):
            terms_d = g.weighted_sum(d_out, "a dense-block residual")
            d_in = next((b for c, b in terms_d if _approx(c, 1.0)), None)
            if d_in is None:
                raise _Mismatch("a dense block has no identity skip")
            rdbs.insert(0, _match_dense_block(g, d_out, d_in, slope))
            d_out = d_in
        if d_out != skip[0]:
            raise _Mismatch("an RRDB's first dense block does not read the RRDB input")
        blocks.insert(0, rdbs)
        trunk = skip[0]
        if len(blocks) > 1000:  # pragma: no cover - guards against cyclic graphs
            raise _Mismatch("the RRDB trunk does not end")
    g.check_all_used()
    if not blocks:
        raise _Mismatch("no RRDB blocks found")

    state: dict[str, np.ndarray] = {}

    def put(prefix: str, tensors: tuple[np.ndarray, np.ndarray]) -> None:
        state[f"{prefix}.weight"], state[f"{prefix}.bias"] = tensors

    put("conv_first", _conv_tensors(first))
    for i, rdbs in enumerate(blocks):
        for k, convs in enumerate(rdbs, start=1):
            for j, tensors in enumerate(convs, start=1):
                put(f"body.{i}.rdb{k}.conv{j}", tensors)
    put("conv_body", _conv_tensors(body))
    for m, up in enumerate(ups, start=1):
        put(f"conv_up{m}", _conv_tensors(up, act="leaky", slope=slope))
    put("conv_hr", _conv_tensors(hr, act="leaky", slope=slope))
    put("conv_last", _conv_tensors(last))
    nf = state["conv_first.weight"].shape[0]
    scale = 2 ** len(ups)
    return _Match("ESRGAN", scale, state, f"ESRGAN/RRDBNet {nf}nf {len(blocks)}nb x{scale}")


def _realcugan_activation(key: str) -> tuple[str, float | None] | None:
    """The activation ncnn fuses into the Real-CUGAN layer that spandrel calls ``key``."""
    if key.endswith("seblock.conv1"):
        return ("relu", None)
    if key.endswith("seblock.conv2"):
        return ("other", 4.0)  # sigmoid
    if key.endswith("conv_bottom") or key == "conv_final":
        return None
    return ("leaky", 0.1)


def _match_realcugan(g: _Graph, out: str, *, pro: bool = False) -> _Match:
    """Real-CUGAN 2x/3x (UpCunet2x/UpCunet3x): two U-Nets with squeeze-excitation blocks.

    The weight layers of these graphs come in the order of spandrel's modules; each one is matched by
    kind, shape, stride, padding and fused activation, and the remaining layers by count (the wiring is
    then checked by running the graph, see ``_verify_against_graph``). ncnn stores transposed-convolution
    weights as ``(out, in, kh, kw)``; torch wants ``(in, out, kh, kw)``.
    """
    import torch.nn as nn
    from spandrel.architectures.RealCUGAN import UpCunet2x, UpCunet3x

    weighted = [n for n in g.nodes if n.type in ("Convolution", "Deconvolution", "InnerProduct")]
    others: dict[str, int] = {}
    for n in g.nodes:
        if n not in weighted:
            others[n.type] = others.get(n.type, 0) + 1
    if not others.get("Pooling"):
        raise _Mismatch("no squeeze-excitation pooling layers")
    if "PixelShuffle" in others:
        raise _Mismatch("Real-CUGAN 4x graphs are not supported (their runtime adds the input residual)")
    if len(weighted) != 30 or weighted[9].type != "Deconvolution":
        raise _Mismatch(f"expected 30 weight layers with a deconvolution tenth, got {len(weighted)}")
    kernel = int(weighted[9].p(1, 0))
    classes = {4: (2, UpCunet2x), 5: (3, UpCunet3x)}
    if kernel not in classes:
        raise _Mismatch(f"{weighted[9].layer.where()}: unexpected bottom kernel {kernel}")
    scale, cls = classes[kernel]
    in_ch = int(weighted[0].weights["weight"].size // (int(weighted[0].p(0, 0)) * 9) or 1)
    out_ch = int(weighted[-1].p(0, 0))
    expected_others = {"Pooling": 4, "BinaryOp": 8, "Crop": 4}
    if {k: v for k, v in others.items() if k != "Split"} != expected_others:
        raise _Mismatch(f"layer counts {others} do not match a Real-CUGAN {scale}x graph")
    reference = cls(in_channels=in_ch, out_channels=out_ch, pro=pro)
    modules = [(k, m) for k, m in reference.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    if len(modules) != len(weighted):  # pragma: no cover - spandrel layout changed
        raise _Mismatch("spandrel's Real-CUGAN layout differs from the graph")

    state: dict[str, np.ndarray] = {}
    for (key, module), node in zip(modules, weighted, strict=True):
        g.used.add(node.name)
        where = node.layer.where()
        w = node.weights["weight"]
        shape = tuple(module.weight.shape)
        if w.size != module.weight.numel() or int(node.p(0, 0)) != module.out_channels:
            raise _Mismatch(f"{where} does not have the shape of {key} {shape}")
        if isinstance(module, nn.ConvTranspose2d):
            if node.type != "Deconvolution":
                raise _Mismatch(f"{where} should be the transposed convolution {key}")
            kh = kw = module.kernel_size[0]
            w = w.reshape(module.out_channels, module.in_channels, kh, kw).transpose(1, 0, 2, 3)
        elif node.type == "InnerProduct":
            if module.kernel_size != (1, 1):
                raise _Mismatch(f"{where} should be the convolution {key}")
            w = w.reshape(shape)
        else:
            if node.type != "Convolution":
                raise _Mismatch(f"{where} should be the convolution {key}")
            w = w.reshape(shape)
        if node.type != "InnerProduct":
            k, stride, pad = int(node.p(1, 0)), int(node.p(3, 1)), int(node.p(4, 0))
            if (
                (k, k) != module.kernel_size
                or (stride, stride) != module.stride
                or (pad, pad) != module.padding
            ):
                raise _Mismatch(f"{where}: kernel/stride/pad {k}/{stride}/{pad} do not match {key}")
        act = _realcugan_activation(key)
        if (node.act is None) != (act is None) or (
            act is not None
            and node.act is not None
            and (node.act[0] != act[0] or (act[1] is not None and not _approx(node.act[1], act[1])))
        ):
            raise _Mismatch(f"{where}: activation {node.act} does not match {key}")
        state[f"{key}.weight"] = np.ascontiguousarray(w)
        bias = node.weights.get("bias")
        state[f"{key}.bias"] = bias if bias is not None else np.zeros(module.out_channels, dtype=np.float32)
    for n in g.nodes:
        if n.type in expected_others:
            g.used.add(n.name)
    g.check_all_used()
    if pro:
        state["pro"] = np.zeros(1, dtype=np.float32)
    kind = "pro" if pro else "se"
    return _Match("RealCUGAN", scale, state, f"RealCUGAN {scale}x ({kind})")


_MATCHERS = (("Compact", _match_compact), ("ESRGAN", _match_esrgan), ("RealCUGAN", _match_realcugan))
