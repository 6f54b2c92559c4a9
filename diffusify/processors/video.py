"""Video file source and sink: ``video.read`` and ``video.write`` (decode and encode with ffmpeg)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from diffusify.graph.stream import StreamInfo
from diffusify.processors.base import Params, PlanContext, Processor, Resources, StreamError, Temporal

if TYPE_CHECKING:
    from diffusify.runtime.frame import Frame

CODECS = ("libx264", "libx265", "libsvtav1", "prores_ks", "ffv1", "h264_nvenc", "hevc_nvenc", "av1_nvenc")


class VideoReadParams(Params):
    path: str = Field(description="Video file to decode (any container/codec ffmpeg reads).")
    start: int = Field(0, ge=0, description="First frame to read (0-based, frame exact).")
    end: int | None = Field(None, ge=1, description="Stop before this frame index; empty for the end of the file.")
    high_bit_depth: bool | None = Field(
        None, description="Decode through a 16-bit RGB path; empty = automatic (on for 10/12/16-bit sources).")
    deinterlace: Literal["auto", "on", "off"] = Field(
        "auto", description="auto: deinterlace (bwdif, one frame per frame) the frames of a source flagged "
                            "interlaced; on: every frame (sources flagged progressive by mistake); off: keep the "
                            "woven fields.")


def _probe(path: str):
    from diffusify.io.errors import MediaError
    from diffusify.io.probe import probe

    if not os.path.exists(path):
        raise StreamError(f"file not found: {path} (fix the path, or pass -i FILE / --set)", param="path")
    try:
        return probe(path)
    except MediaError as e:
        raise StreamError(str(e), param="path") from None


class VideoRead(Processor):
    """Decode a video file into RGB frames, with exact timestamps and colour conversion.

    Output: ``(3, H, W)`` float32 in [0, 1] on its consumers' device, one frame per source frame (no duplicates or drops,
    variable frame rate kept as timestamps). YUV matrix and range come from the file's tags (BT.709 for HD and
    BT.601 for SD when untagged). Interlaced sources are deinterlaced (``deinterlace``). Rotated phone video
    comes out upright. Audio, subtitles and attachments are copied by ``video.write``.
    """

    type_name = "video.read"
    Params = VideoReadParams
    inputs = ()
    temporal = Temporal.ORDERED
    resources = Resources(device="cpu", max_replicas=1)

    @classmethod
    def infer_stream(cls, params: VideoReadParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        info = _probe(params.path)
        if info.video is None:
            raise StreamError(f"{params.path} has no video stream", param="path")
        total = info.video.frames
        end = params.end if params.end is not None else total
        if total is not None and end is not None:
            end = min(end, total)
        if end is not None and params.start >= end:
            raise StreamError(f"start ({params.start}) is past the last frame ({end})", param="start")
        frames = None if end is None else end - params.start
        if info.field_order is not None and params.deinterlace == "off":
            first = "top" if info.field_order in ("tt", "bt") else "bottom"  # the field shown first
            ctx.warn(f"{params.path} is interlaced ({first} field first) and deinterlace is off: its frames go "
                     "through as woven fields, which resizing and models smear", param="deinterlace")
        if ctx.max_frames is not None:
            frames = ctx.max_frames if frames is None else min(frames, ctx.max_frames)
        return info.video.replace(frames=frames)

    @classmethod
    def paths(cls, params: VideoReadParams) -> tuple[list[str], list[str]]:
        return [params.path], []

    def setup(self) -> None:
        from diffusify.io.probe import probe
        from diffusify.io.reader import VideoReader

        self.media = probe(self.params.path)
        frames = self.output_stream.frames if self.output_stream else None
        end = None if frames is None else self.params.start + frames
        self._reader = VideoReader(self.params.path, self.media, start=self.params.start, end=end,
                                   high_bit_depth=self.params.high_bit_depth, device=self.output_device,
                                   deinterlace=self.params.deinterlace)

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        for frame in self._reader:
            if stop.is_set():
                break
            yield frame

    def teardown(self) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.close()


class VideoWriteParams(Params):
    path: str = Field(description="Output file; the container follows the extension (.mkv, .mp4, .mov).")
    codec: Literal[CODECS] = Field("libx264", description="Encoder preset.")  # type: ignore[valid-type]
    crf: int | None = Field(None, ge=0, le=63, description="Constant quality (lower is better); empty = codec default.")
    bitrate: str | None = Field(None, pattern=r"^\d+(\.\d+)?[kKmM]?$",
                                description="Target bitrate such as 8M (instead of crf).")
    preset: str | None = Field(None, description="Encoder speed preset (e.g. medium, slow; p1-p7 for NVENC).")
    pix_fmt: str | None = Field(None, description="Output pixel format, e.g. yuv420p, yuv420p10le; empty = codec default.")
    extra_args: list[str] = Field(default_factory=list, description="Raw ffmpeg output options, appended as given.")
    copy_streams_from: str | None = Field(
        None, description="Source node whose audio, subtitles, attachments, chapters and metadata are copied; "
                          "empty = the graph's only video source; 'none' copies nothing.")
    overwrite: bool = Field(False, description="Replace an existing file (also --overwrite on the command line).")


class VideoWrite(Processor):
    """Encode frames to a video file, keeping the source's audio, subtitles, timestamps and colour tags.

    Input: ``(3, H, W)`` float32 in [0, 1] on any device. The file stays playable if the run is interrupted.
    """

    type_name = "video.write"
    Params = VideoWriteParams
    is_sink = True
    temporal = Temporal.ORDERED
    resources = Resources(device="cpu", max_replicas=1)
    node_refs = ("copy_streams_from",)

    @classmethod
    def infer_stream(cls, params: VideoWriteParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        stream = inputs.get("input")
        if stream is not None and stream.channels not in (1, 3):
            raise StreamError(f"video.write takes RGB or gray frames, got {stream.channels} channels")
        from diffusify.io.codecs import writer_problem

        problem = writer_problem(params.codec, os.path.splitext(params.path)[1], pix_fmt=params.pix_fmt,
                                 preset=params.preset, crf=params.crf, stream=stream, vfr=bool(stream and stream.vfr))
        if problem is not None:
            raise StreamError(problem[1], param=problem[0])
        return None

    @classmethod
    def paths(cls, params: VideoWriteParams) -> tuple[list[str], list[str]]:
        return [], [params.path]

    def configure(self, *, copy_from: str | None, copy_range: tuple[Fraction, Fraction | None] | None,
                  use_timestamps: bool, overwrite: bool) -> None:
        """Set by the engine before ``setup``: where streams are copied from and how times are kept."""
        self._copy_from = copy_from
        self._copy_range = copy_range
        self._use_timestamps = use_timestamps
        self._overwrite = overwrite or self.params.overwrite

    def setup(self) -> None:
        from diffusify.io.probe import probe
        from diffusify.io.writer import VideoWriter

        copy_from = getattr(self, "_copy_from", None)
        p = self.params
        self._writer = VideoWriter(
            p.path, self.input_streams["input"], codec=p.codec, crf=p.crf, bitrate=p.bitrate, preset=p.preset,
            pix_fmt=p.pix_fmt, extra_args=list(p.extra_args), copy_from=probe(copy_from) if copy_from else None,
            copy_range=getattr(self, "_copy_range", None), use_timestamps=getattr(self, "_use_timestamps", False),
            overwrite=getattr(self, "_overwrite", p.overwrite),
        )

    def write(self, frame: Frame) -> None:
        self._writer.write(frame)
        self.frames_done += 1

    def finish(self, *, aborted: bool) -> dict[str, Any]:
        writer = getattr(self, "_writer", None)
        if writer is None:
            return {}
        result = writer.abort() if aborted else writer.close()
        return {"path": self.params.path, "frames": result.frames, "warnings": list(result.warnings)}
