"""Image sequences: ``image.read`` (PNG/TIFF/JPEG/WebP/BMP sequence source) and ``image.write`` (PNG/TIFF sequence sink)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from diffusify.core.stream import Origin, StreamInfo
from diffusify.processors.base import (
    FrameRate,
    InputPath,
    OutputPath,
    Params,
    PlanContext,
    Port,
    Processor,
    Resources,
    SinkResult,
    StreamError,
    Temporal,
    attach_alpha,
    parse_fps,
    with_alpha,
)

if TYPE_CHECKING:
    from diffusify.core.frame import Frame


class ImageReadParams(Params):
    path: InputPath = Field(description="A folder of images, or a glob pattern such as frames/*.png.")
    fps: FrameRate = Field("25", description="Frame rate of the sequence, e.g. 24, 30000/1001.")
    start: int = Field(0, ge=0, description="First image to read (0-based, in sorted order).")
    end: int | None = Field(None, ge=1, description="Stop before this image index; empty for all.")


class ImageRead(Processor):
    """Read a PNG, TIFF, JPEG, WebP or BMP image sequence (sorted by name) as RGB frames.

    Output: ``(3, H, W)`` RGB on its consumers' device (native 8/16-bit samples until a node computes, then float32
    in [0, 1]); 16-bit images keep their precision; gray and RGBA are converted to RGB. Every image must have the
    first image's size.
    """

    type_name = "image.read"
    Params = ImageReadParams
    inputs = ()
    temporal = Temporal.ORDERED
    resources = Resources(device="cpu", max_replicas=1)

    @classmethod
    def infer_stream(cls, params: ImageReadParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        from diffusify.io.errors import MediaError
        from diffusify.io.images import probe_images

        try:
            stream = probe_images(params.path, fps=parse_fps(params.fps))
        except MediaError as e:
            raise StreamError(str(e), param="path") from None
        total = stream.frames or 0
        end = min(params.end, total) if params.end is not None else total
        if params.start >= end:
            raise StreamError(f"start ({params.start}) is past the last image ({end})", param="start")
        first, end = ctx.source_range(params.start, end)
        if end is not None and first >= end:
            raise StreamError(f"the segment starts at image {first}, past the last image ({end})", param="start")
        frames = (end if end is not None else total) - first
        if ctx.max_frames is not None:
            frames = min(frames, ctx.max_frames)
        return stream.replace(frames=frames, origin=Origin(ctx.node, params.path, streams=False))

    @classmethod
    def torch_free(cls, params: ImageReadParams, *, device: str, widen_output: bool,
                   inputs: Mapping[str, StreamInfo]) -> bool:
        """Decoding for the CPU, handing samples on as they are, needs no torch."""
        return device == "cpu" and not widen_output

    @classmethod
    def paths(cls, params: ImageReadParams) -> tuple[list[str], list[str]]:
        return [params.path], []

    @classmethod
    def input_files(cls, params: ImageReadParams) -> list[str]:
        from diffusify.io.errors import MediaError
        from diffusify.io.images import list_images

        try:
            return [str(p) for p in list_images(params.path)]
        except MediaError:
            return [params.path]

    def setup(self) -> None:
        from diffusify.io.images import ImageSequenceReader

        frames = self.output_stream.frames if self.output_stream else None
        segment = self.options.segment
        first = segment.clip(self.params.start, self.params.end)[0] if segment else self.params.start
        self._reader = ImageSequenceReader(self.params.path, fps=parse_fps(self.params.fps), start=first,
                                           end=None if frames is None else first + frames,
                                           device=self.output_device, native=not self.widen_output)

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        for frame in self._reader:
            if stop.is_set():
                break
            yield frame

    def teardown(self) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None and hasattr(reader, "close"):
            reader.close()


class ImageWriteParams(Params):
    path: OutputPath = Field(description="Output folder; files are named frame_000000.png and so on.")
    format: Literal["png", "tiff"] = Field("png", description="Image format.")
    bit_depth: Literal[8, 16] = Field(8, description="Bits per channel.")
    overwrite: bool = Field(False, description="Write into a folder that already holds images.")


class ImageWrite(Processor):
    """Write frames as a PNG/TIFF sequence, 8 or 16 bits per channel.

    Input: ``(C, H, W)`` float32 in [0, 1] on any device (1 channel, a mask, is written as gray). With a mask on
    the ``alpha`` port, the images are RGBA with it as their alpha.
    """

    type_name = "image.write"
    Params = ImageWriteParams
    is_sink = True
    output_kind = "folder"
    temporal = Temporal.ORDERED
    resources = Resources(device="cpu", max_replicas=1)
    inputs = (Port("input", "any"),)
    optional_inputs = (Port("alpha", "mask"),)
    native = True

    @classmethod
    def torch_free(cls, params: ImageWriteParams, *, device: str, widen_output: bool,
                   inputs: Mapping[str, StreamInfo]) -> bool:
        """Native samples from a CPU decoder are interleaved and written without torch."""
        return True

    @classmethod
    def paths(cls, params: ImageWriteParams) -> tuple[list[str], list[str]]:
        from diffusify.io.images import sequence_folder

        return [], [sequence_folder(params.path)]

    @classmethod
    def infer_stream(cls, params: ImageWriteParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        import os

        from diffusify.io.images import sequence_folder

        folder = sequence_folder(params.path)
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise StreamError(f"{folder} is a file; image.write writes into a folder (give a folder name)",
                              param="path")
        with_alpha(inputs.get("input"), inputs.get("alpha"))
        return None

    @classmethod
    def describe_output(cls, params: ImageWriteParams, inputs: Mapping[str, StreamInfo],
                        refs: Mapping[str, StreamInfo | None]) -> str:
        alpha = " with alpha" if "alpha" in inputs else ""
        return f"{params.path}: {params.format.upper()} images{alpha}, {params.bit_depth} bits per channel"

    @classmethod
    def existing_outputs(cls, params: ImageWriteParams) -> list[str]:
        """A folder that already holds files (writing into an empty one replaces nothing)."""
        import os

        return [] if params.overwrite or not (os.path.isdir(params.path) and os.listdir(params.path)) \
            else [params.path]

    def setup(self) -> None:
        from diffusify.io.images import ImageSequenceWriter

        stream = with_alpha(self.input_streams.get("input"), self.input_streams.get("alpha"))
        self._writer = ImageSequenceWriter(self.params.path, bit_depth=self.params.bit_depth,
                                           format=self.params.format, stream=stream,
                                           overwrite=self.options.overwrite or self.params.overwrite)

    def write(self, frame: Frame) -> None:
        self._writer.write(frame)
        self.frames_done += 1

    def write_set(self, frames: Mapping[str, Frame]) -> None:
        self.write(attach_alpha(frames))

    def finish(self, *, aborted: bool) -> SinkResult:
        writer = getattr(self, "_writer", None)
        if writer is None:
            return SinkResult(None, 0)
        result = writer.close()
        return SinkResult(self.params.path, getattr(result, "frames", self.frames_done))
