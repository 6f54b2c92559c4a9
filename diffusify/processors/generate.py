"""Generation with diffusers video pipelines: ``generate.text2video`` (a source) and ``generate.image2video``.

Any diffusers video pipeline of the installed diffusers runs: Wan 2.1/2.2, LTX-Video, LTX-2, CogVideoX,
HunyuanVideo 1/1.5, Mochi, SkyReels-V2... from a local diffusers folder or a Hub id. The pipeline class comes from
the folder's ``model_index.json`` (or ``pipeline:``).

Validation reads ``model_index.json`` and the component configs as JSON (from the folder, or from the Hub cache
when the model was downloaded before): no diffusers import, no download, no GPU. Each family's size and frame
count rules are checked there, so the stream info (size, frame count, fps) is exact before any model loads.

At run time the denoising steps are the node's progress (``status``: step, steps, shot, shots); a stop ends the
run at the next step boundary, raised out of the step callback, so half-denoised latents are never decoded and
the frames of finished shots stay written. Wan's causal VAE decodes latent frame by latent frame with its feature
cache, so the first frames reach the graph while the rest still decode; other VAEs decode the whole clip, which
then enters the graph frame by frame under the edge's queue budget.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from diffusify.core.stream import StreamInfo
from diffusify.processors.base import (
    FrameRate,
    ModelRef,
    Params,
    PlanContext,
    Port,
    Processor,
    Resources,
    SegmentRule,
    StreamError,
    Temporal,
    parse_fps,
)

if TYPE_CHECKING:
    import torch

    from diffusify.core.frame import Frame


# ---- families ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    """What a pipeline family requires and states.

    Attributes:
        name: shown in messages.
        size_multiple: width and height must be multiples of this (VAE compression times patch size).
        frames_step: ``num_frames - 1`` must be a multiple of this (the VAE's temporal compression), or the
            pipeline rounds the count silently.
        fps: the rate the family was trained at (pipelines return frames, not a rate).
    """

    name: str
    size_multiple: int
    frames_step: int
    fps: int


# class-name (or Hub repo name) prefix -> family; first match wins, so longer prefixes come first
_FAMILIES: tuple[tuple[str, Family], ...] = (
    ("ltx2", Family("LTX-2", 32, 8, 24)),
    ("ltx-2", Family("LTX-2", 32, 8, 24)),
    ("ltx", Family("LTX-Video", 32, 8, 25)),
    ("skyreelsv2", Family("SkyReels-V2", 16, 4, 24)),
    ("skyreels-v2", Family("SkyReels-V2", 16, 4, 24)),
    ("wan", Family("Wan", 16, 4, 16)),
    ("hunyuanvideo15", Family("HunyuanVideo 1.5", 16, 4, 24)),
    ("hunyuanvideo-1.5", Family("HunyuanVideo 1.5", 16, 4, 24)),
    ("hunyuanvideo", Family("HunyuanVideo", 16, 4, 24)),
    ("cogvideox1.5", Family("CogVideoX 1.5", 16, 8, 16)),
    ("cogvideox", Family("CogVideoX", 16, 4, 8)),
    ("mochi", Family("Mochi", 16, 6, 30)),
)
_GENERIC = Family("this pipeline", 8, 1, 24)

# text-to-video classes whose folders also load as the family's image-to-video pipeline (same components)
_IMAGE_TO_VIDEO = {"LTXPipeline": "LTXImageToVideoPipeline", "LTX2Pipeline": "LTX2ImageToVideoPipeline",
                   "CogVideoXPipeline": "CogVideoXImageToVideoPipeline"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# Wan's causal VAE can decode latent frame by latent frame; these pipelines hand back Wan-normalised latents
_CHUNKED = {"WanPipeline", "WanImageToVideoPipeline"}


def family_of(name: str | None) -> Family | None:
    """The family of a pipeline class name or a Hub repo name (None when unknown)."""
    if not name:
        return None
    key = name.rsplit("/", 1)[-1].lower()
    for prefix, fam in _FAMILIES:
        if key.startswith(prefix):
            return fam
    return None


def _nearest(value: int, ok: Any, lo: int = 1) -> str:
    """The valid values on either side of ``value``, as ``a or b``."""
    below = next((v for v in range(value, lo - 1, -1) if ok(v)), None)
    above = next(v for v in range(value, value * 2 + 64) if ok(v))
    return " or ".join(str(v) for v in dict.fromkeys(x for x in (below, above) if x is not None))


# ---- reading a model without diffusers -------------------------------------------------------------------------
def model_ref(model: str, revision: str | None = None) -> tuple[str, str | None]:
    """``(folder or Hub id, revision)`` of a ``model:`` value: a folder, a Hub id, or a name from
    ``diffusify weights list`` (its repository and pinned revision)."""
    if os.path.isdir(model) or _HUB_ID.match(model):
        return model, revision
    from diffusify.weights.hub import find_hub

    try:
        entry = find_hub(model)
    except Exception:  # noqa: BLE001 - a broken manifest must not hide the recipe's own problem
        entry = None
    return (entry.repo, revision or entry.revision) if entry else (model, revision)


def model_folder(model: str, revision: str | None = None) -> str | None:
    """The local folder of ``model``: the folder itself, or the Hub cache's snapshot of a downloaded Hub id."""
    from diffusify.weights.hub import snapshot

    model, revision = model_ref(model, revision)
    if os.path.isdir(model):
        return model
    snap = snapshot(model, revision)
    return str(snap) if snap is not None else None


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError:
        return None
    except ValueError as e:
        raise StreamError(f"{path}: not valid JSON ({e})", param="model") from None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class ModelFacts:
    """What validation knows of a model: its folder (None when not on this machine), pipeline class, family,
    and the size and frame rules (refined from the VAE's config where it states them)."""

    folder: str | None
    class_name: str | None
    family: Family | None
    size_multiple: int
    frames_step: int
    note: str | None = None


def model_facts(params: Any) -> ModelFacts:
    """Read ``model_index.json`` and the configs of a local (or cached) model; never downloads."""
    folder = model_folder(params.model, params.revision)
    if folder is None:
        repo, _ = model_ref(params.model, params.revision)
        note = None
        if not _HUB_ID.match(repo):
            if repo.startswith((".", "/", "~")) or os.sep in repo:
                raise StreamError(f"model not found: {params.model} (give a diffusers model folder, a Hub id such "
                                  "as Wan-AI/Wan2.1-T2V-1.3B-Diffusers, or a name from `diffusify weights list`)",
                                  param="model")
            # a bare name may still be a Hub repository without an owner: the run asks the Hub
            note = (f"{params.model} is no folder here, no known name (`diffusify weights list`) and no owner/name "
                    "Hub id; diffusers will look for it on the Hub")
        fam = family_of(params.pipeline) or family_of(repo)
        return ModelFacts(None, params.pipeline, fam, (fam or _GENERIC).size_multiple,
                          (fam or _GENERIC).frames_step, note)
    index = _read_json(os.path.join(folder, "model_index.json"))
    if index is None:
        raise StreamError(f"{params.model}: not a diffusers pipeline folder (it has no model_index.json)",
                          param="model")
    name = params.pipeline or str(index.get("_class_name") or "")
    fam = family_of(name) or family_of(str(index.get("_class_name") or ""))
    size, step = (fam or _GENERIC).size_multiple, (fam or _GENERIC).frames_step
    vae = _read_json(os.path.join(folder, "vae", "config.json")) or {}
    if fam is not None and fam.name == "Wan" and "scale_factor_spatial" in vae:
        # Wan 2.2's 5B model compresses 16x, not 8x: the folder's own configs say which
        tr = _read_json(os.path.join(folder, "transformer", "config.json")) or {}
        patch = tr.get("patch_size") or [1, 2, 2]
        size = int(vae["scale_factor_spatial"]) * int(patch[1])
        step = int(vae.get("scale_factor_temporal", step))
    return ModelFacts(folder, name or None, fam, size, step)


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4,
                "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _safetensors_params(path: str) -> tuple[int, int, int]:
    """(floating-point elements, other bytes, largest tensor's elements) of a safetensors file, from its header."""
    import struct

    floats = other = largest = 0
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    for key, t in header.items():
        if key == "__metadata__":
            continue
        count = 1
        for d in t["shape"]:
            count *= d
        if t["dtype"].startswith(("F", "BF")):
            floats += count
            largest = max(largest, count)
        else:
            other += count * _DTYPE_BYTES.get(t["dtype"], 4)
    return floats, other, largest


def weight_sizes(folder: str) -> dict[str, tuple[int, int, int]]:
    """Per component folder: (floating-point elements, other bytes, largest tensor's elements)."""
    out: dict[str, tuple[int, int, int]] = {}
    index = _read_json(os.path.join(folder, "model_index.json")) or {}
    for comp, spec in index.items():
        if comp.startswith("_") or not isinstance(spec, list) or not spec or spec[0] is None:
            continue
        sub = os.path.join(folder, comp)
        if not os.path.isdir(sub):
            continue
        total = [0, 0, 0]
        for name in os.listdir(sub):
            path = os.path.join(sub, name)
            if name.endswith(".safetensors"):
                f, o, big = _safetensors_params(path)
                total = [total[0] + f, total[1] + o, max(total[2], big)]
            elif name.endswith((".bin", ".pt", ".gguf")):
                total[1] += os.path.getsize(path)
        out[comp] = (total[0], total[1], total[2])
    return out


# ---- parameters -------------------------------------------------------------------------------------------------
class Shot(Params):
    prompt: str = Field(min_length=1, description="What this shot shows.")
    negative_prompt: str | None = Field(None, description="What to avoid in this shot (default: the node's).")
    num_frames: int | None = Field(None, ge=1, le=1024, description="Frames of this shot (default: the node's).")
    seed: int | None = Field(None, description="Seed of this shot (default: the node's seed + the shot's index).")
    steps: int | None = Field(None, ge=1, le=500, description="Denoising steps of this shot (default: the node's).")


class _GenerateParams(Params):
    model: ModelRef = Field(description="A local diffusers pipeline folder, a Hub id (downloaded when the node "
                                        "runs), or a name from `diffusify weights list` (pull it ahead).")
    revision: str | None = Field(None, description="The Hub revision (branch, tag or commit) of a Hub model.")
    pipeline: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
                                 description="The diffusers pipeline class (default: model_index.json's).")
    prompt: str | None = Field(None, description="What to generate (or give shots).")
    negative_prompt: str = Field("", description="What to avoid.")
    num_frames: int = Field(49, ge=1, le=1024, description="Frames per clip (Wan: 4k+1, LTX: 8k+1...).")
    width: int = Field(832, ge=16, le=4096, description="Frame width (LTX: a multiple of 32, Wan/Hunyuan 16).")
    height: int = Field(480, ge=16, le=4096, description="Frame height (LTX: a multiple of 32, Wan/Hunyuan 16).")
    steps: int = Field(30, ge=1, le=500, description="Denoising steps.")
    guidance: float = Field(5.0, ge=0, le=50, description="Classifier-free guidance scale (1 or less: off).")
    seed: int = Field(0, ge=0, description="Random seed: the same seed gives the same frames on the same device.")
    fps: FrameRate | None = Field(None, description="The clip's frame rate (default: the family's: Wan 16, LTX 25, "
                                                    "LTX-2 24, CogVideoX 8, Hunyuan 24, Mochi 30).")
    max_sequence_length: int | None = Field(None, ge=1, le=4096,
                                            description="Prompt tokens (default: the pipeline's).")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto", description="Compute precision: auto is bf16 on CUDA (the VAE of Wan in fp32), fp32 on the CPU.")
    offload: Literal["none", "model", "sequential", "group"] = Field(
        "none", description="Keep weights off the GPU until used: model (whole sub-models), sequential (layer by "
                            "layer, slowest, least memory) or group (blocks, with prefetch).")
    vae_tiling: bool = Field(False, description="Decode in spatial tiles (large frames in less memory).")
    vae_slicing: bool = Field(False, description="Decode one video of a batch at a time.")
    fp8_storage: bool = Field(False, description="Store the transformer's weights in fp8 and compute in the "
                                                 "precision (half its weight memory).")
    quantize: Literal["none", "bnb-nf4", "bnb-int8", "torchao-int8"] = Field(
        "none", description="Quantise the transformer when loading (bitsandbytes or torchao must be installed).")
    transformer_file: ModelRef | None = Field(
        None, description="A GGUF file of the transformer to use instead of the folder's (needs gguf installed).")


_QUANT_MODULES = {"bnb-nf4": "bitsandbytes", "bnb-int8": "bitsandbytes", "torchao-int8": "torchao"}


class TextToVideoParams(_GenerateParams):
    shots: list[Shot] = Field(default_factory=list, description="Several prompts, one after another in one "
                                                                "stream (each may set its own negative prompt, "
                                                                "frames, seed and steps).")

    @model_validator(mode="after")
    def _prompt_or_shots(self) -> TextToVideoParams:
        if not self.prompt and not self.shots:
            raise ValueError("give a prompt, or shots")
        return self

    def shot_list(self) -> list[Shot]:
        """Every shot, with the node's defaults filled in."""
        shots = self.shots or [Shot(prompt=self.prompt or "")]
        return [Shot(prompt=s.prompt, negative_prompt=self.negative_prompt if s.negative_prompt is None
                     else s.negative_prompt, num_frames=s.num_frames or self.num_frames,
                     seed=self.seed + i if s.seed is None else s.seed, steps=s.steps or self.steps)
                for i, s in enumerate(shots)]


class ImageToVideoParams(_GenerateParams):
    prompt: str = Field(description="What to generate from the image.")
    each: bool = Field(False, description="Animate every input frame into its own clip, the k-th with seed + k "
                                          "(default: the first frame only).")


def _check(params: _GenerateParams, ctx: PlanContext, *, image: bool) -> tuple[Family | None, Fraction]:
    """Report every broken family rule at its parameter; returns the family and the clip's frame rate."""
    facts = model_facts(params)
    fam = facts.family
    name = fam.name if fam else _GENERIC.name
    if facts.note:
        ctx.warn(facts.note, param="model")
    for field in ("width", "height"):
        v = getattr(params, field)
        if v % facts.size_multiple:
            ctx.error(f"{name} needs a {field} divisible by {facts.size_multiple}: use "
                      f"{_nearest(v, lambda x: x % facts.size_multiple == 0, facts.size_multiple)} (got {v})",
                      param=field)

    def frames_ok(n: int) -> bool:
        return (n - 1) % facts.frames_step == 0

    rule = f"num_frames - 1 divisible by {facts.frames_step}"
    if not frames_ok(params.num_frames):
        ctx.error(f"{name} needs {rule}: use {_nearest(params.num_frames, frames_ok)} (got {params.num_frames})",
                  param="num_frames")
    for i, shot in enumerate(getattr(params, "shots", [])):
        if shot.num_frames is not None and not frames_ok(shot.num_frames):
            ctx.error(f"shot {i + 1}: {name} needs {rule}: use {_nearest(shot.num_frames, frames_ok)} "
                      f"(got {shot.num_frames})", param="shots")
    cls = facts.class_name or ""
    if cls and not image and ("ImageToVideo" in cls or "I2V" in cls):
        ctx.error(f"{cls} animates an image: use generate.image2video, or a text-to-video model", param="model")
    for opt, module in (("quantize", _QUANT_MODULES.get(params.quantize)),
                        ("transformer_file", "gguf" if params.transformer_file else None)):
        if module and _missing(module):
            ctx.error(f"{opt} needs the {module} package: pip install {module}", param=opt)
    if params.transformer_file and not os.path.isfile(params.transformer_file):
        ctx.error(f"transformer file not found: {params.transformer_file}", param="transformer_file")
    if params.fps is not None:
        fps = parse_fps(params.fps)
    else:
        fps = Fraction((fam or _GENERIC).fps)
        if fam is None:
            ctx.warn(f"the model's family is not known here ({params.model} is not on this machine or not a known "
                     f"family): the clip is stated as {fps} fps; set fps", param="fps")
    return fam, fps


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def _memory(params: _GenerateParams, frames: int, *, gpu: bool) -> tuple[int, int]:
    """(bytes held in memory without offload, bytes resident with the chosen offload): the weights at the compute
    precision (auto: bf16 on a GPU, fp32 on the CPU), from the safetensors headers, plus a rough working set for
    denoising and decoding."""
    folder = model_folder(params.model, params.revision)
    if folder is None:
        return 0, 0
    bytes_per = {"fp32": 4, "fp16": 2, "bf16": 2, "auto": 2 if gpu else 4}[params.precision]
    sizes = weight_sizes(folder)
    comps = {c: f * bytes_per + o for c, (f, o, _) in sizes.items()}
    if "transformer" in comps and params.fp8_storage:
        comps["transformer"] //= bytes_per
    largest_tensor = max((big for _, _, big in sizes.values()), default=0) * bytes_per
    # activations: the VAE decoder's widest feature maps dominate; Wan decodes 4 frames at a time
    pixels = params.width * params.height
    name = params.pipeline or model_facts(params).class_name
    chunk = 5 if name in _CHUNKED and not params.vae_tiling else frames
    work = 256 * 2**20 + pixels * min(frames, chunk) * 128 * 4
    total = sum(comps.values()) + work
    if params.offload == "model":
        resident = max(comps.values(), default=0) + work
    elif params.offload in ("sequential", "group"):
        resident = 4 * largest_tensor + work
    else:
        resident = total
    return total, resident


# ---- running ------------------------------------------------------------------------------------------------------
class _Stopped(Exception):
    """Raised out of the step callback when the run stops: the shot in progress is dropped, not decoded."""


def _dtype(precision: str, device: torch.device) -> torch.dtype:
    import torch

    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


class _Generator(Processor):
    """Shared running code of both nodes: loading, memory options, one clip at a time."""

    requires = ("diffusers", "transformers", "accelerate")
    extra = "generate"
    temporal = Temporal.ORDERED
    resources = Resources(device="gpu", max_replicas=1, heavy=True)
    image_input = False

    @classmethod
    def segmenting(cls, params: Any, inputs: Mapping[str, StreamInfo],
                   output: StreamInfo | None) -> SegmentRule | str:
        return (f"{cls.type_name} makes each clip whole, from its first denoising step; run it without segments "
                "(write the generated clip, then run the rest of the work in segments on that file)")

    @classmethod
    def memory_estimate(cls, params: Any, inputs: Mapping[str, StreamInfo], output: StreamInfo | None) -> int:
        return _memory(params, params.num_frames, gpu=False)[0]

    @classmethod
    def gpu_memory(cls, params: Any, inputs: Mapping[str, StreamInfo], output: StreamInfo | None) -> int:
        return _memory(params, params.num_frames, gpu=True)[1]

    @classmethod
    def paths(cls, params: Any) -> tuple[list[str], list[str]]:
        reads = [p for p in (params.model, params.transformer_file) if p and os.path.exists(p)]
        return reads, []

    def _class_name(self) -> str | None:
        facts = model_facts(self.params)
        name = self.params.pipeline or facts.class_name
        if self.image_input and not self.params.pipeline and name in _IMAGE_TO_VIDEO:
            name = _IMAGE_TO_VIDEO[name]
        return name

    def setup(self) -> None:
        import inspect

        import diffusers
        import torch
        import transformers

        # their loading bars would tear through the run's own progress display
        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()
        p = self.params
        dev = self._torch_device()
        dtype = _dtype(p.precision, dev)
        self.dtype = dtype
        name = self._class_name()
        cls = getattr(diffusers, name, None) if name else diffusers.DiffusionPipeline
        if cls is None:
            raise StreamError(f"diffusers {diffusers.__version__} has no pipeline {name}; upgrade diffusers or "
                              "name another with pipeline:", param="pipeline")
        # fp32 is every component's stored default here: not naming it spares diffusers a process-wide switch
        # of torch's default dtype while it builds the modules
        model, revision = model_ref(p.model, p.revision)
        kwargs: dict[str, Any] = {} if dtype == torch.float32 else {"torch_dtype": dtype}
        if kwargs and hasattr(diffusers.pipelines.pipeline_utils, "_resolve_dtype"):
            kwargs = {"dtype": dtype}  # the name newer diffusers take (torch_dtype is deprecated there)
        if revision:
            kwargs["revision"] = revision
        fam = family_of(name)
        if p.precision == "auto" and dtype != torch.float32 and fam is not None and fam.name == "Wan":
            kwargs[next(iter(kwargs))] = {"default": dtype, "vae": torch.float32}  # Wan's VAE is unstable in bf16
        if p.quantize != "none":
            kwargs["quantization_config"] = _quantization(p.quantize, dtype)
        if p.transformer_file:
            kwargs["transformer"] = _gguf_transformer(model, p.transformer_file, dtype, revision)
        try:
            pipe = cls.from_pretrained(model, **kwargs)
        except (OSError, ValueError, TypeError, ImportError) as e:
            from diffusify.core.errors import one_line

            raise StreamError(f"cannot load {p.model} as {name or 'a diffusers pipeline'}: {one_line(str(e), 300)}",
                              param="model") from e
        pipe.set_progress_bar_config(disable=True)
        if p.fp8_storage:
            pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
        vae = getattr(pipe, "vae", None)
        if vae is not None and p.vae_tiling:
            vae.enable_tiling()
        if vae is not None and p.vae_slicing:
            vae.enable_slicing()
        if p.offload == "none":
            pipe.to(dev)
        elif p.offload == "model":
            pipe.enable_model_cpu_offload(device=dev)
        elif p.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=dev)
        else:
            pipe.enable_group_offload(onload_device=dev, offload_device=torch.device("cpu"),
                                      offload_type="block_level", num_blocks_per_group=1)
        self.pipe = pipe
        self.pipe_name = type(pipe).__name__
        self.call_args = set(inspect.signature(type(pipe).__call__).parameters)
        self.chunked = self.pipe_name in _CHUNKED and vae is not None and type(vae).__name__ == "AutoencoderKLWan" \
            and not p.vae_tiling
        self.fps = self.output_stream.fps if self.output_stream is not None else Fraction(24)

    def teardown(self) -> None:
        pipe = getattr(self, "pipe", None)
        self.pipe = None
        if pipe is not None and hasattr(pipe, "remove_all_hooks"):
            pipe.remove_all_hooks()
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()

    def clip(self, *, prompt: str, negative_prompt: str, num_frames: int, seed: int, steps: int,
             shot: int, shots: int, stop: threading.Event | None, image: Any = None) -> Iterator[torch.Tensor]:
        """One clip's frames, ``(3, H, W)`` float32 in [0, 1] on the output device, in order, as they decode.

        Raises :class:`_Stopped` at a step boundary once ``stop`` is set."""
        import torch

        p = self.params

        def on_step(pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            self.status = {"step": i + 1, "steps": steps, "shot": shot, "shots": shots}
            if stop is not None and stop.is_set():
                raise _Stopped
            return kwargs

        args: dict[str, Any] = {
            "prompt": prompt, "negative_prompt": negative_prompt or None, "num_frames": num_frames,
            "width": p.width, "height": p.height, "num_inference_steps": steps, "guidance_scale": p.guidance,
            # drawn on the CPU: the same seed gives the same starting noise whatever the device
            "generator": torch.Generator("cpu").manual_seed(seed),
            "output_type": "latent" if self.chunked else "pt", "callback_on_step_end": on_step,
            "frame_rate": float(self.fps), "max_sequence_length": p.max_sequence_length, "image": image,
        }
        args = {k: v for k, v in args.items() if k in self.call_args and v is not None}
        self.status = {"step": 0, "steps": steps, "shot": shot, "shots": shots}
        with torch.no_grad():  # as the pipelines' own __call__ (not inference_mode: offload hooks move weights)
            try:
                out = self.pipe(**args).frames
            except NameError as e:
                if "ftfy" not in str(e):
                    raise
                # some pipelines (Wan image-to-video, VACE...) clean prompts with ftfy without checking for it
                raise StreamError(f"{self.pipe_name} needs the ftfy package: pip install ftfy") from e
            if self.chunked:
                yield from self._decode_wan(out)
            else:
                for f in out[0]:  # (frames, 3, H, W) in [0, 1]: the batch's only video
                    yield f.to(self.output_device, torch.float32)

    def _decode_wan(self, latents: torch.Tensor) -> Iterator[torch.Tensor]:
        """Decode Wan latents one latent frame at a time with the causal VAE's feature cache (as
        ``AutoencoderKLWan._decode`` does, but handing out each group of frames as soon as it exists)."""
        import torch
        from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

        vae = self.pipe.vae
        hook = getattr(vae, "_hf_hook", None)
        if hook is not None and hasattr(hook, "pre_forward"):
            hook.pre_forward(vae)  # model offload: bring the VAE onto the device, as vae.decode would
        dev = next(vae.parameters()).device if self.params.offload == "none" else self._torch_device()
        z = latents.to(dev, vae.dtype)
        mean = torch.tensor(vae.config.latents_mean, device=dev, dtype=z.dtype).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std, device=dev, dtype=z.dtype).view(1, -1, 1, 1, 1)
        z = z * std + mean
        vae.clear_cache()
        try:
            x = vae.post_quant_conv(z)
            for i in range(x.shape[2]):
                vae._conv_idx = [0]
                out = vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx,
                                  first_chunk=i == 0)
                if vae.config.patch_size is not None:
                    out = unpatchify(out, patch_size=vae.config.patch_size)
                video = (out.clamp(-1, 1)[0] / 2 + 0.5).clamp(0, 1)  # (3, f, H, W)
                for j in range(video.shape[1]):
                    yield video[:, j].to(self.output_device, torch.float32)
        finally:
            vae.clear_cache()
        if hasattr(self.pipe, "maybe_free_model_hooks"):
            self.pipe.maybe_free_model_hooks()


def _quantization(kind: str, dtype: torch.dtype) -> Any:
    """A diffusers pipeline quantisation config that quantises the transformer only."""
    from diffusers.quantizers import PipelineQuantizationConfig

    backend, kwargs = {
        "bnb-nf4": ("bitsandbytes_4bit", {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                                          "bnb_4bit_compute_dtype": dtype}),
        "bnb-int8": ("bitsandbytes_8bit", {"load_in_8bit": True}),
        "torchao-int8": ("torchao", {"quant_type": "int8wo"}),
    }[kind]
    return PipelineQuantizationConfig(quant_backend=backend, quant_kwargs=kwargs, components_to_quantize=["transformer"])


def _gguf_transformer(model: str, path: str, dtype: torch.dtype, revision: str | None) -> Any:
    """The transformer of ``model`` loaded from a GGUF file (quantised weights, dequantised per layer)."""
    import diffusers
    from diffusers import GGUFQuantizationConfig

    folder = model_folder(model, revision)
    index = _read_json(os.path.join(folder, "model_index.json")) if folder else None
    cls_name = (index or {}).get("transformer", [None, None])[1]
    cls = getattr(diffusers, cls_name or "", None)
    if cls is None:
        raise StreamError(f"cannot tell which transformer class {path} holds (the model folder's model_index.json "
                          "names none)", param="transformer_file")
    return cls.from_single_file(path, quantization_config=GGUFQuantizationConfig(compute_dtype=dtype),
                                config=model, subfolder="transformer", torch_dtype=dtype)


class TextToVideo(_Generator):
    """Generate video from text prompts (one or several shots) with a diffusers text-to-video pipeline.

    Output: ``(3, H, W)`` float32 RGB in [0, 1] on its consumers' device; the shots one after another, times
    continuous at the stated fps. Progress: ``status`` holds step, steps, shot and shots while denoising.
    """

    type_name = "generate.text2video"
    Params = TextToVideoParams
    inputs = ()

    @classmethod
    def infer_stream(cls, params: TextToVideoParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        _, fps = _check(params, ctx, image=False)
        total = sum(s.num_frames or 0 for s in params.shot_list())
        first, stop = ctx.source_range(0, total)
        frames = (total if stop is None else stop) - first
        if ctx.max_frames is not None:
            frames = min(frames, ctx.max_frames)
        return StreamInfo(width=params.width, height=params.height, fps=fps, frames=frames)

    @classmethod
    def memory_estimate(cls, params: Any, inputs: Mapping[str, StreamInfo], output: StreamInfo | None) -> int:
        return _memory(params, max(s.num_frames or 0 for s in params.shot_list()), gpu=False)[0]

    @classmethod
    def gpu_memory(cls, params: Any, inputs: Mapping[str, StreamInfo], output: StreamInfo | None) -> int:
        return _memory(params, max(s.num_frames or 0 for s in params.shot_list()), gpu=True)[1]

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        from diffusify.core.frame import Frame

        stream = self.output_stream
        assert stream is not None and stream.frames is not None
        segment = self.options.segment
        shots = self.params.shot_list()
        total = sum(s.num_frames or 0 for s in shots)
        first = segment.clip(0, total)[0] if segment else 0
        end = first + stream.frames
        start = 0  # the shot's first frame in the whole stream
        out = 0
        for n, shot in enumerate(shots):
            count = shot.num_frames or 0
            if start + count <= first:  # a segment that begins later: the shot is not generated at all
                start += count
                continue
            if start >= end or stop.is_set():
                break
            try:
                for j, data in enumerate(self.clip(prompt=shot.prompt, negative_prompt=shot.negative_prompt or "",
                                                   num_frames=count, seed=shot.seed or 0, steps=shot.steps or 1,
                                                   shot=n + 1, shots=len(shots), stop=stop)):
                    g = start + j
                    if g < first:
                        continue
                    if g >= end:
                        break
                    yield Frame(out, Fraction(out) / stream.fps, data, {"shot": n})
                    out += 1
            except _Stopped:
                return
            start += count


class ImageToVideo(_Generator):
    """Animate an image (the first input frame, or each) into a clip with a diffusers image-to-video pipeline.

    Input: ``(3, H, W)`` float32 RGB in [0, 1] (resized to width x height by the pipeline). Output: ``(3, H, W)``
    float32 RGB in [0, 1]; ``num_frames`` per animated input frame, times continuous at the stated fps.
    """

    type_name = "generate.image2video"
    Params = ImageToVideoParams
    inputs = (Port("input", "video"),)
    image_input = True

    @classmethod
    def infer_stream(cls, params: ImageToVideoParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        _, fps = _check(params, ctx, image=True)
        src = inputs["input"]
        if params.each:
            frames = None if src.frames is None else src.frames * params.num_frames
        else:
            frames = params.num_frames if src.frames is None or src.frames > 0 else 0
        return StreamInfo(width=params.width, height=params.height, fps=fps, frames=frames)

    def setup(self) -> None:
        super().setup()
        self.emitted = 0
        self.taken = 0

    def push(self, item: Mapping[str, Frame] | Any) -> list[Frame]:
        """One input frame -> its clip (every frame of it), or nothing for frames after the first."""
        import time

        from diffusify.core.frame import Frame

        t0 = time.perf_counter()
        index = self.taken
        self.taken += 1
        if index and not self.params.each:
            return []
        image = item["input"].data.detach().float().clamp(0, 1).cpu().unsqueeze(0)
        p = self.params
        fps = self.fps
        out = []
        for data in self.clip(prompt=p.prompt, negative_prompt=p.negative_prompt, num_frames=p.num_frames,
                              seed=p.seed + index, steps=p.steps, shot=index + 1, shots=self._shots(),
                              stop=None, image=image):
            out.append(Frame(self.emitted, Fraction(self.emitted) / fps, data, {"source_index": index}))
            self.emitted += 1
        self.busy_seconds += time.perf_counter() - t0
        self.frames_done += 1
        return out

    def _shots(self) -> int:
        src = self.input_streams.get("input")
        return (src.frames or 0) if self.params.each and src is not None else 1

