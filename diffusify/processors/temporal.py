"""Temporal processors without a model: ``scene.detect`` (mark cuts), ``dedup`` (drop repeated frames, keep
times) and ``fps`` (classical frame-rate conversion on an exact grid). Frame interpolation is ``rife.py``.

Times are exact: every output frame's ``pts`` is a Fraction computed from the source times, never accumulated
in floating point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from diffusify.core.stream import StreamInfo
from diffusify.processors.base import (
    FrameRate,
    OutputPath,
    Params,
    PlanContext,
    Processor,
    Resources,
    SegmentRule,
    StreamError,
    Temporal,
    parse_fps,
)

if TYPE_CHECKING:

    from diffusify.core.frame import Frame


# ---- scene.detect -------------------------------------------------------------------------------------------------
class SceneDetectParams(Params):
    threshold: float = Field(
        10.0, ge=0, le=100,
        description="Score (percent of full scale) from which a frame starts a new scene. The score is ffmpeg "
                    "scdet's: the smaller of the mean absolute luma difference to the previous frame and its "
                    "change from the difference before, so steady motion scores low and a cut scores high.")
    cuts: OutputPath | None = Field(
        None, description="Also write the cuts to this CSV file (frame,time,score; frame 0 is the stream's "
                          "first), for editors. Empty writes none.")


class SceneDetect(Processor):
    """Mark scene changes in frame metadata (``scene_change``, ``scene_score``), optionally listing the cuts.

    Input and output: the same frames, unchanged, ``(C, H, W)`` float32 on any device. Every frame gets
    ``meta["scene_score"]`` (0-100) and ``meta["scene_change"]`` (True on the first frame of a new scene; the
    stream's first frame is not a change). Measured on a luma thumbnail of at most 256 pixels a side.
    """

    type_name = "scene.detect"
    Params = SceneDetectParams
    temporal = Temporal.ORDERED
    resources = Resources(device="any", max_replicas=1)

    @classmethod
    def paths(cls, params: SceneDetectParams) -> tuple[list[str], list[str]]:
        return [], ([params.cuts] if params.cuts else [])

    @classmethod
    def segmenting(cls, params: SceneDetectParams, inputs: Mapping[str, StreamInfo],
                   output: StreamInfo | None) -> SegmentRule | str:
        if params.cuts:
            return "scene.detect writes its list of cuts as one file; remove cuts to run in segments"
        return SegmentRule(pre=2)  # a score compares a frame with the one before, and that difference with the last

    def setup(self) -> None:
        self._prev: Any = None
        self._prev_mafd = 0.0
        self._position = 0
        self.cuts: list[tuple[int, Fraction, float]] = []

    def _process(self, frames: Mapping[str, Frame]) -> Frame:
        from diffusify.ops.measure import luma_thumbnail, mean_abs_diff

        f = frames["input"]
        thumb = luma_thumbnail(f.data)
        score = 0.0
        if self._prev is not None:
            mafd = mean_abs_diff(thumb, self._prev)
            score = min(mafd, abs(mafd - self._prev_mafd))
            self._prev_mafd = mafd
        self._prev = thumb
        change = self._position > 0 and score >= self.params.threshold
        if change:
            self.cuts.append((self._position, f.pts, score))
        self._position += 1
        return f.derive(meta={"scene_change": change, "scene_score": round(score, 4)})

    def _flush(self) -> None:
        if self.params.cuts:
            lines = ["frame,time,score"] + [f"{i},{float(t):.6f},{s:.3f}" for i, t, s in self.cuts]
            from diffusify.io.paths import write_atomically

            write_atomically(self.params.cuts, "\n".join(lines) + "\n")
        return None


# ---- dedup --------------------------------------------------------------------------------------------------------
class DedupParams(Params):
    threshold: float = Field(
        0.3, ge=0, le=100,
        description="Mean absolute luma difference to the last kept frame (percent of full scale) below which a "
                    "frame repeats it and is dropped. Compression noise on a repeated frame stays well below 0.3.")
    max_drop: int = Field(
        8, ge=1, le=100_000,
        description="Keep a frame after this many dropped in a row, so a still stretch keeps a frame every "
                    "max_drop + 1 (an interpolator after dedup then never spans a long gap).")


class Dedup(Processor):
    """Drop frames that repeat the last kept one (anime drawn on twos, still screens), keeping the times of the
    frames it keeps.

    Input: ``(C, H, W)`` float32. Output: the kept frames, unchanged, with their own ``pts``: the stream becomes
    variable-rate and lasts as long as before (the last frame is always kept). ``meta["dropped_before"]`` says how
    many frames were dropped just before each kept one.
    """

    type_name = "dedup"
    Params = DedupParams
    temporal = Temporal.ORDERED

    @classmethod
    def segmenting(cls, params: DedupParams, inputs: Mapping[str, StreamInfo],
                   output: StreamInfo | None) -> SegmentRule | str:
        return ("dedup compares each frame with the last one it kept, which may lie any distance back, so a "
                "segment's first frames would be judged differently")
    resources = Resources(device="any", max_replicas=1)

    @classmethod
    def infer_stream(cls, params: DedupParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        return inputs["input"].replace(frames=None, vfr=True)

    def setup(self) -> None:
        self._kept: Any = None
        self._dropped = 0
        self._last: Frame | None = None

    def _process(self, frames: Mapping[str, Frame]) -> Frame | None:
        from diffusify.ops.measure import luma_thumbnail, mean_abs_diff

        f = frames["input"]
        thumb = luma_thumbnail(f.data)
        if self._kept is not None and self._dropped < self.params.max_drop \
                and mean_abs_diff(thumb, self._kept) < self.params.threshold:
            self._dropped += 1
            self._last = f
            return None
        out = f.derive(meta={"dropped_before": self._dropped})
        self._kept, self._dropped, self._last = thumb, 0, None
        return out

    def _flush(self) -> list[Frame]:
        # the last frame stays, so the stream ends when it did (its duration unchanged)
        if self._last is None:
            return []
        return [self._last.derive(meta={"dropped_before": self._dropped - 1})]


# ---- fps ----------------------------------------------------------------------------------------------------------
def retimed_stream(src: StreamInfo, target: Fraction, param: str) -> StreamInfo:
    """The stream of a rate change to ``target`` on an exact grid: constant rate, and, from a constant-rate input
    of N frames, ceil(N * target / rate) frames (as many grid times as fall before the input's end)."""
    if target > 1000:
        raise StreamError(f"{float(target):g} fps is more than a video holds; check the value", param=param)
    frames = None if src.frames is None or src.vfr else math.ceil(src.frames * target / src.fps)
    return src.replace(fps=target, frames=frames, vfr=False)


class FpsParams(Params):
    fps: FrameRate = Field(description="Target frame rate, exact: 60000/1001, 59.94 (read as 60000/1001), 50...")
    mode: Literal["nearest", "blend"] = Field(
        "nearest", description="nearest: each output frame is the source frame nearest its time (drop/duplicate); "
                               "blend: a weighted mix of the two source frames around it, except across a "
                               "scene change marked by scene.detect (the frame before the cut repeats).")


class Fps(Processor):
    """Convert the frame rate without a model: output frames on an exact grid of the target rate.

    Output frame k is at ``t0 + k / fps`` (``t0``: the first input frame's time), for every k whose time falls
    before the end of the input (its last frame's time plus one input frame), so the duration, and audio sync,
    are kept to the frame. From a constant-rate input of N frames at rate r, it makes exactly ceil(N * fps / r)
    frames. Variable-rate input works too (its real times are used).
    Input: ``(C, H, W)`` float32. Output: the same shape, constant rate.
    """

    type_name = "fps"
    Params = FpsParams
    temporal = Temporal.ORDERED
    resources = Resources(device="any", max_replicas=1)

    @classmethod
    def infer_stream(cls, params: FpsParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        return retimed_stream(inputs["input"], parse_fps(params.fps), "fps")

    @classmethod
    def segmenting(cls, params: FpsParams, inputs: Mapping[str, StreamInfo],
                   output: StreamInfo | None) -> SegmentRule | str:
        return SegmentRule(pre=1, post=1, grid=parse_fps(params.fps))

    def setup(self) -> None:
        self._step = 1 / parse_fps(self.params.fps)
        self._in_step = 1 / self.input_streams["input"].fps
        self._cfr = not self.input_streams["input"].vfr
        self._t0: Fraction | None = None
        self._prev: Frame | None = None
        self._k = 0
        self._count = 0

    def _grid(self, k: int) -> Fraction:
        assert self._t0 is not None
        return self._t0 + k * self._step

    def _emit_before(self, end: Fraction, nxt: Frame | None) -> list[Frame]:
        """Output frames at grid times before ``end``, from the held frame and the next one (if any)."""
        prev = self._prev
        assert prev is not None
        out = []
        while self._grid(self._k) < end:
            t = self._grid(self._k)
            out.append(self._frame_at(t, prev, nxt))
            self._k += 1
        return out

    def _frame_at(self, t: Fraction, prev: Frame, nxt: Frame | None) -> Frame:
        meta = {"source_pts": prev.pts}
        if nxt is None or nxt.pts == prev.pts:
            return prev.derive(pts=t, meta=meta)
        w = (t - prev.pts) / (nxt.pts - prev.pts)
        if self.params.mode == "nearest":
            src = nxt if w > Fraction(1, 2) else prev  # a tie goes to the earlier frame
            return src.derive(pts=t, meta={"source_pts": src.pts})
        if nxt.meta.get("scene_change"):
            return prev.derive(pts=t, meta=meta)  # never blend across a cut: the frame before it repeats
        return prev.derive(prev.data.lerp(nxt.data.to(prev.data.dtype), float(w)), pts=t,
                           meta={"source_pts": prev.pts, "blend": float(w)})

    def _process(self, frames: Mapping[str, Frame]) -> list[Frame]:
        f = frames["input"]
        self._count += 1
        if self._prev is None:
            self._t0, self._prev = f.pts, f
            return []
        out = self._emit_before(f.pts, f)
        self._prev = f
        return out

    def _flush(self) -> list[Frame]:
        if self._prev is None:
            return []
        assert self._t0 is not None
        # a constant-rate input ends N input frames after its first (exact, whatever the container rounded);
        # a variable-rate one, one average frame after its last
        end = self._t0 + self._count * self._in_step if self._cfr else self._prev.pts + self._in_step
        return self._emit_before(end, None)
