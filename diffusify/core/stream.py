"""Stream information propagated through the graph at plan time.

Every edge of a pipeline carries one video (or mask) stream. Its shape, rate and colour metadata are known
before any frame is decoded, so mismatches at merges are reported by ``diffusify validate``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction


@dataclass(frozen=True)
class ColorInfo:
    """Colour metadata of a stream, as ffmpeg names it.

    Attributes:
        matrix: YUV matrix (``bt709``, ``smpte170m``, ``bt470bg``, ``bt2020nc``...), None when untagged.
        range: ``tv`` (limited) or ``pc`` (full), None when untagged.
        primaries: colour primaries (``bt709``, ``bt2020``...), None when untagged.
        transfer: transfer characteristics (``bt709``, ``smpte2084``...), None when untagged.
        mastering: HDR10 mastering display (SMPTE ST 2086): the x, y chromaticities of its red, green and blue
            primaries and white point, then its maximum and minimum luminance in cd/m2; None when absent.
        light: HDR10 content light level: (MaxCLL, MaxFALL) in cd/m2, None when absent.
    """

    matrix: str | None = None
    range: str | None = None
    primaries: str | None = None
    transfer: str | None = None
    mastering: tuple[float, ...] | None = None
    light: tuple[int, int] | None = None

    def describe(self) -> str:
        parts = [p for p in (self.matrix, self.range, self.primaries, self.transfer) if p]
        text = "/".join(parts) if parts else "untagged"
        if self.mastering is not None:
            text += f", mastered at {self.mastering[8]:g} cd/m2"
        if self.light is not None:
            text += f", MaxCLL {self.light[0]}"
        return text


@dataclass(frozen=True)
class Origin:
    """Where a stream's frames come from: a media file and the span of it that the run reads.

    Writers copy audio, subtitles and chapters from ``path``, cut to ``[start, end)``.

    Attributes:
        node: the source node that reads the file.
        path: the media file.
        start: time of the first frame read, in seconds from the file's first video frame.
        end: time just after the last frame read, or None when the run reads to the end of the file.
        streams: True when the file can hold streams worth copying (audio, subtitles, chapters): a video file,
            not an image sequence.
    """

    node: str
    path: str
    start: Fraction = Fraction(0)
    end: Fraction | None = None
    streams: bool = True

    @property
    def span(self) -> tuple[Fraction, Fraction | None] | None:
        """``(start, end)`` when only part of the file is read, else None."""
        return None if self.start == 0 and self.end is None else (self.start, self.end)


@dataclass(frozen=True)
class StreamInfo:
    """What flows on one edge.

    Attributes:
        width: frame width in pixels.
        height: frame height in pixels.
        fps: exact frame rate (average rate for variable frame rate streams).
        frames: number of frames, None when unknown (an open-ended source).
        channels: 3 for RGB, 1 for masks and grayscale, 4 with alpha.
        bit_depth: bit depth of the source samples (8, 10, 12, 16); edges are float32 regardless.
        sar: sample aspect ratio.
        color: colour metadata carried to the writers.
        vfr: True when the source timestamps are not evenly spaced.
        kind: ``video`` or ``mask``.
        origin: the file the frames come from (None for generated frames, or when a merge joins several files).
    """

    width: int
    height: int
    fps: Fraction = Fraction(25)
    frames: int | None = None
    channels: int = 3
    bit_depth: int = 8
    sar: Fraction = Fraction(1)
    color: ColorInfo = field(default_factory=ColorInfo)
    vfr: bool = False
    kind: str = "video"
    origin: Origin | None = None

    def replace(self, **changes: object) -> StreamInfo:
        return dataclasses.replace(self, **changes)

    @property
    def frame_bytes(self) -> int:
        """Bytes of one float32 frame on an edge."""
        return self.width * self.height * self.channels * 4

    @property
    def duration(self) -> float | None:
        if self.frames is None or not self.fps:
            return None
        return float(self.frames / self.fps)

    def describe(self) -> str:
        fps = f"{self.fps.numerator}/{self.fps.denominator}" if self.fps.denominator != 1 else str(self.fps.numerator)
        frames = "?" if self.frames is None else str(self.frames)
        extra = " vfr" if self.vfr else ""
        return (
            f"{self.width}x{self.height} {self.channels}ch {self.bit_depth}bit @ {fps} fps{extra}, "
            f"{frames} frames, {self.color.describe()}"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "width": self.width,
            "height": self.height,
            "fps": f"{self.fps.numerator}/{self.fps.denominator}",
            "frames": self.frames,
            "channels": self.channels,
            "bit_depth": self.bit_depth,
            "sar": f"{self.sar.numerator}/{self.sar.denominator}",
            "color": dataclasses.asdict(self.color),
            "vfr": self.vfr,
            "kind": self.kind,
            "origin": None if self.origin is None else {
                "node": self.origin.node, "path": self.origin.path, "start": float(self.origin.start),
                "end": None if self.origin.end is None else float(self.origin.end)},
        }


def merged_origin(streams: list[StreamInfo]) -> Origin | None:
    """The origin of a merge of ``streams``: theirs when they all come from one file, else None."""
    origins = {s.origin for s in streams}
    return origins.pop() if len(origins) == 1 else None
