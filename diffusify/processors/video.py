"""Video file source and sink: ``video.read`` and ``video.write`` (decode and encode with ffmpeg)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from diffusify.core.stream import Origin, StreamInfo
from diffusify.processors.base import (
    InputPath,
    OutputPath,
    Params,
    PlanContext,
    Port,
    Processor,
    Resources,
    SegmentRule,
    SinkResult,
    StreamError,
    Temporal,
    attach_alpha,
    with_alpha,
)

if TYPE_CHECKING:
    from diffusify.core.frame import Frame

CODECS = ("libx264", "libx265", "libsvtav1", "prores_ks", "ffv1", "h264_nvenc", "hevc_nvenc", "av1_nvenc", "auto")


class VideoReadParams(Params):
    path: InputPath = Field(description="Video file to decode (any container/codec ffmpeg reads).")
    start: int = Field(0, ge=0, description="First frame to read (0-based, frame exact).")
    end: int | None = Field(None, ge=1, description="Stop before this frame index; empty for the end of the file.")
    high_bit_depth: bool | None = Field(
        None, description="Decode through a 16-bit RGB path; empty = automatic (on for 10/12/16-bit sources).")
    deinterlace: Literal["auto", "on", "off"] = Field(
        "auto", description="auto: deinterlace (bwdif, one frame per frame) the frames of a source flagged "
                            "interlaced; on: every frame (sources flagged progressive by mistake); off: keep the "
                            "woven fields.")
    decode: Literal["cpu", "auto", "nvdec"] = Field(
        "cpu", description="Where frames are decoded. cpu: the ffmpeg pipe (exact colour conversion). nvdec: the "
                           "GPU's video decoder through torchcodec (the gpu extra), frames landing on the GPU as "
                           "8-bit samples; for 8-bit 4:2:0 video tagged BT.709 limited range, upright and "
                           "progressive, whose consumers run on one CUDA device. Its colours are NPP's conversion: "
                           "within a few levels of the cpu path's, not equal. auto: nvdec where all of that holds, "
                           "else cpu (the run summary's notes say which).")


def _probe(path: str):
    from diffusify.io.errors import MediaError
    from diffusify.io.probe import probe

    if not os.path.exists(path):
        raise StreamError(f"file not found: {path} (fix the path, or pass -i FILE / --set)", param="path")
    try:
        return probe(path)
    except MediaError as e:
        raise StreamError(str(e), param="path") from None


def _origin(node: str, path: str, info: Any, first: int, frames: int | None) -> Origin:
    """Where the frames ``[first, first + frames)`` of ``path`` sit on its video timeline."""
    ts = info.timestamps
    fps = info.video.fps if info.video else Fraction(25)
    total = info.video.frames if info.video else None
    t0 = ts[first] if ts and first < len(ts) else Fraction(first) / fps
    stop = None if frames is None else first + frames
    if stop is None or (total is not None and stop >= total) or (ts and stop >= len(ts)):
        return Origin(node=node, path=path, start=Fraction(t0) if first else Fraction(0), end=None)
    t1 = ts[stop] if ts else Fraction(stop) / fps
    return Origin(node=node, path=path, start=Fraction(t0) if first else Fraction(0), end=Fraction(t1))


def _warn_if_truncated(info: Any, path: str, ctx: PlanContext) -> None:
    """A file whose container announces more video than its packets hold was cut short or damaged: the run
    would quietly have fewer frames. (Only for files without audio: with audio, a longer container is normal.)"""
    video = info.video
    if info.duration is None or info.video_duration is None or video is None or info.streams_of("audio"):
        return
    missing = info.duration - float(info.video_duration)
    if missing > max(0.5, 2 / float(video.fps)):
        announced = round(info.duration * float(video.fps))
        ctx.warn(f"{path} announces {info.duration:.2f} s (about {announced} frames) but holds {video.frames} "
                 f"frames ({float(info.video_duration):.2f} s): it looks truncated or damaged, and the run will "
                 "have only those frames (run --strict to refuse it)", param="path")


class VideoRead(Processor):
    """Decode a video file into RGB frames, with exact timestamps and colour conversion.

    Output: ``(3, H, W)`` samples at the decoded depth (``uint8``, or ``uint16`` above 8 bits; consumers that
    compute get float32 in [0, 1], widened on their own device) on its consumers' device, one frame per source
    frame (no duplicates or drops,
    variable frame rate kept as timestamps). YUV matrix and range come from the file's tags (BT.709 for HD and
    BT.601 for SD when untagged). Interlaced sources are deinterlaced (``deinterlace``). Rotated phone video
    comes out upright. Audio, subtitles and attachments are copied by ``video.write``.
    """

    type_name = "video.read"
    Params = VideoReadParams
    inputs = ()
    temporal = Temporal.ORDERED
    resources = Resources(device="cpu", max_replicas=1)
    extra = "gpu"

    @classmethod
    def requirements(cls, params: Any = None) -> tuple[str, ...]:
        return ("torchcodec",) if params is not None and params.decode == "nvdec" else ()

    @classmethod
    def torch_free(cls, params: VideoReadParams, *, device: str, widen_output: bool,
                   inputs: Mapping[str, StreamInfo]) -> bool:
        """Decoding through the ffmpeg pipe for the CPU, handing samples on as they are, needs no torch."""
        return params.decode != "nvdec" and device == "cpu" and not widen_output

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
        first, end = ctx.source_range(params.start, end)
        if end is not None and first >= end:
            raise StreamError(f"the segment starts at frame {first}, past the last frame ({end})", param="start")
        frames = None if end is None else end - first
        if info.field_order is not None and params.deinterlace == "off":
            shown = "top" if info.field_order in ("tt", "bt") else "bottom"  # the field shown first
            ctx.warn(f"{params.path} is interlaced ({shown} field first) and deinterlace is off: its frames go "
                     "through as woven fields, which resizing and models smear", param="deinterlace")
        _warn_if_truncated(info, params.path, ctx)
        if params.decode == "nvdec":
            from diffusify.io.reader import nvdec_problem

            problem = nvdec_problem(info, high_bit_depth=params.high_bit_depth, deinterlace=params.deinterlace)
            if problem is not None:
                raise StreamError(f"decode: nvdec cannot decode {params.path}: {problem}; use decode: cpu, or "
                                  "auto (nvdec where it can)", param="decode")
        if ctx.max_frames is not None:
            frames = ctx.max_frames if frames is None else min(frames, ctx.max_frames)
        return info.video.replace(frames=frames, origin=_origin(ctx.node, params.path, info, first, frames))

    @classmethod
    def paths(cls, params: VideoReadParams) -> tuple[list[str], list[str]]:
        return [params.path], []

    def setup(self) -> None:
        from diffusify.io.probe import probe
        from diffusify.io.reader import VideoReader

        self.media = probe(self.params.path)
        frames = self.output_stream.frames if self.output_stream else None
        segment = self.options.segment
        first = segment.clip(self.params.start, self.params.end)[0] if segment else self.params.start
        end = None if frames is None else first + frames
        self._reader: Any = None
        if self.params.decode != "cpu":
            self._reader = self._nvdec_reader(first, end)
        if self._reader is None:
            self._reader = VideoReader(self.params.path, self.media, start=first, end=end,
                                       high_bit_depth=self.params.high_bit_depth, device=self.output_device,
                                       deinterlace=self.params.deinterlace, native=not self.widen_output)

    def _nvdec_reader(self, first: int, end: int | None) -> Any:
        """The NVDEC reader for ``decode: nvdec`` (or a one-line error saying why it cannot be), or for ``auto``
        where it can be (None, with a note saying why not, where it cannot)."""
        import importlib.util

        from diffusify.io.errors import MediaError
        from diffusify.io.reader import TORCHCODEC_HINT, NvdecReader, nvdec_problem

        p = self.params
        if not str(self.output_device).startswith("cuda"):
            why = (f"its consumers run on {self.output_device}, and NVDEC frames land on a GPU (give them one CUDA "
                   "device)")
        elif importlib.util.find_spec("torchcodec") is None:
            why = f"torchcodec is not installed ({TORCHCODEC_HINT})"
        else:
            why = nvdec_problem(self.media, high_bit_depth=p.high_bit_depth, deinterlace=p.deinterlace)
        if why is None:
            try:
                reader = NvdecReader(p.path, self.media, start=first, end=end, device=self.output_device,
                                     native=not self.widen_output)
            except MediaError as e:
                if p.decode == "nvdec":
                    raise
                why = str(e)
            else:
                self.notes.append(f"decode {p.decode}: NVDEC on {self.output_device} (torchcodec)")
                return reader
        if p.decode == "nvdec":
            raise MediaError(f"decode: nvdec cannot be used: {why}")
        self.notes.append(f"decode auto: the ffmpeg pipe, since {why}")
        return None

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
    path: OutputPath = Field(description="Output file; the container follows the extension (.mkv, .mp4, .mov).")
    codec: Literal[CODECS] = Field(  # type: ignore[valid-type]
        "libx264", description="Encoder preset. auto: NVENC (h264_nvenc; hevc_nvenc above 8 bits) where it opens "
                               "on the machine that runs it, else libx264 on all cores (data-centre GPUs such as "
                               "the H100 have no NVENC); takes no preset or pix_fmt.")
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


def _codec(params: VideoWriteParams, stream: StreamInfo | None) -> str:
    """The encoder the writer runs (``auto`` resolved for this machine and the stream's depth)."""
    from diffusify.io.codecs import resolve_codec

    return resolve_codec(params.codec, stream.bit_depth if stream else 8)[0]


class VideoWrite(Processor):
    """Encode frames to a video file, keeping the source's audio, subtitles, timestamps and colour tags.

    Input: ``(3, H, W)`` float32 in [0, 1] on any device (a mask: ``(1, H, W)``, written as gray). With a mask on
    the ``alpha`` port, the file stores it as the alpha channel (ProRes 4444 in .mov, FFV1 in .mkv). The file
    stays playable if the run is interrupted.
    """

    type_name = "video.write"
    Params = VideoWriteParams
    is_sink = True
    temporal = Temporal.ORDERED
    resources = Resources(device="cpu", max_replicas=1)
    node_refs = ("copy_streams_from",)
    inputs = (Port("input", "any"),)
    optional_inputs = (Port("alpha", "mask"),)
    native = True  # decoded samples untouched by the graph are packed as they are, never widened

    @classmethod
    def infer_stream(cls, params: VideoWriteParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        if os.path.isdir(params.path) or params.path.endswith(("/", os.sep)):
            raise StreamError(f"{params.path} is a folder; a video output needs a file name, such as "
                              f"{os.path.join(params.path, 'out.mkv')}", param="path")
        stream = inputs.get("input")
        if stream is not None and stream.channels not in (1, 3):
            raise StreamError(f"video.write takes RGB or gray frames, got {stream.channels} channels")
        stream = with_alpha(stream, inputs.get("alpha"))
        from diffusify.io.codecs import AUTO, writer_problems

        if params.codec == AUTO:
            for name in ("preset", "pix_fmt"):
                if getattr(params, name) is not None:
                    raise StreamError(f"codec auto chooses the encoder on the machine that runs it, and encoders "
                                      f"take different values of {name}: leave {name} empty, or name the codec",
                                      param=name)
        problems = writer_problems(_codec(params, stream), os.path.splitext(params.path)[1], pix_fmt=params.pix_fmt,
                                   preset=params.preset, crf=params.crf, stream=stream,
                                   vfr=bool(stream and stream.vfr))
        for param, message in problems[1:]:
            ctx.error(message, param=param)
        if problems:
            raise StreamError(problems[0][1], param=problems[0][0])
        return None

    @classmethod
    def paths(cls, params: VideoWriteParams) -> tuple[list[str], list[str]]:
        return [], [params.path]

    @classmethod
    def torch_free(cls, params: VideoWriteParams, *, device: str, widen_output: bool,
                   inputs: Mapping[str, StreamInfo]) -> bool:
        """Native samples from a CPU decoder are packed without torch (tensors come only from nodes that import
        it)."""
        return True

    @classmethod
    def sample_depth(cls, params: VideoWriteParams, inputs: Mapping[str, StreamInfo]) -> int | None:
        """The writer packs float frames by :func:`diffusify.io.pixels.narrow`'s rule at 16 bits for outputs
        above 8 bits, else at 8 (not declared with a matte, whose frames are joined to the picture first)."""
        stream = inputs.get("input")
        if stream is None or "alpha" in inputs:
            return None
        from diffusify.io.codecs import default_pix_fmt, sample_depth

        return sample_depth(params.pix_fmt or default_pix_fmt(_codec(params, stream), stream.bit_depth))

    @classmethod
    def segmenting(cls, params: VideoWriteParams, inputs: Mapping[str, StreamInfo],
                   output: StreamInfo | None) -> SegmentRule | str:
        return SegmentRule()  # each segment to a file of its own, joined without re-encoding

    @classmethod
    def copy_origin(cls, params: VideoWriteParams, stream: StreamInfo | None,
                    refs: Mapping[str, StreamInfo | None]) -> Origin | None:
        """The file (and span of it) whose audio, subtitles and chapters are copied: the one named by
        ``copy_streams_from``, else the one the input's frames come from."""
        if params.copy_streams_from == "none":
            return None
        if params.copy_streams_from is not None:
            ref = refs.get("copy_streams_from")
            return ref.origin if ref is not None else None
        return stream.origin if stream is not None else None

    @classmethod
    def describe_output(cls, params: VideoWriteParams, inputs: Mapping[str, StreamInfo],
                        refs: Mapping[str, StreamInfo | None]) -> str:
        from diffusify.io.codecs import default_pix_fmt, resolve_codec

        stream = inputs.get("input")
        alpha = "alpha" in inputs
        codec, note = resolve_codec(params.codec, stream.bit_depth if stream else 8)
        pix_fmt = params.pix_fmt or default_pix_fmt(codec, stream.bit_depth if stream else 8, alpha=alpha)
        rate = f"crf {params.crf}" if params.crf is not None else (f"{params.bitrate}b/s" if params.bitrate
                                                                   else "default quality")
        text = f"{params.path}: {codec} {pix_fmt}{' with alpha' if alpha else ''}, {rate}"
        if params.preset:
            text += f", preset {params.preset}"
        if note:
            text += f" ({note})"
        origin = cls.copy_origin(params, stream, refs)
        if origin is None or not origin.streams:
            return text + "; copies no audio or subtitles"
        span = "" if origin.span is None else (f" from {float(origin.start):.3f} s to "
                                               + ("the end" if origin.end is None else f"{float(origin.end):.3f} s"))
        return text + f"; copies audio, subtitles and chapters of {origin.path}{span}"

    def setup(self) -> None:
        from diffusify.io.codecs import resolve_codec
        from diffusify.io.probe import probe
        from diffusify.io.writer import VideoWriter

        stream = self.input_streams["input"]
        origin = self.copy_origin(self.params, stream, self.refs)
        if origin is not None and not origin.streams:
            origin = None
        p = self.params
        codec, note = resolve_codec(p.codec, stream.bit_depth)
        if note:
            self.notes.append(note)
        self._writer = VideoWriter(
            p.path, with_alpha(stream, self.input_streams.get("alpha")), codec=codec, crf=p.crf, bitrate=p.bitrate, preset=p.preset,
            pix_fmt=p.pix_fmt, extra_args=list(p.extra_args), copy_from=probe(origin.path) if origin else None,
            copy_range=origin.span if origin else None, use_timestamps=stream.vfr,
            overwrite=self.options.overwrite or p.overwrite,
        )

    def write(self, frame: Frame) -> None:
        self._writer.write(frame)
        self.frames_done += 1

    def write_set(self, frames: Mapping[str, Frame]) -> None:
        self.write(attach_alpha(frames))

    def finish(self, *, aborted: bool) -> SinkResult:
        writer = getattr(self, "_writer", None)
        if writer is None:
            return SinkResult(None, 0)
        planned = self.input_streams["input"].frames
        short = planned is not None and writer.frames < planned  # a run stopped before the end of its source
        result = writer.abort() if aborted else writer.close(cut_copies=short)
        return SinkResult(self.params.path, result.frames, list(result.warnings))
