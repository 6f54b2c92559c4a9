"""Neural restoration with spandrel: ``upscale.spandrel``, ``denoise.spandrel``, ``restore.spandrel``.

Any model spandrel (and spandrel_extra_arches, when installed) loads from .pth/.safetensors/.ckpt: ESRGAN,
Real-ESRGAN Compact, SPAN, SwinIR, DAT, SCUNet, face restorers... The model's scale and channels are read at plan
time, so the stream info (and merge validation) knows the output size before a frame is decoded.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator

from diffusify.core.errors import one_line
from diffusify.core.stream import StreamInfo
from diffusify.processors.base import ModelRef, Params, PlanContext, Processor, Resources, StreamError

if TYPE_CHECKING:
    import torch

    from diffusify.core.frame import Frame

_LOAD_LOCK = threading.Lock()
_META_CACHE: dict[tuple[str, float, int], dict[str, Any]] = {}


def _check_batch(v: object) -> object:
    if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 64):
        return v
    raise ValueError(f"must be auto or a whole number from 1 to 64 (got {v!r})")


Batch = Annotated[Literal["auto"] | int, BeforeValidator(_check_batch), WithJsonSchema(
    {"anyOf": [{"const": "auto"}, {"type": "integer", "minimum": 1, "maximum": 64}]})]


class SpandrelParams(Params):
    model: ModelRef = Field(description="Model file (.pth/.safetensors/.ckpt) or a name from weights/models.yaml.")
    tile: Literal["auto", "none"] | int = Field(
        "auto", description="Tile size in input pixels: auto (largest that fits free memory), none (whole frame), "
                            "or a size >= 32.")
    overlap: int = Field(16, ge=0, le=256, description="Pixels each tile shares with its neighbours (at least); "
                                                       "overlaps are feather-blended.")
    min_tile: int = Field(64, ge=32, le=4096, description="Smallest tile the out-of-memory backoff may reach.")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto", description="auto: fp16 on CUDA where the model supports it, else fp32.")
    channels_last: Literal["auto"] | bool = Field(
        "auto", description="The channels-last memory format: auto times both layouts at setup on this machine (a "
                            "few model calls on a small input, up to 512x512 on a GPU) and keeps the faster; true "
                            "or false forces one.")
    batch: Batch = Field(
        1, description="Frames per model call, or auto: on a GPU the largest batch up to 8 whose working memory "
                        "(measured with one call on a whole frame at setup) fits half the free memory; 1 on the "
                        "CPU.")
    compile: bool = Field(False, description="torch.compile the model at setup, for the stream's frame size and "
                                             "batch (tens of seconds before the first frame, faster after).")
    border: int = Field(10, ge=0, le=128, description="Reflect-pad the frame by this much before the model and "
                                                      "crop after (avoids dark or smeared borders).")

    @field_validator("tile")
    @classmethod
    def _tile(cls, v: object) -> object:
        if isinstance(v, int) and v < 32:
            raise ValueError(f"must be auto, none, or >= 32 (got {v})")
        return v


def resolve_model(name: str) -> str:
    """A file path for ``name``: the path itself, or the file of a manifest entry. Refuses what is not a regular
    file (a FIFO would block the loader forever) and TorchScript archives (loading one runs its code)."""
    if os.path.exists(name):
        from diffusify.io.paths import special_kind

        kind = special_kind(name)
        if kind is not None:
            raise StreamError(f"{name}: is {kind}, not a model file; give a .safetensors or .pth file",
                              param="model")
        if _is_torchscript(name):
            raise StreamError(f"{name} is a TorchScript archive, which runs its own code when loaded: diffusify "
                              "does not load those; use the model as .safetensors (or a state-dict .pth)",
                              param="model")
        return name
    try:
        from diffusify.weights.manifest import resolve_file
    except ImportError:
        resolve_file = None
    if resolve_file is not None:
        found = resolve_file(name)
        if found:
            return found
    raise StreamError(f"model not found: {name} (give a file path, or a name from `diffusify weights list`; "
                      "`diffusify weights pull NAME` downloads one)", param="model")


def _is_torchscript(path: str) -> bool:
    """A TorchScript archive: a zip holding the serialized code (``code/``) and ``constants.pkl``."""
    import zipfile

    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _conversion_meta(path: str) -> tuple[float | None, str | None]:
    """Post-scale and its resize mode carried by models converted from ncnn (None for others)."""
    from diffusify.weights.ncnn.metadata import read_metadata

    try:
        meta = read_metadata(path)
    except Exception:  # not a safetensors file, or no diffusify metadata
        return None, None
    return meta.post_scale, meta.post_resize


_FACTS_VERSION = 1  # bump when the facts below change


def _facts_file(path: str) -> Any:
    """Where the facts of this file's content are kept: the weights cache, by the content's sha256."""
    import hashlib
    from pathlib import Path

    from diffusify.weights.manifest import default_cache_dir

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return Path(default_cache_dir()) / "facts" / f"{h.hexdigest()}.v{_FACTS_VERSION}.json"


def model_meta(path: str) -> dict[str, Any]:
    """Scale, channels, purpose and size needs of a model file.

    Reading them means building the model with torch and spandrel (seconds), so they are kept: in this process
    per file version, and on disk by the file's content hash, so a second ``validate`` needs no torch."""
    import json

    st = os.stat(path)
    key = (os.path.realpath(path), st.st_mtime, st.st_size)
    with _LOAD_LOCK:
        if key in _META_CACHE:
            return _META_CACHE[key]
        facts = _facts_file(path)
        try:
            _META_CACHE[key] = json.loads(facts.read_text())
            return _META_CACHE[key]
        except (OSError, ValueError):
            pass
        desc = load_descriptor(path, "cpu")
        req = desc.size_requirements
        post_scale, post_resize = _conversion_meta(path)
        meta = {
            "architecture": desc.architecture.name,
            "scale": desc.scale,
            "post_scale": post_scale,
            "post_resize": post_resize,
            "in_channels": desc.input_channels,
            "out_channels": desc.output_channels,
            "purpose": desc.purpose,
            "multiple_of": req.multiple_of,
            "minimum": req.minimum,
            "square": req.square,
            "supports_half": desc.supports_half,
            "supports_bf16": desc.supports_bfloat16,
            "params": sum(p.numel() for p in desc.model.parameters()),
        }
        _META_CACHE[key] = meta
        try:  # written whole or not at all: a temporary file, then a rename
            facts.parent.mkdir(parents=True, exist_ok=True)
            tmp = facts.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(meta))
            os.replace(tmp, facts)
        except OSError:
            pass  # a read-only cache only costs the next run the load
        return meta


def load_descriptor(path: str, device: str) -> Any:
    """Load an image model with spandrel (extra architectures when installed). Errors become StreamError."""
    import spandrel

    try:
        import spandrel_extra_arches  # type: ignore[import-not-found]

        if not getattr(load_descriptor, "_extra", False):
            spandrel_extra_arches.install()
            load_descriptor._extra = True  # type: ignore[attr-defined]
    except ImportError:
        pass
    try:
        loader = spandrel.ModelLoader(device=device)
        if path.lower().endswith(".pt"):
            # spandrel would try torch.jit.load first; a .pt here is a pickled state dict, loaded weights-only
            import torch

            desc = loader.load_from_state_dict(torch.load(path, map_location=device, weights_only=True))
        else:
            desc = loader.load_from_file(path)
    except Exception as e:  # spandrel raises many kinds for unsupported files
        raise StreamError(f"spandrel cannot load {path}: {one_line(str(e), 300)} (is it an image model spandrel "
                          "supports? `diffusify weights list` names ones that are)", param="model") from e
    if not isinstance(desc, spandrel.ImageModelDescriptor):
        raise StreamError(f"{path} is a {type(desc).__name__} (e.g. inpainting); this node needs an image-to-image "
                          "model", param="model")
    return desc.eval()


AUTO_BATCH_MOST = 8
AUTO_BATCH_SHARE = 0.5


def fit_batch(per_frame: float, available: float, *, share: float = AUTO_BATCH_SHARE,
              most: int = AUTO_BATCH_MOST) -> int:
    """``batch: auto``: the largest batch in ``1..most`` whose working memory (``per_frame`` bytes a frame, as
    measured) fits in ``share`` of ``available`` bytes; 1 when not even one frame does (tiling then copes)."""
    if per_frame <= 0:
        return most
    return max(1, min(most, int(available * share // per_frame)))


class OutOfMemory(Exception):
    """The model ran out of device memory at the current tile size."""


class SpandrelProcessor(Processor):
    """Run a spandrel image model on every frame, tiled when needed.

    Input: ``(C, H, W)`` float32 in [0, 1] (RGB; gray and alpha are handled per the model's channels).
    Output: ``(C', H * s, W * s)`` float32 in [0, 1] on the node's device, ``s`` the model's effective scale.
    """

    Params = SpandrelParams
    resources = Resources(device="gpu", heavy=True)
    batching = True

    @classmethod
    def infer_stream(cls, params: SpandrelParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        src = inputs["input"]
        meta = model_meta(resolve_model(params.model))
        scale = meta["scale"] * (meta["post_scale"] or 1)
        width, height = round(src.width * scale), round(src.height * scale)
        channels = 3 if meta["out_channels"] == 3 else (1 if meta["out_channels"] == 1 else meta["out_channels"])
        return src.replace(width=width, height=height, channels=channels)

    @classmethod
    def memory_estimate(cls, params: SpandrelParams, inputs: Mapping[str, StreamInfo],
                        output: StreamInfo | None) -> int:
        """The weights plus a rough working set: the feature maps of one call (a tile, or the whole frame, times
        ``batch``; 64 channels, a few alive at once) and the upscaled output of that call."""
        meta = model_meta(resolve_model(params.model))
        weights = meta["params"] * 4
        src = inputs.get("input")
        if src is None:
            return weights
        tile = params.tile if isinstance(params.tile, int) else (512 if params.tile == "auto" else None)
        h, w = (min(tile, src.height), min(tile, src.width)) if tile else (src.height, src.width)
        area = h * w * (params.batch if isinstance(params.batch, int) else 1)  # auto takes what is free
        scale = float(meta["scale"]) * float(meta.get("post_scale") or 1)
        features = area * 64 * 4 * 4
        out = int(area * scale * scale * 3 * 4 * 2)
        return weights + features + out

    @classmethod
    def paths(cls, params: SpandrelParams) -> tuple[list[str], list[str]]:
        return ([params.model] if os.path.exists(params.model) else []), []

    @property
    def batch_size(self) -> int:
        """The frames per model call: the ``batch`` parameter, or what ``auto`` chose at setup."""
        return getattr(self, "_batch", None) or (self.params.batch if isinstance(self.params.batch, int) else 1)

    def setup(self) -> None:
        import torch

        p = self.params
        self.model_path = resolve_model(p.model)
        self.meta = model_meta(self.model_path)
        desc = load_descriptor(self.model_path, "cpu")
        dev = self._torch_device()
        notes: list[str] = []
        if dev.type == "cuda":
            # every frame of a stream has one size (and every tile one size): cuDNN's autotuner times its kernels
            # once per shape, in the warm-up below, and keeps the fastest. A process-wide switch, set once.
            torch.backends.cudnn.benchmark = True
            notes.append("cuDNN autotuning")
        self.dtype = self._pick_dtype(desc, dev)
        desc.to(dev)
        if self.dtype != torch.float32:
            desc.to(self.dtype)
        self.desc = desc
        self.net = desc.model
        self.channels_last = self._faster_layout() if p.channels_last == "auto" else bool(p.channels_last)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.tile: int | None = None if p.tile == "none" else (p.tile if isinstance(p.tile, int) else None)
        if p.tile == "auto":
            self.tile = self._auto_tile()
        self._batch = p.batch if isinstance(p.batch, int) else self._auto_batch(notes)
        started = time.perf_counter()
        if p.compile:
            # static shapes: compiled for the stream's frame size and this batch in the warm-up below; short
            # batches (the stream's tail) are padded to it, so no frame waits for a recompilation
            self.net = torch.compile(self.net, dynamic=False)
        # one call before the first frame: kernel selection, allocator pools and (with compile) the compilation
        # happen in setup, not in the first frame's latency
        self._warm_up()
        if p.compile:
            notes.append(f"compiled in {time.perf_counter() - started:.1f} s")
        name = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[self.dtype]
        layout = ", channels_last" if self.channels_last else ""
        tile = f", tiles of {self.tile}" if self.tile else ""
        self.notes.append(f"{name}{layout}{tile}, batch {self._batch}" + "".join(f", {n}" for n in notes))

    def _pick_dtype(self, desc: Any, dev: torch.device) -> torch.dtype:
        import torch

        want = self.params.precision
        if want == "auto":
            want = "fp16" if dev.type == "cuda" and desc.supports_half else "fp32"
        if want == "fp16" and not desc.supports_half:
            raise StreamError(f"{desc.architecture.name} does not support fp16; use precision: fp32 or bf16",
                              param="precision")
        if want == "bf16" and not desc.supports_bfloat16:
            raise StreamError(f"{desc.architecture.name} does not support bf16; use precision: fp32",
                              param="precision")
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[want]

    def _auto_tile(self) -> int | None:
        """Largest tile that fits the device's free memory, from a measured memory-per-pixel figure. On the CPU
        whole frames are used up to 4 megapixels."""
        import torch

        src = self.input_streams["input"]
        dev = self._torch_device()
        if dev.type != "cuda":
            return None if src.width * src.height <= 4_000_000 else 1024
        probe = 128
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        x = torch.rand(1, self.meta["in_channels"], probe, probe, device=dev, dtype=self.dtype)
        with torch.inference_mode():
            self._run_model(x)
        per_px = max(1.0, (torch.cuda.max_memory_allocated(dev) - base) / (probe * probe))
        free, _ = torch.cuda.mem_get_info(dev)
        side = int((free * 0.6 / per_px) ** 0.5)
        if side >= max(src.width, src.height) + 2 * self.params.border:
            return None
        return max(self.params.min_tile, side // 32 * 32)

    def _auto_batch(self, notes: list[str]) -> int:
        """``batch: auto``: on a GPU, the working memory of one frame measured with one call on a whole frame (as
        the frames will run: padded, tiled when tiles are set), then :func:`fit_batch` of what the device has
        free (the allocator's cached blocks included); 1 on the CPU, where batching gains nothing."""
        import torch

        dev = self._torch_device()
        if dev.type != "cuda":
            return 1
        src = self.input_streams["input"]
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        x = torch.rand(1, self.meta["in_channels"], src.height, src.width, device=dev)
        with torch.inference_mode():
            self._infer(x)
        torch.cuda.synchronize(dev)
        per_frame = torch.cuda.max_memory_allocated(dev) - base
        del x
        free, _ = torch.cuda.mem_get_info(dev)
        available = free + torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
        batch = fit_batch(per_frame, available)
        notes.append(f"batch auto: {per_frame / 2**20:.0f} MiB a frame, {available / 2**30:.1f} GiB free")
        return batch

    def _faster_layout(self) -> bool:
        """Whether channels-last runs the model faster here: each layout timed (best of 2, after a warm-up call)
        on an input of the model's kind: small on a CPU, up to 512x512 of the frame's size on a GPU (a small
        input there times the kernel launches, not the kernels). Measured, because it depends on the machine and
        the model (1.24x faster for the bundled Compact model on a 2-core CPU; on GPUs usually with fp16)."""
        import torch

        m = self.meta
        src = self.input_streams["input"]
        step = max(8, m["multiple_of"], m["minimum"])
        dev = self._torch_device()
        if dev.type == "cuda":
            h = max(step, min(512, src.height) // step * step)
            w = max(step, min(512, src.width) // step * step)
        else:
            h = w = max(step, min(96, src.height, src.width) // step * step)
        x = torch.rand(1, m["in_channels"], h, w, device=dev, dtype=self.dtype)
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        best: dict[bool, float] = {}
        with torch.inference_mode():
            for last in (False, True):
                fmt = torch.channels_last if last else torch.contiguous_format
                net, inp = self.net.to(memory_format=fmt), x.contiguous(memory_format=fmt)
                net(inp)
                times = []
                for _ in range(2):
                    sync()
                    t0 = time.perf_counter()
                    net(inp)
                    sync()
                    times.append(time.perf_counter() - t0)
                best[last] = min(times)
        self.net = self.net.to(memory_format=torch.contiguous_format)
        return best[True] < best[False]

    def _warm_up(self) -> None:
        """One call before the first frame. On a GPU, and when compiled, on input of exactly the frames' shape
        (the batch, the whole frame: the same padding and tiles), so that nothing is autotuned or compiled again
        when they come; on a CPU on one tile's worth, which primes the allocator just as well."""
        import torch

        src = self.input_streams["input"]
        dev = self._torch_device()
        if dev.type == "cuda" or self.params.compile:
            h, w = src.height, src.width
        else:
            h, w = min(src.height, self.tile or src.height), min(src.width, self.tile or src.width)
        x = torch.rand(self._batch, self.meta["in_channels"], h, w, device=dev, dtype=torch.float32)
        with torch.inference_mode():
            self._infer(x)

    # The single place the network is called: tests inject out-of-memory errors here.
    def _run_model(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        try:
            return self.net(x)
        except torch.OutOfMemoryError as e:
            raise OutOfMemory(str(e)) from e

    def _model_tile(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        from diffusify.ops.padding import crop_padding, pad_to

        m = self.meta
        x, pads = pad_to(x, multiple_of=m["multiple_of"], minimum=m["minimum"], square=m["square"])
        x = x.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = self._run_model(x)
        return crop_padding(y, pads, m["scale"]).float()

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` in [0, 1] -> model output, with border padding, tiling and out-of-memory backoff."""
        import torch

        from diffusify.ops.padding import crop_padding, pad_to
        from diffusify.ops.tiling import tiled

        m = self.meta
        x, pads = pad_to(x, border=self.params.border)
        while True:
            try:
                if self.tile is None:
                    y = self._model_tile(x)
                else:
                    y = tiled(self._model_tile, x, tile=self.tile, overlap=self.params.overlap, scale=m["scale"])
                break
            except OutOfMemory:
                if self._torch_device().type == "cuda":
                    torch.cuda.empty_cache()
                current = self.tile or max(x.shape[-2:])
                smaller = max(self.params.min_tile, current // 2)
                if current <= self.params.min_tile:
                    raise
                self.tile = smaller
                self.tile_backoffs = getattr(self, "tile_backoffs", 0) + 1
        y = crop_padding(y, pads, m["scale"])
        if m["post_scale"]:
            from diffusify.weights.ncnn.metadata import apply_post_scale

            # resize the unclamped output, as the converted graph's own Interp step does, then clamp
            y = apply_post_scale(y, m["post_scale"], m.get("post_resize") or "bicubic")
        return y.clamp_(0, 1)

    def _adapt_channels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Match the model's input channels; returns the tensor and an alpha plane to re-attach (or None)."""
        want = self.meta["in_channels"]
        alpha = None
        if x.shape[1] == 4 and want == 3:
            alpha, x = x[:, 3:], x[:, :3]
        if x.shape[1] == want:
            return x, alpha
        if want == 1:
            return (0.2126 * x[:, :1] + 0.7152 * x[:, 1:2] + 0.0722 * x[:, 2:3]), alpha
        if x.shape[1] == 1 and want == 3:
            return x.expand(-1, 3, -1, -1), alpha
        raise ValueError(f"the model takes {want} channels, the frame has {x.shape[1]}")

    def _process_batch(self, batch: Sequence[Mapping[str, Frame]]) -> list[torch.Tensor]:
        import torch
        import torch.nn.functional as F

        x = torch.stack([f["input"].data for f in batch])
        count = x.shape[0]
        if self.params.compile and count < self._batch:
            # the compiled model takes the batch it was compiled for: repeat the last frame, drop its outputs
            x = torch.cat([x, x[-1:].expand(self._batch - count, *x.shape[1:])])
        x, alpha = self._adapt_channels(x)
        y = self._infer(x)
        if alpha is not None:
            y = torch.cat([y, F.interpolate(alpha, size=y.shape[-2:], mode="bilinear", align_corners=False)], 1)
        return list(y[:count].unbind(0))

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        return self._process_batch([frames])[0]


class UpscaleSpandrel(SpandrelProcessor):
    """Upscale with a spandrel super-resolution model (ESRGAN, Real-ESRGAN Compact, SPAN, SwinIR, DAT...).

    Input: ``(C, H, W)`` float32 in [0, 1]. Output: ``(C, H * s, W * s)`` float32 in [0, 1], ``s`` the model's
    scale (times a carried post-scale for converted models such as animevideov3 x2).
    """

    type_name = "upscale.spandrel"


class DenoiseSpandrel(SpandrelProcessor):
    """Denoise with a spandrel restoration model (SCUNet, 1x ESRGAN denoisers...).

    Input and output: ``(C, H, W)`` float32 in [0, 1] (a 1x model keeps the size).
    """

    type_name = "denoise.spandrel"


class RestoreSpandrel(SpandrelProcessor):
    """Artifact removal or face restoration with any spandrel model.

    Input: ``(C, H, W)`` float32 in [0, 1]. Output: the model's output size, float32 in [0, 1].
    """

    type_name = "restore.spandrel"
