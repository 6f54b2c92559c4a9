"""Decoding a video file into RGB float frames.

ffmpeg decodes and converts to planar RGB (``gbrp``, or 16-bit ``gbrp16`` for sources above 8 bits) on a pipe,
one frame's worth of bytes at a time. The YUV matrix and range are passed to the converter explicitly from the
probed tags, never left to ffmpeg's guesses, so BT.601/BT.709 and limited/full sources all come out right.
The bytes become float tensors in :mod:`diffusify.io.pixels`.
"""

from __future__ import annotations

import time
from fractions import Fraction
from types import TracebackType

import torch

from diffusify.core.frame import Frame
from diffusify.core.stream import StreamInfo
from diffusify.io.errors import MediaError
from diffusify.io.ffmpeg import FFmpegProcess, file_arg
from diffusify.io.formats import planar_rgb_format, to_rgb_filter
from diffusify.io.pixels import FrameBuffer, planes_to_samples, planes_to_tensor
from diffusify.io.probe import SHOWINFO_PTS, MediaInfo

__all__ = ["VideoReader", "deinterlace_filter"]


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
    decoded samples as they are: ``uint8``, or ``uint16`` for 16-bit decoding); ``index`` counts from
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
        self.device = torch.device(device)
        self.high_bit_depth = video.bit_depth > 8 if high_bit_depth is None else high_bit_depth
        self.stream: StreamInfo = video.replace(frames=None if end is None else end - start)
        self._width, self._height = video.width, video.height
        self._bytes_per_sample = 2 if self.high_bit_depth else 1
        self._frame_bytes = self._width * self._height * 3 * self._bytes_per_sample
        self._buffer = FrameBuffer(self._frame_bytes, pin=self.device.type == "cuda")
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
        args += ["-f", "rawvideo", "-pix_fmt", out_fmt, "pipe:1"]
        return args

    def _start(self) -> tuple[FFmpegProcess, torch.Tensor | None]:
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

    def _read_frame_bytes(self, proc: FFmpegProcess) -> torch.Tensor | None:
        stdout = proc.proc.stdout
        assert stdout is not None
        buf, got = self._buffer.read(stdout)
        if got == self._frame_bytes:
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
        to_tensor = planes_to_samples if self.native else planes_to_tensor
        data = to_tensor(buf, self._height, self._width, self.high_bit_depth, self.device)
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
