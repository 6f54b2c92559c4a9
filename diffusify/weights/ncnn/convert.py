"""Convert an ncnn model to a spandrel-loadable ``.safetensors`` file: :func:`import_ncnn`."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diffusify.weights.errors import WeightsError
from diffusify.weights.ncnn.blobs import _read_weights
from diffusify.weights.ncnn.interpret import _verify_against_graph
from diffusify.weights.ncnn.match import _MATCHERS, _approx, _Graph, _interp_scale, _Match, _Mismatch
from diffusify.weights.ncnn.metadata import META_PREFIX
from diffusify.weights.ncnn.parser import parse_param

if TYPE_CHECKING:
    import torch

IMPORTER_VERSION = "1"

DEFAULT_REAL_ESRGAN_PRE_PAD = 10
"""Pixels of mirror padding that Real-ESRGAN runtimes add around a frame before the network."""


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

