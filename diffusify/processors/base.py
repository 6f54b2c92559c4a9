"""The processor contract: declared capabilities, plan-time stream inference, and per-frame bookkeeping.

A processor class declares, as class attributes, its type name, its parameter model, its input ports, its
temporal needs and its resource needs. The engine reads those declarations to validate recipes, build the JSON
Schema, place nodes on devices and schedule them; it never has to instantiate a processor to know them.

Subclasses implement small methods (``_process``, ``frames``, ``write``); the public methods of the base class do
the bookkeeping around them: device moves, timing and contract checks.
"""

from __future__ import annotations

import contextlib
import enum
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from diffusify.core.frame import Frame, Window
from diffusify.core.stream import StreamInfo
from diffusify.ops.samples import as_tensor, is_array, is_native
from diffusify.ops.samples import widen as widen_samples

if TYPE_CHECKING:
    import threading
    from contextlib import AbstractContextManager

    import torch


def parse_fps(value: str | int | float) -> Fraction:
    """``"30000/1001"``, ``"29.97"`` (snapped to 30000/1001) or ``25`` -> an exact Fraction."""
    frac = Fraction(str(value))
    for num, den in ((24000, 1001), (30000, 1001), (60000, 1001), (120000, 1001)):
        if abs(float(frac) - num / den) < 0.006:
            return Fraction(num, den)
    return frac


def _check_fps(v: object) -> str:
    try:
        if isinstance(v, bool) or parse_fps(v) <= 0:  # type: ignore[arg-type]
            raise ValueError
    except (ValueError, ZeroDivisionError, TypeError):
        raise ValueError(f"must be a positive frame rate such as 24, 29.97 or 30000/1001 (got {v!r})") from None
    return str(v)


FrameRate = Annotated[str, BeforeValidator(_check_fps), WithJsonSchema(
    {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string", "pattern": r"^\s*[0-9.]+(/[0-9]+)?\s*$"}],
     "description": "A frame rate: a number, or num/den such as 30000/1001."})]
"""A parameter holding a frame rate: a number or ``num/den``, validated, kept as text (use :func:`parse_fps`)."""


@dataclass(frozen=True)
class PathField:
    """Marks a parameter that names a file or folder, so a relative value is resolved where it was written: a
    path in a recipe against the recipe's folder, one given on the command line against the current folder.

    ``kind``: ``input`` and ``output`` are always paths; ``model`` is a path when such a file exists there, else
    a name (a manifest entry, a hub id) and left as written.
    """

    kind: str = "input"


InputPath = Annotated[str, PathField("input")]
OutputPath = Annotated[str, PathField("output")]
ModelRef = Annotated[str, PathField("model")]


def path_fields(model: type[BaseModel]) -> dict[str, str]:
    """Parameter name -> :class:`PathField` kind, for the fields of ``model`` that name files."""
    out = {}
    for name, info in model.model_fields.items():
        for m in info.metadata:
            if isinstance(m, PathField):
                out[name] = m.kind
    return out


class Params(BaseModel):
    """Base of every processor's parameter model: strict keys, documented fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """This processor takes no parameters."""


class Temporal(str, enum.Enum):
    """How a processor depends on other frames."""

    FRAME = "frame"  # each output depends on one input frame set only: parallel, replicable
    WINDOW = "window"  # needs `window` neighbours, gathered by the framework: each window is independent,
    # so a window processor is replicable too
    ORDERED = "ordered"  # stateful, sees every frame in order (and may hold frames until ``flush``): one replica


@dataclass(frozen=True)
class Port:
    """An input port.

    Attributes:
        name: the port's name (``input`` for single-port processors).
        kind: what it takes: ``video`` (RGB frames), ``mask`` (1-channel frames in [0, 1]) or ``any``.
    """

    name: str
    kind: str = "video"


@dataclass(frozen=True)
class Resources:
    """What a processor needs to run.

    Attributes:
        device: ``any`` (CPU or GPU), ``cpu`` (CPU only) or ``gpu`` (prefers a GPU, runs on CPU slowly).
        max_replicas: upper bound on ``replicas`` (1 for processors that cannot be replicated).
        heavy: True for neural processors (loaded weights, worth a GPU).
        offload: ``none`` (weights stay on the device), ``model`` (whole sub-models move to the device when
            used) or ``sequential`` (layer by layer): how much of :meth:`Processor.gpu_memory` stays resident.
        exclusive: True when the processor must have its GPU to itself (no other node placed on that device).
    """

    device: str = "any"
    max_replicas: int | None = None
    heavy: bool = False
    offload: str = "none"
    exclusive: bool = False


@dataclass(frozen=True)
class Segment:
    """A frame range ``[start, end)`` of every source's stream (after its own ``start``/``end``).

    The rule for indices and times: a segment is read as if its sources began at ``start`` and stopped before
    ``end``. Indices on every edge restart at 0; each frame's ``pts`` is relative to the segment's first frame
    (as with ``video.read``'s ``start``); ``StreamInfo.origin.start`` says where the segment begins in the file,
    so writers cut copied audio and subtitles to it and a joiner places the pieces end to end. Temporal nodes
    see only the segment's frames: an executor that splits a stream gives each segment the context it needs.
    """

    start: int = 0
    end: int | None = None

    def clip(self, first: int, stop: int | None) -> tuple[int, int | None]:
        """The source range ``[first, stop)`` narrowed to this segment."""
        lo = first + self.start
        hi = None if self.end is None else first + self.end
        if stop is not None:
            hi = stop if hi is None else min(hi, stop)
            lo = min(lo, stop)
        return lo, hi


@dataclass(frozen=True)
class SegmentRule:
    """How a node takes part in a run split into segments (see :meth:`Processor.segmenting`).

    Attributes:
        pre: input frames it needs before a segment's first frame (its context: a window's ``before``).
        post: input frames it needs after a segment's last frame.
        grid: the output rate of a node that lays a time grid from its stream's first frame (``k / grid``):
            a segment must then start at a time on that grid, or its frames would fall between the whole run's.
    """

    pre: int = 0
    post: int = 0
    grid: Fraction | None = None


@dataclass(frozen=True)
class RunOptions:
    """Run-wide options that reach processors through their constructor.

    Attributes:
        overwrite: writers replace existing outputs.
        segment: the frame range of the sources this run reads (None: all of it).
        keep: ``(start, end)`` times, relative to the segment's first frame, of the frames sinks keep (``end``
            None: to the end); the frames before and after are context for temporal nodes, dropped at the sinks,
            and kept frames reach them with ``start`` subtracted from their time. None keeps every frame.
    """

    overwrite: bool = False
    segment: Segment | None = None
    keep: tuple[Fraction, Fraction | None] | None = None


@dataclass(frozen=True)
class HostOutput:
    """How a replica on a GPU hands its frames to consumers that all run on the CPU: it copies them back itself,
    asynchronously into page-locked memory on its own stream, and waits for the copies before handing the frames
    on (the executor decides, see :attr:`Processor.host_output`).

    Attributes:
        depth: narrow float frames on the GPU to native samples of this many bits (8 or 16) first, by the rule
            every consumer would apply itself (see :meth:`Processor.sample_depth`), so that 1 or 2 bytes a sample
            cross the bus instead of 4 and the output bytes stay the same; None copies the frames as they are.
    """

    depth: int | None = None


@dataclass
class SinkResult:
    """What a sink reports when it finishes: the file it wrote, how many frames, and warnings for the user."""

    path: str | None
    frames: int
    warnings: list[str] = field(default_factory=list)


class StreamError(Exception):
    """Raised by ``infer_stream`` when the inputs or parameters cannot produce a stream.

    ``param`` names the parameter the problem is about, so validation can point at it.
    """

    def __init__(self, message: str, *, param: str | None = None, port: str | None = None):
        super().__init__(message)
        self.param = param
        self.port = port


def with_alpha(stream: StreamInfo | None, alpha: StreamInfo | None) -> StreamInfo | None:
    """What a writer stores when a matte comes with its picture: the picture's stream with a fourth channel.

    Raises:
        StreamError: the picture is not RGB, or the matte's size or frame count differs from the picture's.
    """
    if stream is None or alpha is None:
        return stream
    if stream.channels != 3:
        raise StreamError(f"an alpha channel goes with RGB frames, but the input has {stream.channels} "
                          "channel(s); write the matte alone instead", port="alpha")
    if (alpha.width, alpha.height) != (stream.width, stream.height):
        raise StreamError(f"the matte is {alpha.width}x{alpha.height} and the picture {stream.width}x"
                          f"{stream.height}: resize one of them (a resize node) so they match", port="alpha")
    if None not in (alpha.frames, stream.frames) and alpha.frames != stream.frames:
        raise StreamError(f"the matte has {alpha.frames} frames and the picture {stream.frames}: they are joined "
                          "frame by frame and must have the same count", port="alpha")
    return stream.replace(channels=4)


def attach_alpha(frames: Mapping[str, Frame]) -> Frame:
    """The ``input`` frame with the ``alpha`` frame (if connected) as a fourth channel: ``(4, H, W)``."""
    picture = frames["input"]
    matte = frames.get("alpha")
    if matte is None:
        return picture
    import torch

    rgb = widen_samples(picture.data)  # a float matte beside native samples: both as float
    a = widen_samples(matte.data).to(device=rgb.device, dtype=rgb.dtype)
    return picture.derive(torch.cat([rgb[:3], a[:1]]))


class PlanContext:
    """What plan-time inference may consult: the recipe's folder, the node being planned, and the run options
    that change stream info (``max_frames``, the segment)."""

    def __init__(self, *, base_dir: str = ".", max_frames: int | None = None, offline: bool = False,
                 segment: Segment | None = None, node: str = ""):
        self.base_dir = base_dir
        self.max_frames = max_frames
        self.offline = offline
        self.segment = segment
        self.node = node
        self.warnings: list[tuple[str | None, str]] = []
        self.errors: list[tuple[str | None, str]] = []

    def warn(self, message: str, *, param: str | None = None) -> None:
        self.warnings.append((param, message))

    def error(self, message: str, *, param: str | None = None) -> None:
        """Report a problem besides the one ``infer_stream`` raises (every problem at once)."""
        self.errors.append((param, message))

    def source_range(self, start: int, end: int | None) -> tuple[int, int | None]:
        """A source's frame range ``[start, end)`` narrowed to the run's segment."""
        return self.segment.clip(start, end) if self.segment else (start, end)


Output = Any
"""What ``_process`` may return: a tensor (one frame like the input), a :class:`Frame`, a list of frames or
tensors (any number, zero included), or None (no frame)."""


class Processor:
    """Base class of all processors.

    Class attributes (declarations):
        type_name: the ``type:`` used in recipes, e.g. ``upscale.spandrel``.
        Params: the pydantic parameter model (``extra="forbid"``, every field described).
        inputs: the input ports, as names or :class:`Port` (a name is a ``video`` port); ``()`` for sources.
            A single-port processor takes ``input:``.
        optional_inputs: ports that may be left unconnected.
        is_sink: True for writers (nodes whose output goes to a file, not to other nodes).
        temporal: see :class:`Temporal`; ``window`` holds (before, after) for ``Temporal.WINDOW``.
        resources: see :class:`Resources`.
        batching: True when the processor implements ``_process_batch`` and has a ``batch`` parameter.
        node_refs: parameters that name another node (their streams reach the constructor as ``refs``).
        output_kind: what a sink's output path names: ``file``, or ``folder`` (a sequence written into it).
        requires: Python modules it needs that are optional installs; ``extra`` names the extra that brings them
            (``pip install 'diffusify[EXTRA]'``). The plan checks them before anything loads.
        implemented: False for processors whose parameters are defined so recipes validate, but which a later
            release makes real; running one fails with a clear message before any frame is decoded.
        native: True for processors that take frames at their native depth as they come (``uint8``/``uint16``
            samples from a decoder, or float32): crops, stacks, writers. For all others the base class widens
            native samples to float32 in [0, 1] once, on the processor's device, before ``_process`` sees them.
            Filters get tensors, except one that says it runs without torch (:meth:`torch_free`): it gets numpy
            samples as they come (from a CPU decoder, or such a filter before it) and returns numpy samples, and
            tensors where others made them. A native sink's :meth:`write` gets the data as it comes, which from
            a CPU decoder is a numpy array of samples (:func:`diffusify.ops.samples.as_tensor` wraps it).

    The filter contract: :meth:`push` takes one input frame set (one frame per port, same index; a
    :class:`Window` for window processors) and returns any number of output frames, each with its own ``pts``
    and ``meta``; :meth:`flush` returns what the processor still holds at the end of the stream. Per-frame
    filters write only ``_process``; the engine numbers what they hand out and keeps the order.
    """

    type_name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    inputs: ClassVar[tuple[str | Port, ...]] = ("input",)
    optional_inputs: ClassVar[tuple[str | Port, ...]] = ()
    is_sink: ClassVar[bool] = False
    temporal: ClassVar[Temporal] = Temporal.FRAME
    window: ClassVar[tuple[int, int]] = (0, 0)
    resources: ClassVar[Resources] = Resources()
    batching: ClassVar[bool] = False
    node_refs: ClassVar[tuple[str, ...]] = ()
    output_kind: ClassVar[str] = "file"
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    implemented: ClassVar[bool] = True
    native: ClassVar[bool] = False

    def __init__(self, node_id: str, params: BaseModel, *, inputs: Mapping[str, StreamInfo],
                 output: StreamInfo | None, device: str = "cpu", output_device: str | None = None,
                 options: RunOptions | None = None, refs: Mapping[str, StreamInfo | None] | None = None,
                 widen_output: bool = False):
        self.node_id = node_id
        # the plan's choice for a node that may pass native samples on: widen them here, once, for the several
        # consumers below that would each widen them (a source's reader does it fused with its unpacking)
        self.widen_output = widen_output
        self.params = params
        self.input_streams = dict(inputs)
        self.output_stream = output
        self.device = device
        # Where a CPU-bound source puts its frames: its consumers' device when they all share one, so decoded
        # bytes cross the bus compact (a 1080p frame: 6 MB of bytes, not 25 MB of floats) and widen there.
        self.output_device = output_device or device
        self.options = options or RunOptions()
        self.refs = dict(refs or {})
        self.busy_seconds = 0.0
        self.frames_done = 0
        # what a long-running node is doing inside a frame, for progress events (a generator's
        # {"step", "steps", "shot", "shots"}); None when it has nothing to say
        self.status: dict[str, int] | None = None
        # one-line facts about how this replica runs (the precision, the batch it chose, a decoder's fallback),
        # for the run summary
        self.notes: list[str] = []
        # set by the executor before setup: this replica's own CUDA stream (see use_cuda_stream) and how it hands
        # frames to consumers on the CPU (see HostOutput)
        self.cuda_stream: Any = None
        self.host_output: HostOutput | None = None

    # ---- declarations read by the engine -------------------------------------------------------------------
    @classmethod
    def segmenting(cls, params: Any, inputs: Mapping[str, StreamInfo],
                   output: StreamInfo | None) -> SegmentRule | str:
        """How this node takes part in a run split into segments (frame ranges of the sources run apart and
        joined), or why it cannot, as a sentence for the user.

        The default: sources and per-frame filters need nothing; window filters need their window as context;
        ordered (stateful) filters and sinks cannot be split unless they say how.
        """
        if cls.is_sink:
            return f"{cls.type_name} writes what cannot be joined from segments yet"
        if cls.is_source():
            return SegmentRule()
        if cls.temporal == Temporal.WINDOW:
            return SegmentRule(pre=cls.window[0], post=cls.window[1])
        if cls.temporal == Temporal.ORDERED:
            return f"{cls.type_name} keeps state from frame to frame"
        return SegmentRule()

    @classmethod
    def summary(cls) -> str:
        """One line: the first line of the class docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0].rstrip(".").replace("``", "") if cls.__doc__ else ""

    @classmethod
    def ports(cls) -> tuple[Port, ...]:
        """Every input port (required first, then optional), as :class:`Port`."""
        return tuple(p if isinstance(p, Port) else Port(p) for p in (*cls.inputs, *cls.optional_inputs))

    @classmethod
    def required_ports(cls) -> tuple[str, ...]:
        """Names of the ports that must be connected."""
        return tuple(p.name if isinstance(p, Port) else p for p in cls.inputs)

    @classmethod
    def port_names(cls) -> tuple[str, ...]:
        return tuple(p.name for p in cls.ports())

    @classmethod
    def requirements(cls, params: Any = None) -> tuple[str, ...]:
        """The optional modules a node with ``params`` needs: ``requires`` unless a processor's needs depend on
        its parameters (a model format with a runtime of its own)."""
        return cls.requires

    @classmethod
    def missing_modules(cls, params: Any = None) -> list[str]:
        """The modules of :meth:`requirements` that are not installed."""
        import importlib.util

        return [m for m in cls.requirements(params) if importlib.util.find_spec(m) is None]

    @classmethod
    def is_source(cls) -> bool:
        return not cls.inputs and not cls.optional_inputs

    @classmethod
    def replicable(cls) -> bool:
        return cls.temporal is not Temporal.ORDERED and cls.resources.max_replicas != 1 and not cls.is_sink \
            and not cls.is_source()

    @classmethod
    def native_for(cls, params: Any) -> bool:
        """Whether the node, with these parameters, passes native samples on as native samples (its own exact
        integer path), so the plan counts it as widening nothing. Default: ``native``. A native processor whose
        parameters need float (a colour change that mixes channels) widens in ``_process`` and says False here."""
        return cls.native

    @classmethod
    def torch_free(cls, params: Any, *, device: str, widen_output: bool,
                   inputs: Mapping[str, StreamInfo]) -> bool:
        """Whether the node, with these parameters and its frames going to ``device``, runs without torch when
        every node upstream does: a decoder handing numpy samples on, a writer packing whatever it gets, a filter
        whose ``_process`` computes numpy samples from numpy samples (a crop, a colour table, a blend). A plan of
        such nodes alone never imports torch (most of a short run's start-up); the default is False. ``inputs``
        are the node's input streams (a stack needs no resampling when their sizes agree). Such a
        filter gets numpy samples wherever they come (in any plan) and tensors from nodes that made tensors; one
        that must compute in float after all (two inputs of different depths) widens them, importing torch."""
        return False

    @classmethod
    def infer_stream(cls, params: Any, inputs: Mapping[str, StreamInfo], ctx: PlanContext) -> StreamInfo | None:
        """The output stream given the input streams. Default: same as the only input.

        Raise :class:`StreamError` for a mismatch the user must fix. Sinks return None.
        """
        if cls.is_sink or not inputs:
            return None
        return next(iter(inputs.values()))

    @classmethod
    def paths(cls, params: Any) -> tuple[list[str], list[str]]:
        """Files this node reads and writes (for the output == input check)."""
        return [], []

    @classmethod
    def input_files(cls, params: Any) -> list[str]:
        """Every file this node reads, for the check that no output is an input (default: its read paths)."""
        return cls.paths(params)[0]

    @classmethod
    def existing_outputs(cls, params: Any) -> list[str]:
        """The outputs this node would replace (refused unless overwrite is allowed). Default: files that exist."""
        import os

        return [p for p in cls.paths(params)[1] if os.path.exists(p)]

    @classmethod
    def describe_output(cls, params: Any, inputs: Mapping[str, StreamInfo],
                        refs: Mapping[str, StreamInfo | None]) -> str:
        """A sink's plan in one line (what it writes, how, and what it copies), for ``--dry-run`` and ``graph``."""
        return ""

    @classmethod
    def memory_estimate(cls, params: Any, inputs: Mapping[str, StreamInfo], output: StreamInfo | None) -> int:
        """Bytes of working memory per replica beyond the frames on its edges (models, scratch buffers)."""
        return 0

    @classmethod
    def sample_depth(cls, params: Any, inputs: Mapping[str, StreamInfo]) -> int | None:
        """For sinks: the depth (8 or 16 bits) of the native samples the frames of the ``input`` port are packed
        into, when a float frame narrowed to that depth beforehand (by :func:`diffusify.io.pixels.narrow`'s rule)
        gives exactly the bytes the sink would make itself; None (the default) when it takes frames as they come.

        A producer on a GPU whose consumers are all such sinks, at one depth, narrows there before the download.
        """
        return None

    @classmethod
    def gpu_memory(cls, params: Any, inputs: Mapping[str, StreamInfo], output: StreamInfo | None) -> int:
        """Bytes of GPU memory one replica needs when placed on a GPU (weights and activations).

        Default: the working memory estimate. The plan checks that every GPU holds what is placed on it."""
        return cls.memory_estimate(params, inputs, output)

    @property
    def batch_size(self) -> int:
        """Work items per call: the ``batch`` parameter of a batching processor (a processor whose batch is chosen
        at setup, such as ``auto``, says what it chose once set up), else 1."""
        batch = getattr(self.params, "batch", 1) if self.batching else 1
        return batch if isinstance(batch, int) and not isinstance(batch, bool) else 1

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def use_cuda_stream(self) -> None:
        """Give this replica a CUDA stream of its own when its device is a CUDA device (the executor calls this
        before setup, for neural nodes): its setup, steps and copies then run there, so replicas sharing a GPU
        overlap one's copies with the other's kernels. Elsewhere nothing changes."""
        dev = self._torch_device()
        if dev.type == "cuda" and self.cuda_stream is None:
            import torch

            self.cuda_stream = torch.cuda.Stream(device=dev)

    def on_cuda_stream(self) -> AbstractContextManager[Any]:
        """A context in which this replica's work goes to its own CUDA stream (a no-op without one)."""
        if self.cuda_stream is None:
            return contextlib.nullcontext()
        import torch

        return torch.cuda.stream(self.cuda_stream)

    def setup(self) -> None:
        """Load models and open files. Runs in the worker thread, once per replica, before the first frame."""

    def teardown(self) -> None:
        """Release what ``setup`` took. Always called, also after an error."""

    # ---- filters ---------------------------------------------------------------------------------------------
    def push(self, item: Mapping[str, Frame] | Window) -> list[Frame]:
        """Run the processor on one input frame set (a :class:`Window` for window processors) and return the
        frames it emits: zero, one or many.

        Moves inputs to this replica's device, times the call and checks the output's contract. A node that runs
        without torch (:meth:`torch_free`) gets numpy samples as they come, and torch is not touched.
        """
        if self._takes_arrays and not isinstance(item, Window) and all(is_array(f.data) for f in item.values()):
            start = time.perf_counter()
            frames = self._frames_of(self._process(item), item)
            self.busy_seconds += time.perf_counter() - start
            self.frames_done += 1
            return frames
        import torch

        start = time.perf_counter()
        dev = self._torch_device()
        with self.on_cuda_stream():
            with torch.inference_mode():
                self._follow_producers(dev)
                if isinstance(item, Window):
                    item = _window_on_device(item, dev, widen=not self.native)
                    out = self._process_window(item)
                    like = item.center
                else:
                    item = _on_device(item, dev, widen=not self.native)
                    out = self._process(item)
                    like = item
            frames = self._frames_of(out, like)
            if self.widen_output:
                frames = [f.with_data(widen_samples(f.data)) for f in frames]
            frames = self._hand_over([frames], dev)[0]
        self.busy_seconds += time.perf_counter() - start
        self.frames_done += 1
        return frames

    def push_batch(self, items: list[Mapping[str, Frame]]) -> list[list[Frame]]:
        """Run several frame sets in one call when the processor declares ``batching``; else one by one."""
        import torch

        if len(items) == 1 or not self.batching:
            return [self.push(b) for b in items]
        start = time.perf_counter()
        dev = self._torch_device()
        with self.on_cuda_stream():
            with torch.inference_mode():
                self._follow_producers(dev)
                moved = [_on_device(b, dev, widen=not self.native) for b in items]
                outs = self._process_batch(moved)
            if len(outs) != len(items):
                raise ValueError(f"{type(self).__name__}._process_batch returned {len(outs)} results for "
                                 f"{len(items)} inputs")
            result = [self._frames_of(o, b) for b, o in zip(moved, outs, strict=True)]
            if self.widen_output:
                result = [[f.with_data(widen_samples(f.data)) for f in fs] for fs in result]
            result = self._hand_over(result, dev)
        self.busy_seconds += time.perf_counter() - start
        self.frames_done += len(items)
        return result

    def flush(self) -> list[Frame]:
        """The frames the processor still holds at the end of its input (called once per replica)."""
        if self._takes_arrays:  # nothing on a device to wait for: torch is not touched
            return self._frames_of(self._flush(), None)
        import torch

        with self.on_cuda_stream():
            with torch.inference_mode():
                out = self._flush()
            return self._hand_over([self._frames_of(out, None)], self._torch_device())[0]

    def _follow_producers(self, dev: torch.device) -> None:
        """On a stream of its own, a replica first waits (on the GPU, not the CPU) for the work queued on the
        device's default stream, where producers without a stream of their own (a decoder's upload, light nodes)
        made its inputs. Producers with a stream of their own have finished theirs before handing frames on."""
        if self.cuda_stream is not None:
            import torch

            torch.cuda.current_stream(dev).wait_stream(torch.cuda.default_stream(dev))

    def _hand_over(self, sets: list[list[Frame]], dev: torch.device) -> list[list[Frame]]:
        """The frames as consumers may take them: copied back to page-locked host memory (narrowed first) when
        :attr:`host_output` says so, and the replica's queued work finished when it runs on a stream of its own
        or copied back, so that a consumer on any stream, or on the CPU, reads complete data. One wait per call.
        """
        handoff = self.host_output
        if handoff is not None:
            sets = [[f.with_data(_to_host(f.data, handoff.depth)) for f in fs] for fs in sets]
        if dev.type == "cuda" and (self.cuda_stream is not None or handoff is not None):
            import torch

            # a wrong asynchronous copy would hand over a frame still being written: wait for all of them here
            torch.cuda.current_stream(dev).synchronize()
        return sets

    def _process(self, frames: Mapping[str, Frame]) -> Output:
        """One frame set (port -> frame) in; a tensor, a :class:`Frame`, a list of them, or None out."""
        raise NotImplementedError(f"{self.type_name} does not run yet")

    def _process_window(self, window: Window) -> Output:
        """A window processor's step: the frames around one position in, what it emits for that position out."""
        raise NotImplementedError(f"{self.type_name} declares no window step")

    def _process_batch(self, batch: list[Mapping[str, Frame]]) -> list[Output]:
        raise NotImplementedError(f"{self.type_name} declares no batch step")

    def _flush(self) -> Output:
        return None

    def _frames_of(self, out: Output, like: Mapping[str, Frame] | None) -> list[Frame]:
        """Normalise what a step returned into frames; a bare tensor (or, from a node that runs without torch, a
        numpy array) takes the time and metadata of ``like``."""
        if out is None:
            return []
        items = out if isinstance(out, (list, tuple)) else [out]
        frames: list[Frame] = []
        for o in items:
            if _is_data(o):
                if like is None:
                    raise TypeError(f"{type(self).__name__}: a flush must return Frames (with their times), "
                                    "not bare tensors")
                o = next(iter(like.values())).with_data(o)
            if not isinstance(o, Frame):
                raise TypeError(f"{type(self).__name__} returned {type(o).__name__}, expected a tensor or a Frame")
            if o.data.ndim != 3:
                raise ValueError(f"output has shape {tuple(o.data.shape)}, expected (C, H, W)")
            frames.append(o)
        return frames

    @cached_property
    def _takes_arrays(self) -> bool:
        """This replica runs without torch where its inputs come as numpy samples (see :meth:`torch_free`)."""
        return not self.is_sink and not self.is_source() and type(self).torch_free(
            self.params, device=self.device, widen_output=self.widen_output, inputs=self.input_streams)

    def _torch_device(self) -> torch.device:
        import torch

        dev = getattr(self, "_device_obj", None)
        if dev is None:
            dev = self._device_obj = torch.device(self.device)
        return dev

    # ---- sources ---------------------------------------------------------------------------------------------
    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Yield frames in order until exhausted or until ``stop`` is set."""
        raise NotImplementedError(f"{self.type_name} does not run yet")

    # ---- sinks -----------------------------------------------------------------------------------------------
    def write(self, frame: Frame) -> None:
        """Consume one frame (in order)."""
        raise NotImplementedError(f"{self.type_name} does not run yet")

    def write_set(self, frames: Mapping[str, Frame]) -> None:
        """Consume one frame set (one frame per connected port, same index); sinks with one port get
        :meth:`write` of their ``input`` frame (widened to float32 unless the sink is ``native``)."""
        frame = frames["input"]
        if not self.native and is_native(frame.data):
            frame = frame.with_data(widen_samples(frame.data))
        self.write(frame)

    def finish(self, *, aborted: bool) -> SinkResult:
        """Finalise the output (also after an error or interrupt)."""
        return SinkResult(None, self.frames_done)


def _is_data(o: Any) -> bool:
    """``o`` is a frame's data: a torch tensor, or a numpy array of samples (torch is not imported to find out)."""
    torch = sys.modules.get("torch")
    return is_array(o) or torch is not None and isinstance(o, torch.Tensor)


def _to_host(data: torch.Tensor, depth: int | None) -> torch.Tensor:
    """A frame's tensor narrowed to ``depth``-bit samples (float only; None keeps it) and, from a GPU, copied into
    fresh page-locked host memory without waiting: the caller waits for the stream before anyone reads it. Torch's
    host allocator recycles that memory only after the copy has run."""
    if depth is not None and data.is_floating_point():
        from diffusify.ops.samples import narrow

        data = narrow(data, depth)
    if not data.is_cuda:
        return data
    import torch

    host = torch.empty(data.shape, dtype=data.dtype, pin_memory=True)
    host.copy_(data, non_blocking=True)
    return host


def _on_device(frames: Mapping[str, Frame], dev: torch.device, *, widen: bool = True) -> dict[str, Frame]:
    """The frames with their tensors on ``dev`` (numpy arrays of samples become tensors), native samples widened
    to float32 there (unless ``widen`` is False). A copy to a GPU is queued on the current stream (ordered before
    the processor's kernels; from page-locked memory without blocking); a copy back to the CPU waits for its
    data, since the CPU reads it at once. A tensor on the GPU already is marked as used by the current stream: it
    may have been made on another one (another replica's, or the default stream), and the caching allocator must
    not give its memory back to that stream before this consumer's queued work on it has run."""
    out = {}
    for p, f in frames.items():
        data = as_tensor(f.data)  # a decoder's numpy array of samples, wrapped without a copy
        if data.device != dev:
            data = data.to(dev, non_blocking=dev.type == "cuda")
        elif data.is_cuda:
            import torch

            data.record_stream(torch.cuda.current_stream(dev))
        if widen and is_native(data):
            data = widen_samples(data)
        out[p] = f if data is f.data else f.with_data(data)
    return out


def _window_on_device(window: Window, dev: torch.device, *, widen: bool = True) -> Window:
    """The window with every tensor on ``dev`` (widened as :func:`_on_device` does); a frame repeated at a stream
    end is moved once."""
    moved: dict[int, dict[str, Frame]] = {}
    sets = []
    for s in window.sets:
        if id(s) not in moved:
            moved[id(s)] = _on_device(s, dev, widen=widen)
        sets.append(moved[id(s)])
    return Window(tuple(sets), window.before, window.position, window.padded_before, window.padded_after)
