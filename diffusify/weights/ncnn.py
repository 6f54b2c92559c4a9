"""Import ncnn models (``.param`` text graph + ``.bin`` weights) as spandrel-loadable safetensors.

ncnn is the inference runtime behind the ``*-ncnn-vulkan`` upscalers, and many super-resolution models are
distributed only in its format. This module reads the text graph, decodes the weight blob, recognises the
network family from the graph's structure and writes a torch state dict with the key names that spandrel's
``ModelLoader`` detects:

* Real-ESRGAN Compact (``SRVGGNetCompact``; e.g. ``realesr-animevideov3``): spandrel ``Compact``.
* ESRGAN / Real-ESRGAN ``RRDBNet`` (e.g. ``realesrgan-x4plus``, ``realesrgan-x4plus-anime``):
  spandrel ``ESRGAN``.
* Real-CUGAN 2x and 3x with squeeze-excitation (``models-se``, ``models-pro``): spandrel ``RealCUGAN``.
  Not supported: Real-CUGAN 4x (its runtime adds the input residual outside the graph) and ``models-nose``
  (spandrel has no such variant). The ``pro`` flag is not part of the graph: it is inferred from the
  ``models-pro`` folder name or given explicitly.

After matching, the importer runs the ncnn graph itself (interpreted with torch) and the converted
spandrel model on a small random input and requires identical results, so a graph that matches by shape
but is wired differently is refused.

Anything else fails with a one-line :class:`~diffusify.weights.errors.WeightsError` naming the layer or the
structure that did not match.

Post-scale:
    Some ncnn graphs end with a resize of the network output. The ``realesr-animevideov3`` x2 and x3 models
    ship the *same* 4x network as x4 and end with a bicubic downscale by 0.5 and 0.75. The importer keeps
    that step as metadata of the converted file (``diffusify.post_scale``, ``diffusify.post_resize``); the
    effective scale of such a model is ``network scale x post_scale``. :func:`read_post_scale` reads it
    back and :func:`apply_post_scale` applies it exactly as ncnn does.

Pre-padding:
    Real-ESRGAN runtimes mirror-pad each frame by 10 px before the network and crop the scaled margin off
    afterwards; the converted file records that as ``diffusify.pre_pad``.

The ``.bin`` layout, per layer in ``.param`` order: a Convolution's weights (``weight_data_size`` values,
OIHW) are preceded by a 4-byte storage tag (``0``: raw float32, ``0x01306B47``: float16 padded to 4 bytes,
another non-zero value: a 256-entry float32 codebook followed by one uint8 index per value), then its bias
as raw float32 when ``bias_term`` is set. PReLU slopes are raw float32 without a tag.

Command line (for conversions recorded in provenance files)::

    python -m diffusify.weights.ncnn MODEL.param MODEL.bin OUT.safetensors --name NAME \\
        --licence BSD-3-Clause --source URL
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import struct
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diffusify.weights.errors import WeightsError

if TYPE_CHECKING:
    import torch

__all__ = [
    "ImportResult",
    "NcnnGraph",
    "NcnnLayer",
    "ModelMetadata",
    "apply_post_scale",
    "import_ncnn",
    "parse_param",
    "read_metadata",
    "read_post_scale",
    "write_safetensors",
]

NCNN_MAGIC = 7767517
"""First line of every ncnn text ``.param`` file."""

TAG_FP32 = 0x00000000
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056

META_PREFIX = "diffusify."
IMPORTER_VERSION = "1"

DEFAULT_REAL_ESRGAN_PRE_PAD = 10
"""Pixels of mirror padding that Real-ESRGAN runtimes add around a frame before the network."""

_RESIZE_MODES = {1: "nearest", 2: "bilinear", 3: "bicubic"}

# Layers that own no data in the .bin file.
_WEIGHTLESS = frozenset(
    {
        "Input",
        "Split",
        "Concat",
        "Eltwise",
        "BinaryOp",
        "Interp",
        "PixelShuffle",
        "ReLU",
        "Sigmoid",
        "TanH",
        "Clip",
        "Crop",
        "Pooling",
        "Noop",
        "Dropout",
        "UnaryOp",
        "Reshape",
        "Permute",
        "Flatten",
    }
)
_PASSTHROUGH = frozenset({"Split", "Noop", "Dropout"})


# --------------------------------------------------------------------------------------------------------
# .param parsing


@dataclass(frozen=True)
class NcnnLayer:
    """One layer line of an ncnn ``.param`` file.

    Attributes:
        type: layer type (``Convolution``, ``PReLU``, ``Interp``...).
        name: layer name, unique in the graph.
        inputs: names of the blobs the layer reads.
        outputs: names of the blobs the layer writes.
        params: ``k=v`` parameters by integer id; array parameters (written ``-233xx=n,v1,...``) are
            stored under their plain id ``xx`` as a list.
        line: 1-based line number in the ``.param`` file, for messages.
    """

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, Any] = field(default_factory=dict)
    line: int = 0

    def get(self, key: int, default: Any = None) -> Any:
        """A parameter value, or ``default`` when the layer does not set it."""
        return self.params.get(key, default)

    def where(self) -> str:
        """``Type 'name' (line N)``, for error messages."""
        return f"{self.type} '{self.name}' (line {self.line})"


@dataclass(frozen=True)
class NcnnGraph:
    """A parsed ncnn ``.param`` graph, layers in file (execution) order.

    Attributes:
        layers: the layers.
        blob_count: the blob count declared on the file's second line.
        source: the file the graph came from, for messages.
    """

    layers: tuple[NcnnLayer, ...]
    blob_count: int
    source: str = "<param>"


def _parse_number(text: str) -> int | float:
    if any(c in text for c in ".eE") and not text.lower().startswith("0x"):
        return float(text)
    return int(text)


def _parse_params(tokens: Sequence[str], where: str) -> dict[int, Any]:
    params: dict[int, Any] = {}
    for token in tokens:
        key_text, sep, value_text = token.partition("=")
        if not sep:
            raise WeightsError(f"{where}: malformed parameter {token!r} (expected id=value)")
        try:
            key = int(key_text)
            if key <= -23300:
                count_text, *values = value_text.split(",")
                count = int(count_text)
                if count != len(values):
                    raise ValueError(f"array declares {count} values but has {len(values)}")
                params[-key - 23300] = [_parse_number(v) for v in values]
            else:
                params[key] = _parse_number(value_text)
        except ValueError as exc:
            raise WeightsError(f"{where}: malformed parameter {token!r} ({exc})") from None
    return params


def parse_param(source: str | Path, *, text: str | None = None) -> NcnnGraph:
    """Parse an ncnn text ``.param`` file.

    Args:
        source: path of the ``.param`` file (also used in messages when ``text`` is given).
        text: the file's contents, when already in memory.

    Returns:
        The graph, layers in file order.

    Raises:
        WeightsError: the file is not a text ncnn graph (binary ``.param.bin`` files are refused) or a line
            is malformed.
    """
    path = Path(source)
    if text is None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise WeightsError(f"cannot read ncnn graph {path}: {exc.strerror or exc}") from None
        if len(raw) >= 4 and struct.unpack("<i", raw[:4])[0] == NCNN_MAGIC:
            raise WeightsError(
                f"{path} is a binary .param.bin graph; convert it with the text .param file instead"
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WeightsError(f"{path} is not a text ncnn .param file (not UTF-8)") from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != str(NCNN_MAGIC):
        raise WeightsError(f"{path} is not an ncnn .param file (first line must be the magic {NCNN_MAGIC})")
    try:
        layer_count, blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError):
        raise WeightsError(f"{path}: line 2 must hold the layer and blob counts") from None

    layers: list[NcnnLayer] = []
    for lineno, line in enumerate(lines[2:], start=3):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{path}:{lineno}"
        if len(tokens) < 4:
            raise WeightsError(f"{where}: malformed layer line {line.strip()!r}")
        layer_type, name = tokens[0], tokens[1]
        try:
            n_in, n_out = int(tokens[2]), int(tokens[3])
        except ValueError:
            raise WeightsError(f"{where}: malformed blob counts in layer '{name}'") from None
        blobs = tokens[4 : 4 + n_in + n_out]
        if len(blobs) != n_in + n_out:
            raise WeightsError(
                f"{where}: layer '{name}' declares {n_in}+{n_out} blobs but lists {len(blobs)}"
            )
        params = _parse_params(tokens[4 + n_in + n_out :], where)
        layers.append(NcnnLayer(layer_type, name, tuple(blobs[:n_in]), tuple(blobs[n_in:]), params, lineno))
    if len(layers) != layer_count:
        raise WeightsError(f"{path}: header declares {layer_count} layers but the file has {len(layers)}")
    return NcnnGraph(tuple(layers), blob_count, str(path))


# --------------------------------------------------------------------------------------------------------
# .bin decoding


class _BinReader:
    """Sequential reader of an ncnn weight blob."""

    def __init__(self, data: bytes, path: str) -> None:
        self.data = data
        self.path = path
        self.pos = 0
        self.storage: set[str] = set()

    def _take(self, nbytes: int, what: str) -> bytes:
        end = self.pos + nbytes
        if end > len(self.data):
            raise WeightsError(
                f"{self.path} ends early while reading {what} (needs {nbytes} bytes at offset {self.pos}, "
                f"file has {len(self.data)}); the .bin does not belong to this .param"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def raw(self, count: int, what: str) -> np.ndarray:
        """``count`` float32 values without a storage tag (biases, PReLU slopes)."""
        return np.frombuffer(self._take(4 * count, what), dtype="<f4").astype(np.float32)

    def tagged(self, count: int, what: str) -> np.ndarray:
        """``count`` values preceded by a 4-byte storage tag (convolution and inner-product weights)."""
        tag_bytes = self._take(4, what)
        (tag,) = struct.unpack("<I", tag_bytes)
        if tag == TAG_FP16:
            nbytes = (2 * count + 3) // 4 * 4
            values = np.frombuffer(self._take(nbytes, what)[: 2 * count], dtype="<f2")
            self.storage.add("fp16")
            return values.astype(np.float32)
        if tag == TAG_INT8:
            raise WeightsError(
                f"{self.path}: {what} is int8-quantised; convert the float (fp32/fp16) model instead"
            )
        if tag in (TAG_FP32, TAG_FP32_SCALED):
            self.storage.add("fp32")
            return self.raw(count, what)
        if sum(tag_bytes) != 0:
            table = np.frombuffer(self._take(256 * 4, what), dtype="<f4")
            nbytes = (count + 3) // 4 * 4
            index = np.frombuffer(self._take(nbytes, what)[:count], dtype=np.uint8)
            self.storage.add("codebook")
            return table[index].astype(np.float32)
        raise WeightsError(f"{self.path}: unknown storage tag 0x{tag:08X} before {what}")  # pragma: no cover


def _read_layer_weights(layer: NcnnLayer, reader: _BinReader) -> dict[str, np.ndarray]:
    """Decode the data one layer owns in the ``.bin`` file, in ncnn's order."""
    what = layer.where()
    t = layer.type
    if t in ("Convolution", "Deconvolution", "ConvolutionDepthWise", "DeconvolutionDepthWise"):
        if layer.get(8, 0):
            raise WeightsError(f"{what} is int8-quantised; convert the float (fp32/fp16) model instead")
        if layer.get(19, 0):
            raise WeightsError(f"{what} takes dynamic weights, which the importer does not support")
        out: dict[str, np.ndarray] = {"weight": reader.tagged(int(layer.get(6, 0)), f"weights of {what}")}
        if layer.get(5, 0):
            out["bias"] = reader.raw(int(layer.get(0, 0)), f"bias of {what}")
        return out
    if t == "InnerProduct":
        if layer.get(8, 0):
            raise WeightsError(f"{what} is int8-quantised; convert the float (fp32/fp16) model instead")
        out = {"weight": reader.tagged(int(layer.get(2, 0)), f"weights of {what}")}
        if layer.get(1, 0):
            out["bias"] = reader.raw(int(layer.get(0, 0)), f"bias of {what}")
        return out
    if t == "PReLU":
        return {"slope": reader.raw(int(layer.get(0, 0)), f"slopes of {what}")}
    if t in _WEIGHTLESS:
        return {}
    raise WeightsError(
        f"{what}: ncnn layer type '{t}' is not supported by the importer "
        "(supported graphs: Real-ESRGAN Compact, ESRGAN/RRDBNet, Real-CUGAN 2x/3x)"
    )


def _read_weights(graph: NcnnGraph, bin_path: Path) -> tuple[dict[str, dict[str, np.ndarray]], set[str]]:
    try:
        data = bin_path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read ncnn weights {bin_path}: {exc.strerror or exc}") from None
    reader = _BinReader(data, str(bin_path))
    weights = {layer.name: _read_layer_weights(layer, reader) for layer in graph.layers}
    if reader.pos != len(data):
        raise WeightsError(
            f"{bin_path} has {len(data) - reader.pos} bytes left after the last layer of {graph.source}; "
            "the .bin does not belong to this .param"
        )
    return weights, reader.storage


# --------------------------------------------------------------------------------------------------------
# graph normalisation and matching


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


# --------------------------------------------------------------------------------------------------------
# reference interpreter: runs a normalised ncnn graph with torch, to check a conversion


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


# --------------------------------------------------------------------------------------------------------
# public API


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_ncnn` wrote.

    Attributes:
        out_path: the ``.safetensors`` file.
        architecture: spandrel architecture id (``Compact``, ``ESRGAN``).
        scale: scale of the network itself, as spandrel reports it.
        post_scale: resize factor applied after the network (``0.5`` for ``realesr-animevideov3-x2``),
            None when the graph has none.
        post_resize: resize mode of that step (``bicubic``...), None without one.
        effective_scale: ``scale * post_scale`` (or ``scale``).
        description: human-readable summary (``Compact 64nf 16nc x4``).
        parameters: number of scalar parameters.
        source_storage: storage of the source weights (``fp16``, ``fp32``, ``codebook`` or combinations).
        sha256: SHA-256 of the written file.
        metadata: the ``__metadata__`` written into the file.
    """

    out_path: Path
    architecture: str
    scale: int
    post_scale: float | None
    post_resize: str | None
    effective_scale: float
    description: str
    parameters: int
    source_storage: str
    sha256: str
    metadata: dict[str, str]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _format_float(value: float) -> str:
    return repr(round(float(value), 6))


def import_ncnn(
    param_path: str | Path,
    bin_path: str | Path,
    out_path: str | Path,
    *,
    name: str | None = None,
    metadata: Mapping[str, str] | None = None,
    pre_pad: int | None = None,
    pro: bool | None = None,
    verify: bool = True,
) -> ImportResult:
    """Convert an ncnn model to a ``.safetensors`` state dict that spandrel loads.

    Args:
        param_path: the text ``.param`` graph.
        bin_path: the ``.bin`` weights belonging to it.
        out_path: where to write the ``.safetensors`` file (parent folders are created; an existing file
            is replaced atomically).
        name: model name recorded in the metadata; defaults to the ``.param`` file's stem.
        metadata: extra string metadata (e.g. ``licence``, ``source``); keys are stored with the
            ``diffusify.`` prefix unless they already have it.
        pre_pad: mirror padding (pixels) the runtime should add around a frame before the network. None
            records the family default: 10 for Real-ESRGAN networks (Compact, ESRGAN), 0 for Real-CUGAN
            (spandrel's Real-CUGAN pads by itself, as the ncnn runtime does).
        pro: for Real-CUGAN graphs, whether the weights are a "pro" model (which expects inputs mapped to
            ``0.15 + 0.7 x``; the ncnn runtime applies that outside the graph, so the graph cannot tell).
            None infers it from the folder name ``models-pro``.
        verify: run the ncnn graph itself (interpreted with torch) and the converted spandrel model on a
            small random input and require the same output; catches structures that match by shape but
            are wired differently.

    Returns:
        What was written, with the detected architecture, network scale and post-scale.

    Raises:
        WeightsError: unreadable files, a ``.bin`` that does not match the ``.param``, or a graph that is
            not a supported network.
    """
    import torch

    param_path, bin_path, out_path = Path(param_path), Path(bin_path), Path(out_path)
    if pro is None:
        pro = param_path.resolve().parent.name == "models-pro"
    graph = parse_param(param_path)
    weights, storage = _read_weights(graph, bin_path)
    g = _Graph(graph, weights)

    # A trailing resize of the network output is carried as metadata, not as part of the network.
    post_scale: float | None = None
    post_resize: str | None = None
    out = g.output
    tail = g.peek(out)
    if tail is not None and tail.type == "Interp":
        try:
            post_resize, post_scale = _interp_scale(tail)
        except _Mismatch as exc:
            raise WeightsError(f"{param_path}: {exc}") from None
        out = tail.inputs[0]
        if _approx(post_scale, 1.0):
            post_scale, post_resize = None, None

    reasons: list[str] = []
    match: _Match | None = None
    for arch, matcher in _MATCHERS:
        g.reset()
        if tail is not None and tail.type == "Interp":
            g.used.add(tail.name)
        try:
            if arch == "RealCUGAN":
                match = matcher(g, out, pro=pro)
            else:
                match = matcher(g, out)
            break
        except _Mismatch as exc:
            reasons.append(f"not {arch}: {exc}")
    if match is None:
        raise WeightsError(
            f"{param_path}: unsupported ncnn graph (supported: Real-ESRGAN Compact, ESRGAN/RRDBNet, "
            "Real-CUGAN 2x/3x); " + "; ".join(reasons)
        )

    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in match.state.items()}
    tensors = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
    descriptor = _check_with_spandrel(tensors, match, param_path)
    if verify:
        _verify_against_graph(g, out, descriptor, match, pro=pro, where=param_path)

    if pre_pad is None:
        pre_pad = DEFAULT_REAL_ESRGAN_PRE_PAD if match.architecture in ("Compact", "ESRGAN") else 0
    effective = match.scale * (post_scale if post_scale is not None else 1.0)
    meta: dict[str, str] = {
        "diffusify.format": "spandrel-state-dict",
        "diffusify.importer": f"diffusify.weights.ncnn/{IMPORTER_VERSION}",
        "diffusify.name": name or param_path.stem,
        "diffusify.architecture": match.architecture,
        "diffusify.description": match.description,
        "diffusify.scale": str(match.scale),
        "diffusify.effective_scale": _format_float(effective),
        "diffusify.pre_pad": str(int(pre_pad)),
        "diffusify.source_format": "ncnn",
        "diffusify.source_files": f"{param_path.name} {bin_path.name}",
        "diffusify.source_param_sha256": _sha256(param_path),
        "diffusify.source_bin_sha256": _sha256(bin_path),
        "diffusify.source_storage": "+".join(sorted(storage)) or "none",
    }
    if post_scale is not None and post_resize is not None:
        meta["diffusify.post_scale"] = _format_float(post_scale)
        meta["diffusify.post_resize"] = post_resize
    for key, value in (metadata or {}).items():
        full = key if key.startswith(META_PREFIX) else META_PREFIX + key
        meta[full] = str(value)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    write_safetensors(tmp, arrays, meta)
    tmp.replace(out_path)
    return ImportResult(
        out_path=out_path,
        architecture=match.architecture,
        scale=match.scale,
        post_scale=post_scale,
        post_resize=post_resize,
        effective_scale=effective,
        description=match.description,
        parameters=int(sum(a.size for a in arrays.values())),
        source_storage=meta["diffusify.source_storage"],
        sha256=_sha256(out_path),
        metadata=meta,
    )


def write_safetensors(
    path: str | Path, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str]
) -> None:
    """Write float32 arrays as a byte-for-byte reproducible ``.safetensors`` file.

    The header lists tensors and metadata in sorted order (the reference writer orders metadata by hash,
    so identical conversions would otherwise get different checksums).

    Args:
        path: file to write.
        arrays: tensors by name, written as little-endian float32.
        metadata: string metadata (``__metadata__``).
    """
    header: dict[str, Any] = {"__metadata__": {str(k): str(metadata[k]) for k in sorted(metadata)}}
    chunks: list[bytes] = []
    offset = 0
    for key in sorted(arrays):
        data = np.ascontiguousarray(arrays[key], dtype="<f4")
        raw = data.tobytes()
        header[key] = {"dtype": "F32", "shape": list(data.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    head += b" " * (-len(head) % 8)
    with Path(path).open("wb") as fh:
        fh.write(struct.pack("<Q", len(head)))
        fh.write(head)
        for raw in chunks:
            fh.write(raw)


def _check_with_spandrel(tensors: dict[str, torch.Tensor], match: _Match, param_path: Path) -> Any:
    """Load the converted state dict with spandrel and confirm the detected architecture and scale."""
    from spandrel import ModelLoader

    try:
        descriptor = ModelLoader().load_from_state_dict(dict(tensors))
    except Exception as exc:  # spandrel raises several types for unusable state dicts
        raise WeightsError(
            f"{param_path}: converted {match.description} is not loadable by spandrel ({type(exc).__name__}: {exc})"
        ) from None
    if descriptor.architecture.id != match.architecture or descriptor.scale != match.scale:
        raise WeightsError(
            f"{param_path}: spandrel detects the converted weights as {descriptor.architecture.id} "
            f"x{descriptor.scale}, expected {match.architecture} x{match.scale}"
        )
    return descriptor


# --------------------------------------------------------------------------------------------------------
# metadata of converted files


@dataclass(frozen=True)
class ModelMetadata:
    """The ``diffusify.*`` metadata of a converted model file.

    Attributes:
        post_scale: resize factor to apply after the network, None when there is none.
        post_resize: the resize mode of that step (``bicubic``, ``bilinear``, ``nearest``).
        pre_pad: mirror padding in pixels to add around a frame before the network (0: none).
        architecture: spandrel architecture id recorded at conversion, None when unknown.
        scale: network scale recorded at conversion, None when unknown.
        raw: all string metadata of the file.
    """

    post_scale: float | None = None
    post_resize: str | None = None
    pre_pad: int = 0
    architecture: str | None = None
    scale: int | None = None
    raw: dict[str, str] = field(default_factory=dict)

    @property
    def effective_scale(self) -> float | None:
        """Network scale times post-scale, None when the network scale is unknown."""
        if self.scale is None:
            return None
        return self.scale * (self.post_scale if self.post_scale is not None else 1.0)


def _safetensors_metadata(path: Path) -> dict[str, str]:
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                raise WeightsError(f"{path} is not a safetensors file (too short)")
            (length,) = struct.unpack("<Q", head)
            if length > 100_000_000:
                raise WeightsError(f"{path} is not a safetensors file (header length {length})")
            header = json.loads(fh.read(length))
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise WeightsError(f"{path} is not a safetensors file (bad header)") from None
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}


def read_metadata(path: str | Path) -> ModelMetadata:
    """Read the conversion metadata of a model file.

    Files other than ``.safetensors`` (``.pth``, ``.ckpt``...) carry none; they get the defaults (no
    post-scale, no pre-padding).

    Args:
        path: the model file.

    Returns:
        The metadata.

    Raises:
        WeightsError: the file is unreadable, or a ``.safetensors`` file with a malformed header or
            malformed ``diffusify.*`` values.
    """
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return ModelMetadata()
    raw = _safetensors_metadata(path)
    try:
        post_scale = float(raw["diffusify.post_scale"]) if "diffusify.post_scale" in raw else None
        pre_pad = int(raw.get("diffusify.pre_pad", "0"))
        scale = int(raw["diffusify.scale"]) if "diffusify.scale" in raw else None
    except ValueError as exc:
        raise WeightsError(f"{path}: malformed diffusify metadata ({exc})") from None
    if post_scale is not None and not (0.0 < post_scale < 64.0):
        raise WeightsError(f"{path}: diffusify.post_scale {post_scale} is out of range")
    post_resize = raw.get("diffusify.post_resize", "bicubic" if post_scale is not None else None)
    if post_resize is not None and post_resize not in _RESIZE_MODES.values():
        raise WeightsError(f"{path}: unknown diffusify.post_resize {post_resize!r}")
    return ModelMetadata(
        post_scale=post_scale,
        post_resize=post_resize if post_scale is not None else None,
        pre_pad=pre_pad,
        architecture=raw.get("diffusify.architecture"),
        scale=scale,
        raw=raw,
    )


def read_post_scale(path: str | Path) -> float | None:
    """The resize factor to apply after the network of a converted model, None when there is none.

    The model's effective scale is ``network scale x post_scale`` (``4 x 0.5`` for
    ``realesr-animevideov3-x2``).

    Args:
        path: the model file.

    Returns:
        The post-scale factor, or None.
    """
    return read_metadata(path).post_scale


def apply_post_scale(image: torch.Tensor, post_scale: float, mode: str = "bicubic") -> torch.Tensor:
    """Resize a network output by ``post_scale`` the way ncnn's Interp layer does.

    Apply it to the *unclamped* network output (``descriptor.model(x)``), then clamp: the ncnn graph
    resizes before the runtime clamps to 8 bits, and the cubic kernel's overshoot at highlights matters
    (clamping first, as calling a spandrel descriptor does, drops the agreement with ncnn from about 91 dB
    to about 67 dB PSNR).

    ncnn resizes with half-pixel centres (``align_corners=False``), the cubic kernel with ``a = -0.75``,
    clamped borders and no antialiasing: the same as :func:`torch.nn.functional.interpolate` with those
    settings. The output size is ``floor(size * post_scale)``.

    Args:
        image: ``(N, C, H, W)`` or ``(C, H, W)`` float tensor.
        post_scale: the factor, e.g. 0.5.
        mode: ``bicubic``, ``bilinear`` or ``nearest``.

    Returns:
        The resized tensor (not clamped; clamp when converting to pixels).
    """
    import torch.nn.functional as F

    if mode not in _RESIZE_MODES.values():
        raise WeightsError(f"unknown post-resize mode {mode!r} (use bicubic, bilinear or nearest)")
    squeeze = image.dim() == 3
    x = image.unsqueeze(0) if squeeze else image
    h, w = x.shape[-2:]
    size = (int(math.floor(h * post_scale + 1e-6)), int(math.floor(w * post_scale + 1e-6)))
    kwargs: dict[str, Any] = {} if mode == "nearest" else {"align_corners": False}
    y = F.interpolate(x, size=size, scale_factor=None, mode=mode, **kwargs)
    return y.squeeze(0) if squeeze else y


# --------------------------------------------------------------------------------------------------------
# command line


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: convert one ncnn model and print what was written."""
    parser = argparse.ArgumentParser(
        prog="python -m diffusify.weights.ncnn",
        description="Convert an ncnn model (.param + .bin) to a spandrel-loadable .safetensors file.",
    )
    parser.add_argument("param", type=Path, help="text .param graph")
    parser.add_argument("bin", type=Path, help=".bin weights")
    parser.add_argument("out", type=Path, help="output .safetensors file")
    parser.add_argument("--name", help="model name recorded in the metadata")
    parser.add_argument("--licence", help="licence of the weights (SPDX id), recorded in the metadata")
    parser.add_argument("--source", help="where the source files came from, recorded in the metadata")
    parser.add_argument(
        "--pre-pad", type=int, default=None, help="mirror padding in pixels (default: family)"
    )
    args = parser.parse_args(argv)
    extra = {k: v for k, v in (("licence", args.licence), ("source", args.source)) if v}
    try:
        result = import_ncnn(
            args.param, args.bin, args.out, name=args.name, metadata=extra, pre_pad=args.pre_pad
        )
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    post = f" then {result.post_resize} x{result.post_scale}" if result.post_scale is not None else ""
    print(
        f"{result.out_path}: {result.description}{post} (effective x{result.effective_scale:g}), "
        f"{result.parameters} parameters from {result.source_storage}, sha256 {result.sha256}"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
