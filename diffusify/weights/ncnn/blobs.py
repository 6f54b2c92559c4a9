"""Decode the weights of an ncnn ``.bin`` file, layer by layer in ``.param`` order.

The ``.bin`` layout, per layer in ``.param`` order: a Convolution's weights (``weight_data_size`` values,
OIHW) are preceded by a 4-byte storage tag (``0``: raw float32, ``0x01306B47``: float16 padded to 4 bytes,
another non-zero value: a 256-entry float32 codebook followed by one uint8 index per value), then its bias
as raw float32 when ``bias_term`` is set. PReLU slopes are raw float32 without a tag.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from diffusify.weights.errors import WeightsError
from diffusify.weights.ncnn.parser import NcnnGraph, NcnnLayer

TAG_FP32 = 0x00000000
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056

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
