"""Decoding a video file into RGB float frames.

ffmpeg decodes and converts to planar RGB (``gbrp``, or 16-bit ``gbrp16`` for sources above 8 bits) on a pipe,
one frame's worth of bytes at a time. The YUV matrix and range are passed to the converter explicitly from the
probed tags, never left to ffmpeg's guesses, so BT.601/BT.709 and limited/full sources all come out right.
The bytes become float tensors in :mod:`diffusify.io.pixels`.

:class:`NvdecReader` is the optional other way: the GPU's video decoder (NVDEC) through torchcodec, frames landing
on the GPU as 8-bit RGB. Its colour conversion is NVIDIA's (NPP), not zimg's, so it is used only for the sources
:func:`nvdec_problem` accepts and only when asked. Importing this module does not import torch (validation asks
:func:`nvdec_problem`).
"""

from __future__ import annotations

import time
from fractions import Fraction
from types import TracebackType
from typing import TYPE_CHECKING, Any

from diffusify.core.errors import one_line
from diffusify.core.frame import Frame
from diffusify.core.stream import StreamInfo
from diffusify.io.errors import MediaError
from diffusify.io.ffmpeg import FFmpegProcess, file_arg
from diffusify.io.formats import normalize_range, planar_rgb_format, to_rgb_filter
from diffusify.io.probe import SHOWINFO_PTS, MediaInfo

if TYPE_CHECKING:
    import torch

__all__ = ["NVDEC_CODECS", "TORCHCODEC_HINT", "NvdecReader", "VideoReader", "deinterlace_filter", "nvdec_problem"]


def deinterlace_filter(info: MediaInfo, mode: str) -> str | None:
    """The deinterlacing filter a reader puts first (see :class:`VideoReader`'s ``deinterlace``), None for none."""
    if mode == "on" or (mode == "auto" and info.field_order is not None):
        frames = "all" if mode == "on" else "interlaced"
        # bwdif halves the time base (it could send a frame per field): give the times back their own base
        return f"bwdif=mode=send_frame:parity=auto:deint={frames},settb=expr=2*intb"
    return None


class VideoReader:
    """Iterate over the frames of a video file as :class:`~diffusify.core.frame.Frame` objects.

    Each frame's ``data`` is a float32 ``(3, H, W)`` RGB tensor in [0, 1] on ``device`` (with ``native``, the
    decoded samples as they are: ``uint8``, or ``uint16`` for 16-bit decoding, as a numpy array on the CPU, where
    torch is then never imported, else as a tensor on ``device``); ``index`` counts from
    0 at ``start``; ``pts`` is the source presentation time minus that of frame ``start`` (so the first frame
    has pts 0); ``meta["source_index"]`` is the frame's index in the file.

    Args:
        path: the video file.
        info: its probe result (:func:`diffusify.io.probe.probe`).
        start: first frame to return (0-based index in the file); the seek is frame exact.
        end: frame index to stop before (exclusive), None for the end of the file.
        high_bit_depth: decode through 16-bit RGB; None decides from the source (above 8 bits).
        device: where the tensors are put; the byte-to-float conversion runs there.
        native: hand frames over as ``uint8``/``uint16`` samples, not widened to float (see
            :mod:`diffusify.ops.samples`).
        deinterlace: ``auto`` deinterlaces (ffmpeg's bwdif, one frame per frame, times kept) the frames flagged
            interlaced when the probe says the stream is interlaced; ``on`` deinterlaces every frame (for sources
            flagged progressive by mistake); ``off`` hands the woven fields over as they are.

    Raises:
        MediaError: no video stream, or a range outside the file.
    """

    def __init__(
        self,
        path: str,
        info: MediaInfo,
        *,
        start: int = 0,
        end: int | None = None,
        high_bit_depth: bool | None = None,
        device: str | torch.device = "cpu",
        deinterlace: str = "auto",
        native: bool = False,
    ) -> None:
        self.native = native
        if deinterlace not in ("auto", "on", "off"):
            raise MediaError(f"{path}: deinterlace must be auto, on or off (got {deinterlace!r})")
        if info.video is None or info.video_index is None:
            raise MediaError(f"{path}: has no video stream")
        video = info.video
        total = video.frames
        if start < 0:
            raise MediaError(f"{path}: start frame must be >= 0 (got {start})")
        if total is not None and start >= total:
            raise MediaError(f"{path}: start frame {start} is past the end (the video has {total} frames)")
        if end is not None:
            if end <= start:
                raise MediaError(f"{path}: end frame {end} must be greater than start frame {start}")
            if total is not None and end > total:
                end = total
        elif total is not None:
            end = total
        self.path = str(path)
        self.info = info
        self.start = start
        self.deinterlace = deinterlace_filter(info, deinterlace)
        self.end = end
        from diffusify.io.pixels import PlaneReader

        # a string, not a torch.device: decoding for the CPU needs no torch
        self.device = str(device)
        self.high_bit_depth = video.bit_depth > 8 if high_bit_depth is None else high_bit_depth
        self.stream: StreamInfo = video.replace(frames=None if end is None else end - start)
        self._width, self._height = video.width, video.height
        self._planes = PlaneReader(self._width, self._height, high_bit_depth=self.high_bit_depth, device=self.device,
                                   native=native)
        self._proc: FFmpegProcess | None = None
        self._next = start
        self._start_pts = info.frame_time(start)
        self._done = False

    def __len__(self) -> int:
        if self.end is None:
            raise TypeError("frame count unknown")
        return self.end - self.start

    def __iter__(self) -> VideoReader:
        return self

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # A reader dropped mid-stream must not leave a decoder running.
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.proc.poll() is None:
            proc.kill()

    def _absolute_ticks(self, index: int) -> int | None:
        """Stored timestamp of a frame in time-base ticks, None when the file has no usable timestamps."""
        info = self.info
        if not info.timestamps or info.time_base is None or index >= len(info.timestamps):
            return None
        return int((info.video_start + info.timestamps[index]) / info.time_base)

    def _command(self, *, seek_margin: float | None) -> list[str]:
        info, video = self.info, self.info.video
        assert video is not None
        start_ticks = self._absolute_ticks(self.start) if self.start > 0 else None
        # The log level must let showinfo's line through when the first frame is checked.
        args = ["-v", "info" if start_ticks is not None else "error", "-nostats"]
        if start_ticks is not None:
            if seek_margin is not None:
                # The demuxer jumps near the target (halfway between the previous frame and the wanted one, so
                # rounding cannot skip it); the exact cut is the trim filter's. -ss counts from the container
                # start time of all streams, not from the first video frame.
                before = info.frame_time(self.start - 1)
                target = info.video_start + (before + info.frame_time(self.start)) / 2
                target -= Fraction(info.start_time).limit_denominator(1000000) + Fraction(seek_margin)
                if target > 0:
                    args += ["-noaccurate_seek", "-ss", f"{float(target):.6f}"]
            # Stored timestamps on the filter input, so the trim compares exact integers with the probe's.
            args += ["-copyts"]
        args += ["-i", file_arg(self.path)]
        out_fmt = planar_rgb_format(self.high_bit_depth)
        convert = to_rgb_filter(info.pix_fmt, video.color, video.width, video.height, out_fmt)
        # Deinterlacing comes before any cut, so that the first kept frame has its neighbours to look at.
        first = f"{self.deinterlace}," if self.deinterlace else ""
        if start_ticks is not None:
            # The first frame after the cut goes to showinfo too, which logs its timestamp: proof of the seek.
            graph = (
                f"[0:{info.video_index}]{first}trim=start_pts={start_ticks},split=2[probe][main];"
                "[probe]trim=end_frame=1,showinfo=checksum=0,nullsink;"
                f"[main]{convert}[out]"
            )
        elif self.start > 0:
            # No timestamps to cut on: count decoded frames instead (decodes from the beginning).
            graph = f"[0:{info.video_index}]{first}trim=start_frame={self.start},{convert}[out]"
        else:
            graph = f"[0:{info.video_index}]{first}{convert}[out]"
        args += ["-filter_complex", graph, "-map", "[out]", "-fps_mode", "passthrough"]
        if self.end is not None:
            args += ["-frames:v", str(self.end - self.start)]
        # avioflags direct: each frame goes to the pipe in one write, not copied through ffmpeg's 32 KiB output
        # buffer first (6.6% less decoder CPU for 1080p, median of 6 alternated runs: 12.5 against 13.4 CPU-s
        # for 300 frames)
        args += ["-f", "rawvideo", "-pix_fmt", out_fmt, "-avioflags", "direct", "pipe:1"]
        return args

    def _start(self) -> tuple[FFmpegProcess, Any]:
        """Start the decoder and read the first frame, checking that the seek landed on ``start``."""
        expected = self._absolute_ticks(self.start) if self.start > 0 else None
        # Demuxers without an index (MPEG-TS, elementary streams) can land after the keyframe that the wanted
        # frame needs, losing it: retry from further back, then from the beginning, always cutting at the
        # same timestamp.
        margins: list[float | None] = [0.0, 10.0, None] if expected is not None else [None]
        got: int | None = None
        tried: list[list[str]] = []
        failed: FFmpegProcess | None = None
        for margin in margins:
            command = self._command(seek_margin=margin)
            if command in tried:
                # Near the beginning the margin makes no difference.
                continue
            tried.append(command)
            if failed is not None:
                failed.close_log()
            proc = FFmpegProcess(command, stdout_pipe=True)
            self._proc = proc
            first = self._read_frame_bytes(proc)
            if expected is None:
                return proc, first
            got = self._first_pts(proc, first is not None)
            if got == expected:
                return proc, first
            proc.kill()
            failed = proc
        self._proc = None
        assert failed is not None
        reason = failed.tail()
        failed.close_log()
        raise MediaError(
            f"{self.path}: frame {self.start} cannot be decoded (first decoded timestamp {got}, expected "
            f"{expected}: {reason})"
        )

    @staticmethod
    def _first_pts(proc: FFmpegProcess, produced: bool) -> int | None:
        # The showinfo branch may run just after the frame reached the pipe; give it a moment.
        deadline = time.monotonic() + (10.0 if produced else 0.0)
        while True:
            match = SHOWINFO_PTS.search(proc.log())
            if match:
                return int(match.group(1))
            if time.monotonic() >= deadline or proc.proc.poll() is not None:
                match = SHOWINFO_PTS.search(proc.log())
                return int(match.group(1)) if match else None
            time.sleep(0.002)

    def _read_frame_bytes(self, proc: FFmpegProcess) -> Any:
        stdout = proc.proc.stdout
        assert stdout is not None
        buf, got = self._planes.read(stdout)
        if got == self._planes.frame_bytes:
            return buf
        if got:
            rc = proc.finish()
            raise MediaError(
                f"{self.path}: frame {self._next}: decoder output ended mid-frame (ffmpeg exit {rc}: {proc.tail()})"
            )
        return None

    def __next__(self) -> Frame:
        if self._done or (self.end is not None and self._next >= self.end):
            self.close()
            raise StopIteration
        if self._proc is None:
            proc, buf = self._start()
        else:
            proc = self._proc
            buf = self._read_frame_bytes(proc)
        if buf is None:
            rc = proc.finish()
            reason = proc.tail()
            self.close()
            if rc != 0:
                raise MediaError(f"{self.path}: decoding failed at frame {self._next}: {reason}")
            if self.end is not None:
                raise MediaError(
                    f"{self.path}: the decoder stopped at frame {self._next}, expected {self.end} frames "
                    f"(the file may be damaged; {reason})"
                )
            raise StopIteration
        data = self._planes.data(buf)
        source_index = self._next
        pts = self.info.frame_time(source_index) - self._start_pts
        frame = Frame(source_index - self.start, Fraction(pts), data, {"source_index": source_index})
        self._next += 1
        return frame

    def close(self) -> None:
        """Stop the decoder if it still runs and reap it. Safe to call more than once."""
        self._done = True
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.close_log()


TORCHCODEC_HINT = ("pip install 'diffusify[gpu]', then the CUDA build of torchcodec from the PyTorch index torch "
                   "came from (pip install torchcodec --index-url https://download.pytorch.org/whl/cuXXX); it uses "
                   "the system's FFmpeg libraries")

NVDEC_CODECS = frozenset({"h264", "hevc", "av1", "vp9", "vp8", "mpeg1video", "mpeg2video", "mpeg4", "vc1"})
"""Codecs the GPUs' video decoders (NVDEC) read, on the parts that have them."""


def nvdec_problem(info: MediaInfo, *, high_bit_depth: bool | None = None, deinterlace: str = "auto") -> str | None:
    """Why :class:`NvdecReader` cannot decode this source as :class:`VideoReader` would, or None when it can.

    The GPU path takes 8-bit 4:2:0 video tagged BT.709 in limited range (the common HD file), upright and
    progressive: torchcodec converts it with NPP's BT.709 matrix, and untagged or BT.601 sources would get another
    matrix than the one the ffmpeg path chooses. Deeper or other chroma formats, full range, rotation and
    deinterlacing stay with ffmpeg.

    Args:
        info: the probe result.
        high_bit_depth: the reader's ``high_bit_depth`` (True asks for 16-bit samples).
        deinterlace: the reader's ``deinterlace``.

    Returns:
        A reason naming what differs, as part of a sentence, or None.
    """
    video = info.video
    if video is None:
        return "the file has no video stream"
    if info.video_codec not in NVDEC_CODECS:
        return f"NVDEC does not decode {info.video_codec}"
    if info.pix_fmt != "yuv420p":
        return f"the video is {info.pix_fmt}; the GPU path converts 8-bit 4:2:0 (yuv420p) only"
    if high_bit_depth:
        return "high_bit_depth asks for 16-bit samples; the GPU path gives 8-bit ones"
    if video.color.matrix != "bt709" or (normalize_range(video.color.range) or "tv") != "tv":
        return (f"its colours are tagged {video.color.describe()}; the GPU path converts video tagged BT.709 in "
                "limited range only")
    if round(info.rotation) % 360:
        return f"it is displayed rotated by {info.rotation:g} degrees, which only the ffmpeg path applies"
    if info.field_order is not None or deinterlace == "on":
        return "it is to be deinterlaced, which only the ffmpeg path does"
    return None


class NvdecReader:
    """Iterate over the frames of a video file decoded by the GPU's video decoder (NVDEC, through torchcodec's
    CUDA decoder), as :class:`VideoReader` does: same ``index``, ``pts`` and ``meta``, frames on ``device``.

    Each frame's ``data`` is ``(3, H, W)`` RGB: ``uint8`` samples with ``native``, else float32 in [0, 1], widened
    on the GPU. Colours are NPP's BT.709 limited-range conversion with its own chroma upsampling, so they are
    within a few levels of the ffmpeg path's (zimg, bicubic chroma), not equal to them: the option that selects
    this reader says so. Only sources :func:`nvdec_problem` accepts.

    Args:
        path: the video file.
        info: its probe result.
        start: first frame to return (0-based index in the file); frame exact.
        end: frame index to stop before, None for the end of the file.
        device: a CUDA device.
        native: hand frames over as ``uint8`` samples.
        chunk: frames decoded per call into torchcodec.

    Raises:
        MediaError: the source or the machine cannot do it (no torchcodec, no CUDA decoder in its FFmpeg, a frame
            count torchcodec and the probe disagree on...), in one line.
    """

    def __init__(self, path: str, info: MediaInfo, *, start: int = 0, end: int | None = None,
                 device: str | torch.device = "cuda", native: bool = False, chunk: int = 8) -> None:
        import torch

        self.path = str(path)
        self.info = info
        self.native = native
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise MediaError(f"{path}: NVDEC decodes onto a CUDA device, not {self.device}")
        problem = nvdec_problem(info)
        if problem is not None:
            raise MediaError(f"{path}: cannot be decoded with NVDEC: {problem}")
        assert info.video is not None
        try:
            from torchcodec.decoders import VideoDecoder
        except ImportError:
            raise MediaError(f"NVDEC decoding needs torchcodec: {TORCHCODEC_HINT}") from None
        except Exception as e:  # noqa: BLE001 - torchcodec raises when the FFmpeg libraries it needs are missing
            raise MediaError(f"torchcodec cannot load: {one_line(str(e), 300)}") from e
        try:
            self._decoder = VideoDecoder(self.path, stream_index=info.video_index, device=str(self.device),
                                         seek_mode="exact", dimension_order="NCHW")
            meta = self._decoder.metadata
            count = meta.num_frames
            size = (meta.width, meta.height)
        except Exception as e:  # noqa: BLE001 - any failure to open on the GPU is reported in one line
            raise MediaError(f"{path}: torchcodec cannot decode it on {self.device}: {one_line(str(e), 300)} (NVDEC "
                             "needs torchcodec's CUDA build and system FFmpeg libraries built with CUDA)") from e
        video = info.video
        if size != (video.width, video.height):
            raise MediaError(f"{path}: torchcodec decodes {size[0]}x{size[1]} frames, the probe says "
                             f"{video.width}x{video.height}; use the ffmpeg path")
        total = video.frames if video.frames is not None else count
        if count is not None and total != count:
            raise MediaError(f"{path}: torchcodec counts {count} frames, the probe {total}; use the ffmpeg path")
        if total is None:
            raise MediaError(f"{path}: the frame count is unknown; use the ffmpeg path")
        if start < 0 or start >= total:
            raise MediaError(f"{path}: start frame {start} is outside the video's {total} frames")
        if end is not None and end <= start:
            raise MediaError(f"{path}: end frame {end} must be greater than start frame {start}")
        self.start = start
        self.end = total if end is None else min(end, total)
        self.stream: StreamInfo = video.replace(frames=self.end - start)
        self._chunk = max(1, chunk)
        self._next = start
        self._ready: list[torch.Tensor] = []
        self._start_pts = info.frame_time(start)

    def __len__(self) -> int:
        return self.end - self.start

    def __iter__(self) -> NvdecReader:
        return self

    def __enter__(self) -> NvdecReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __next__(self) -> Frame:
        if self._next >= self.end:
            raise StopIteration
        if not self._ready:
            stop = min(self._next + self._chunk, self.end)
            try:
                batch = self._decoder.get_frames_in_range(start=self._next, stop=stop).data
            except Exception as e:  # noqa: BLE001
                raise MediaError(f"{self.path}: NVDEC decoding failed at frame {self._next}: "
                                 f"{one_line(str(e), 300)}") from e
            # NCHW views of the decoder's interleaved frames: each becomes a planar frame of its own
            self._ready = list(batch.unbind(0))
        data = self._ready.pop(0).contiguous()
        if not self.native:
            from diffusify.ops.samples import widen

            data = widen(data)
        index = self._next
        self._next += 1
        pts = self.info.frame_time(index) - self._start_pts
        return Frame(index - self.start, Fraction(pts), data, {"source_index": index})

    def close(self) -> None:
        """Release the decoder. Safe to call more than once."""
        self._ready = []
        self._next = self.end
        self._decoder = None
