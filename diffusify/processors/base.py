"""The processor contract: declared capabilities, plan-time stream inference, and per-frame bookkeeping.

A processor class declares, as class attributes, its type name, its parameter model, its input ports, its
temporal needs and its resource needs. The engine reads those declarations to validate recipes, build the JSON
Schema, place nodes on devices and schedule them; it never has to instantiate a processor to know them.

Subclasses implement small methods (``_process``, ``frames``, ``write``); the public methods of the base class do
the bookkeeping around them: device moves, timing and contract checks.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

from diffusify.graph.stream import StreamInfo

if TYPE_CHECKING:
    import threading

    import torch

    from diffusify.runtime.frame import Frame


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


FrameRate = Annotated[str, BeforeValidator(_check_fps)]
"""A parameter holding a frame rate: a number or ``num/den``, validated, kept as text (use :func:`parse_fps`)."""


class Params(BaseModel):
    """Base of every processor's parameter model: strict keys, documented fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """This processor takes no parameters."""


class Temporal(str, enum.Enum):
    """How a processor depends on other frames."""

    FRAME = "frame"  # each output frame depends on the same-index input frame(s) only: parallel, replicable
    WINDOW = "window"  # needs `window` frames before/after: ordered, runs as one replica
    ORDERED = "ordered"  # stateful, sees every frame in order: one replica


@dataclass(frozen=True)
class Resources:
    """What a processor needs to run.

    Attributes:
        device: ``any`` (CPU or GPU), ``cpu`` (CPU only) or ``gpu`` (prefers a GPU, runs on CPU slowly).
        max_replicas: upper bound on ``replicas`` (1 for processors that cannot be replicated).
        heavy: True for neural processors (loaded weights, worth a GPU).
    """

    device: str = "any"
    max_replicas: int | None = None
    heavy: bool = False


class StreamError(Exception):
    """Raised by ``infer_stream`` when the inputs or parameters cannot produce a stream.

    ``param`` names the parameter the problem is about, so validation can point at it.
    """

    def __init__(self, message: str, *, param: str | None = None, port: str | None = None):
        super().__init__(message)
        self.param = param
        self.port = port


class PlanContext:
    """What plan-time inference may consult: the recipe's folder (relative paths resolve against the current
    directory, like the CLI's paths) and the run options that change stream info."""

    def __init__(self, *, base_dir: str = ".", max_frames: int | None = None, offline: bool = False):
        self.base_dir = base_dir
        self.max_frames = max_frames
        self.offline = offline
        self.warnings: list[tuple[str | None, str]] = []

    def warn(self, message: str, *, param: str | None = None) -> None:
        self.warnings.append((param, message))


class Processor:
    """Base class of all processors.

    Class attributes (declarations):
        type_name: the ``type:`` used in recipes, e.g. ``upscale.spandrel``.
        Params: the pydantic parameter model (``extra="forbid"``, every field described).
        inputs: names of the input ports; ``()`` for sources. A single-port processor takes ``input:``.
        is_sink: True for writers (nodes whose output goes to a file, not to other nodes).
        temporal: see :class:`Temporal`; ``window`` holds (before, after) for ``Temporal.WINDOW``.
        resources: see :class:`Resources`.
        implemented: False for processors whose parameters are defined so recipes validate, but which a later
            release makes real; running one fails with a clear message before any frame is decoded.
    """

    type_name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    inputs: ClassVar[tuple[str, ...]] = ("input",)
    optional_inputs: ClassVar[tuple[str, ...]] = ()
    is_sink: ClassVar[bool] = False
    temporal: ClassVar[Temporal] = Temporal.FRAME
    window: ClassVar[tuple[int, int]] = (0, 0)
    resources: ClassVar[Resources] = Resources()
    implemented: ClassVar[bool] = True

    def __init__(self, node_id: str, params: BaseModel, *, inputs: Mapping[str, StreamInfo],
                 output: StreamInfo | None, device: str = "cpu", output_device: str | None = None):
        self.node_id = node_id
        self.params = params
        self.input_streams = dict(inputs)
        self.output_stream = output
        self.device = device
        # Where a CPU-bound source puts its frames: its consumers' device when they all share one, so decoded
        # bytes cross the bus compact (a 1080p frame: 6 MB of bytes, not 25 MB of floats) and widen there.
        self.output_device = output_device or device
        self.busy_seconds = 0.0
        self.frames_done = 0

    # ---- declarations read by the engine -------------------------------------------------------------------
    @classmethod
    def summary(cls) -> str:
        """One line: the first line of the class docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0].rstrip(".").replace("``", "") if cls.__doc__ else ""

    @classmethod
    def is_source(cls) -> bool:
        return not cls.inputs and not cls.optional_inputs

    @classmethod
    def replicable(cls) -> bool:
        return cls.temporal is Temporal.FRAME and cls.resources.max_replicas != 1 and not cls.is_sink \
            and not cls.is_source()

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
    def memory_estimate(cls, params: Any, inputs: Mapping[str, StreamInfo], output: StreamInfo | None) -> int:
        """Bytes of working memory per replica beyond the frames on its edges (models, scratch buffers)."""
        return 0

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Load models and open files. Runs in the worker thread, once per replica, before the first frame."""

    def teardown(self) -> None:
        """Release what ``setup`` took. Always called, also after an error."""

    # ---- filters ---------------------------------------------------------------------------------------------
    def process(self, frames: Mapping[str, Frame]) -> Frame:
        """Run the processor on one frame (one per port, same index) and return the output frame.

        Moves inputs to this replica's device, times the call and checks the output's contract.
        """
        import torch

        start = time.perf_counter()
        dev = self._torch_device()
        with torch.inference_mode():
            out = self._process(_on_device(frames, dev))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{type(self).__name__}._process returned {type(out).__name__}, expected a tensor")
        if out.dim() != 3:
            raise ValueError(f"output has shape {tuple(out.shape)}, expected (C, H, W)")
        first = next(iter(frames.values()))
        self.busy_seconds += time.perf_counter() - start
        self.frames_done += 1
        return first.with_data(out)

    def process_batch(self, batch: list[Mapping[str, Frame]]) -> list[Frame]:
        """Run several same-port frame sets in one call when the processor implements ``_process_batch``."""
        import torch

        if len(batch) == 1 or not hasattr(self, "_process_batch"):
            return [self.process(b) for b in batch]
        start = time.perf_counter()
        dev = self._torch_device()
        with torch.inference_mode():
            outs = self._process_batch([_on_device(b, dev) for b in batch])  # type: ignore[attr-defined]
        self.busy_seconds += time.perf_counter() - start
        self.frames_done += len(batch)
        return [next(iter(b.values())).with_data(o) for b, o in zip(batch, outs, strict=False)]

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        raise NotImplementedError(f"{self.type_name} does not run yet")

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

    def finish(self, *, aborted: bool) -> dict[str, Any]:
        """Finalise the output (also after an error or interrupt). Returns facts for the summary."""
        return {}


def _on_device(frames: Mapping[str, Frame], dev: torch.device) -> dict[str, Frame]:
    """The frames with their tensors on ``dev``. A copy to a GPU is queued on the current stream (ordered before
    the processor's kernels); a copy back to the CPU waits for its data, since the CPU reads it at once."""
    return {p: f if f.data.device == dev else f.with_data(f.data.to(dev, non_blocking=dev.type == "cuda"))
            for p, f in frames.items()}
