"""Encoding RGB float frames into a video file, with the source's other streams copied along.

:class:`VideoWriter` owns the ffmpeg encoder: its command (pixel formats, colour and HDR options), the frames
written to it, closing or aborting it, and checking the file it made. Which of the source's streams are copied
along, and how, is decided in :mod:`diffusify.io.streamcopy`; frames are packed to bytes in
:mod:`diffusify.io.pixels`.

Frames go to an ffmpeg child on its stdin: raw ``rgb24``/``rgb48le`` at a constant rate, or, when every frame's
own timestamp must be kept, a minimal Matroska stream carrying them (:mod:`diffusify.io.mkvpipe`). The RGB to
YUV conversion uses the stream's matrix and range explicitly and the output is tagged with them.

The child runs in its own session and logs to a file, so if our process is killed, even with SIGKILL, it sees
EOF on its stdin and finalises the container with the frames it received: the output stays playable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType

from diffusify.core.frame import Frame
from diffusify.core.stream import StreamInfo
from diffusify.io.codecs import (
    CODEC_PRESETS,
    CONTAINERS,
    CodecPreset,
    closest,
    default_pix_fmt,
    hdr10_params,
    sample_depth,
    writer_problem,
)
from diffusify.io.errors import MediaError
from diffusify.io.ffmpeg import FFmpegProcess, available_encoders, encoder_failure, file_arg, prepare_output
from diffusify.io.formats import from_rgb_filter, is_gray_pix_fmt, planar_rgb_format
from diffusify.io.mkvpipe import TIMESTAMP_SCALE_NS, MatroskaRawPipe
from diffusify.io.pixels import PlanePacker, frame_samples
from diffusify.io.probe import MediaInfo, probe
from diffusify.io.streamcopy import StreamCopy

__all__ = ["VideoWriter", "WriteResult"]


@dataclass
class WriteResult:
    """What a finished write produced.

    Attributes:
        path: the output file.
        frames: frames handed to the encoder.
        duration: duration of the output's video stream in seconds, None when it could not be measured.
        warnings: one line per thing the user should know (dropped streams, timing drift...).
    """

    path: str
    frames: int
    duration: float | None
    warnings: list[str] = field(default_factory=list)


class VideoWriter:
    """Encode frames into a video file.

    Args:
        path: output file; the container follows the extension (.mkv, .mp4, .m4v, .mov, .avi, .webm).
        stream: the stream being written (size, rate, colour tags, sample aspect ratio, bit depth).
        codec: ffmpeg encoder name; the built-in presets are in :data:`CODEC_PRESETS`.
        crf: constant-quality value (the codec's own scale); defaults per codec.
        bitrate: target bitrate such as ``8M`` instead of constant quality.
        preset: encoder speed preset (``slow``, ``p5``... or ProRes profile ``hq``).
        pix_fmt: output pixel format; defaults per codec and the stream's bit depth. Formats above 8 bits are
            fed from 16-bit RGB, so their extra precision is real.
        extra_args: raw ffmpeg output options appended last.
        copy_from: probe result of a source whose audio, subtitle and attachment streams, chapters and
            metadata are copied into the output.
        copy_range: ``(start, end)`` in seconds of the source's video timeline (relative to its first frame)
            to which the copied streams are trimmed; ``end`` None for the rest.
        use_timestamps: keep each frame's ``pts`` (within 1 ms) instead of a constant rate; for variable frame
            rate sources.
        overwrite: replace an existing file.

    Raises:
        MediaError: unknown container or encoder, refused overwrite, output equal to the source...
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        stream: StreamInfo,
        *,
        codec: str = "libx264",
        crf: int | None = None,
        bitrate: str | None = None,
        preset: str | None = None,
        pix_fmt: str | None = None,
        extra_args: Sequence[str] = (),
        copy_from: MediaInfo | None = None,
        copy_range: tuple[Fraction, Fraction | None] | None = None,
        use_timestamps: bool = False,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.stream = stream
        self.codec = codec
        self.use_timestamps = use_timestamps
        self.warnings: list[str] = []
        self._frames = 0
        self._first_pts: Fraction | None = None
        self._last_ticks: int | None = None
        self._last_pts: Fraction | None = None
        self._proc: FFmpegProcess | None = None
        self._result: WriteResult | None = None
        self._copy: StreamCopy | None = None  # its cut subtitle files are removed when the encoder has finished

        suffix = self.path.suffix.lower()
        problem = writer_problem(codec, suffix, pix_fmt=pix_fmt, preset=preset, crf=crf, stream=stream,
                                 vfr=use_timestamps)
        if problem is not None:
            raise MediaError(f"{self.path}: {problem[1]}")
        self._suffix = suffix
        self._muxer = CONTAINERS[suffix]
        preset_info = self._check_codec(codec)
        if crf is not None and bitrate is not None:
            raise MediaError(f"{self.path}: give either crf or bitrate, not both")
        if stream.width <= 0 or stream.height <= 0:
            raise MediaError(f"{self.path}: invalid frame size {stream.width}x{stream.height}")
        if not stream.fps or stream.fps <= 0:
            raise MediaError(f"{self.path}: invalid frame rate {stream.fps}")
        self._alpha = stream.channels == 4
        self.pix_fmt = pix_fmt or default_pix_fmt(codec, stream.bit_depth, alpha=self._alpha)
        self._high = sample_depth(self.pix_fmt) == 16
        # a mask to a gray format goes as one plane: exact, where three equal planes would pass through a luma
        # conversion (swscale's is off by up to 0.4% at 16 bits)
        gray = stream.channels == 1 and is_gray_pix_fmt(self.pix_fmt) and not use_timestamps
        self._packer = PlanePacker(self._high, gray=gray)
        if gray:
            self._in_fmt = ("gray16" + ("le" if sys.byteorder == "little" else "be")) if self._high else "gray"
        else:
            self._in_fmt = planar_rgb_format(self._high, alpha=self._alpha)
        if self._alpha and codec == "prores_ks" and preset is None:
            preset = "4444"  # the profiles without alpha would drop the matte
        if use_timestamps and self._in_fmt == "gbrp16be":  # pragma: no cover - big endian only
            raise MediaError(f"{self.path}: exact timestamps need a little-endian machine")
        self._mkv = (
            MatroskaRawPipe(stream.width, stream.height, self._in_fmt, stream.fps) if use_timestamps else None
        )

        self._check_paths(copy_from, overwrite)
        try:
            args = self._command(
                preset_info, crf, bitrate, preset, list(extra_args), copy_from, copy_range, overwrite
            )
            prepare_output(self.path)
            self._proc = FFmpegProcess(args, stdin_pipe=True)
        except BaseException:
            self._remove_scratch()
            raise
        if self._mkv is not None:
            self._send(self._mkv.header(), frame_index=0)

    # -- setup -------------------------------------------------------------------------------------------------

    def _check_codec(self, codec: str) -> CodecPreset | None:
        encoders = available_encoders()
        if codec not in encoders:
            known = sorted(set(CODEC_PRESETS) & encoders)
            raise MediaError(
                f"{self.path}: encoder '{codec}' is not available in the bundled ffmpeg ({closest(codec, sorted(encoders))}"
                f"presets: {', '.join(known)})"
            )
        preset_info = CODEC_PRESETS.get(codec)
        if preset_info and preset_info.hardware:
            reason = encoder_failure(codec)
            if reason is not None:
                raise MediaError(
                    f"{self.path}: encoder {codec} cannot open on this machine (NVENC needs an NVIDIA GPU with "
                    f"video encoder units and its driver; use {preset_info.software or 'a software codec'} "
                    f"instead): {reason}"
                )
        return preset_info

    def _check_paths(self, copy_from: MediaInfo | None, overwrite: bool) -> None:
        if copy_from is not None:
            source = Path(copy_from.path)
            same = self.path.resolve() == source.resolve()
            if not same and self.path.exists() and source.exists():
                same = os.path.samefile(self.path, source)
            if same:
                raise MediaError(
                    f"{self.path}: the output would overwrite its own source; choose another path"
                )
        if self.path.is_dir():
            raise MediaError(f"{self.path}: is a folder; give a file name with an extension")
        if self.path.exists() and not overwrite:
            raise MediaError(f"{self.path}: already exists; pass --overwrite to replace it")

    def _color_args(self) -> tuple[list[str], list[str]]:
        """Filters that convert planar RGB to the output format, and the output's colour tag options."""
        color = self.stream.color
        chain, matrix, rng = from_rgb_filter(color, self.pix_fmt, self.stream.width, self.stream.height)
        filters = [chain]
        tags: list[str] = []
        setparams: list[str] = []
        if matrix is not None and rng is not None:
            setparams += [f"colorspace={matrix}", f"range={rng}"]
            tags += ["-colorspace", matrix, "-color_range", rng]
        if color.primaries:
            setparams.append(f"color_primaries={color.primaries}")
            tags += ["-color_primaries", color.primaries]
        if color.transfer:
            setparams.append(f"color_trc={color.transfer}")
            tags += ["-color_trc", color.transfer]
        # The encoder takes its tags from the frames; output options alone are not enough. And the output
        # options must agree with the frames, or ffmpeg converts them once more to what the options say.
        if setparams:
            filters.append("setparams=" + ":".join(setparams))
        if self.stream.sar != 1:
            filters.append(f"setsar={self.stream.sar.numerator}/{self.stream.sar.denominator}")
        return filters, tags

    def _command(
        self,
        preset_info: CodecPreset | None,
        crf: int | None,
        bitrate: str | None,
        preset: str | None,
        extra_args: list[str],
        copy_from: MediaInfo | None,
        copy_range: tuple[Fraction, Fraction | None] | None,
        overwrite: bool,
    ) -> list[str]:
        s = self.stream
        args = ["-v", "warning", "-nostats", "-y" if overwrite else "-n"]
        if copy_from is not None:
            self._copy = StreamCopy(copy_from, self.path, self._suffix, copy_range)
        video_delay = self._copy.video_delay if self._copy is not None else Fraction(0)
        if video_delay > 0:
            # the source's video starts after its other streams: keep it that far in, or they would drift apart
            args += ["-itsoffset", f"{float(video_delay):.6f}"]
        if self._mkv is not None:
            args += ["-f", "matroska", "-i", "pipe:0"]
        else:
            fps = f"{s.fps.numerator}/{s.fps.denominator}"
            args += [
                "-f",
                "rawvideo",
                "-pix_fmt",
                self._in_fmt,
                "-s",
                f"{s.width}x{s.height}",
                "-framerate",
                fps,
            ]
            args += ["-i", "pipe:0"]

        copy_args: list[str] = []
        if self._copy is not None:
            args += self._copy.input_args
            cut_inputs, copy_args = self._copy.maps()
            self.warnings += self._copy.warnings
            args += cut_inputs

        filters, tags = self._color_args()
        args += ["-map", "0:v:0", "-vf", ",".join(filters), "-c:v", self.codec, "-pix_fmt", self.pix_fmt]
        if preset_info is not None:
            if bitrate is not None:
                args += ["-b:v", bitrate]
            elif preset_info.quality_flag is not None:
                quality = crf if crf is not None else preset_info.default_quality
                if quality is not None:
                    args += [preset_info.quality_flag, str(quality), *preset_info.quality_args]
            elif crf is not None:
                self.warnings.append(f"{self.path}: {self.codec} is lossless; crf {crf} is ignored")
            chosen_preset = preset or preset_info.default_preset
            if chosen_preset is not None and preset_info.preset_flag is not None:
                args += [preset_info.preset_flag, chosen_preset]
            args += list(preset_info.extra_args)
        else:
            if bitrate is not None:
                args += ["-b:v", bitrate]
            elif crf is not None:
                args += ["-crf", str(crf)]
            if preset is not None:
                args += ["-preset", preset]
        if self.codec == "libx265" and self._muxer in ("mp4", "mov"):
            # Apple players only accept HEVC tagged hvc1.
            args += ["-tag:v", "hvc1"]
        args += tags
        args += self._hdr_args(extra_args)
        if self._mkv is not None:
            # Keep every frame's own time: no duplication or dropping towards a constant rate, and the pipe's
            # microsecond time base on the encoder instead of 1/rate, which would round the times to a grid.
            args += ["-fps_mode", "passthrough", "-enc_time_base:v", "demux"]
        elif video_delay > 0:
            # cfr would fill the delay with copies of the first frame; the raw input's times are constant already
            args += ["-fps_mode", "passthrough"]
        else:
            args += ["-fps_mode", "cfr"]
        args += copy_args
        args += list(extra_args)
        args += ["-f", self._muxer, file_arg(self.path)]
        return args

    def _hdr_args(self, extra_args: list[str]) -> list[str]:
        """HDR10 mastering display and content light level, for the encoders that write them from options.

        A user's own ``-x265-params``/``-svtav1-params`` in ``extra_args`` keep their keys: ours go first in the
        same option (later keys win)."""
        color = self.stream.color
        if color.mastering is None and color.light is None:
            return []
        option = hdr10_params(self.codec, color)
        if option is None:
            self.warnings.append(
                f"{self.path}: the source's HDR10 mastering metadata is not written by {self.codec} (libx265 and "
                "libsvtav1 write it)"
            )
            return []
        flag, value = option
        if flag in extra_args:
            # ffmpeg takes the last occurrence of an option
            at = len(extra_args) - 1 - extra_args[::-1].index(flag)
            if at + 1 < len(extra_args):
                extra_args[at + 1] = f"{value}:{extra_args[at + 1]}"
                return []
        return [flag, value]

    # -- writing -----------------------------------------------------------------------------------------------

    def _send(self, *data: bytes | memoryview, frame_index: int) -> None:
        proc = self._proc
        if proc is None or proc.proc.stdin is None or proc.proc.stdin.closed:
            raise MediaError(f"{self.path}: the writer is closed")
        try:
            proc.send(*data)
        except (BrokenPipeError, ValueError, OSError):
            rc = proc.finish(timeout=30)
            self._proc = None
            self._remove_scratch()
            raise MediaError(self._failure_message(rc, proc, f"at frame {frame_index}")) from None

    def _failure_message(self, rc: int | None, proc: FFmpegProcess, where: str) -> str:
        reason = proc.tail()
        preset_info = CODEC_PRESETS.get(self.codec)
        if preset_info is not None and preset_info.hardware:
            return (
                f"{self.path}: encoder {self.codec} failed {where} (NVENC needs an NVIDIA GPU and driver; "
                f"ffmpeg exit {rc}: {reason})"
            )
        return f"{self.path}: ffmpeg failed {where} (exit {rc}): {reason}"

    def _frame_bytes_of(self, frame: Frame) -> list[memoryview]:
        data = frame_samples(frame, str(self.path))  # a tensor, or a decoder's numpy array of samples
        channels, height, width = data.shape
        if (height, width) != (self.stream.height, self.stream.width):
            raise MediaError(
                f"{self.path}: frame {frame.index} is {width}x{height}, the output was opened for "
                f"{self.stream.width}x{self.stream.height}"
            )
        if channels == 4 and not self._alpha:
            data = data[:3]
        elif self._alpha and channels != 4:
            raise MediaError(f"{self.path}: frame {frame.index} has {channels} channels, the output was opened "
                             "for RGB with alpha (4)")
        elif channels not in (1, 3, 4):
            raise MediaError(f"{self.path}: frame {frame.index} has {channels} channels, expected 1, 3 or 4")
        return self._packer.views(data)

    def write(self, frame: Frame) -> None:
        """Encode one frame.

        Args:
            frame: RGB ``(3, H, W)`` (or 1-channel, or RGBA whose alpha is dropped) float tensor in [0, 1], or
                native ``uint8``/``uint16`` samples (a tensor, or a decoder's numpy array: packed without torch).

        Raises:
            MediaError: wrong frame size, timestamps going backwards, or ffmpeg failed.
        """
        if self._result is not None:
            raise MediaError(f"{self.path}: write() after close()")
        payload = self._frame_bytes_of(frame)
        if self._mkv is not None:
            pts = Fraction(frame.pts)
            ticks = round(pts * (10**9 // TIMESTAMP_SCALE_NS))
            if ticks < 0:
                raise MediaError(
                    f"{self.path}: frame {frame.index} has a negative timestamp {float(pts):.6f} s"
                )
            if self._last_ticks is not None and ticks <= self._last_ticks:
                raise MediaError(
                    f"{self.path}: frame {frame.index} timestamp {float(pts):.6f} s does not increase "
                    f"(previous {float(self._last_pts or 0):.6f} s)"
                )
            self._send(self._mkv.frame_prefix(ticks, sum(v.nbytes for v in payload)), *payload,
                       frame_index=frame.index)
            self._last_ticks = ticks
        else:
            self._send(*payload, frame_index=frame.index)
        if self._first_pts is None:
            self._first_pts = Fraction(frame.pts)
        self._last_pts = Fraction(frame.pts)
        self._frames += 1

    def close(self, *, cut_copies: bool = False) -> WriteResult:
        """Finish the file: flush the encoder, write the trailer, check the result.

        Args:
            cut_copies: the video stopped before the end it was planned to have (a run stopped early): cut the
                copied audio, subtitles and chapters where it ends.

        Returns:
            The :class:`WriteResult`; calling again returns the same result.

        Raises:
            MediaError: ffmpeg failed.
        """
        if self._result is not None:
            return self._result
        proc = self._proc
        if proc is None:
            raise MediaError(f"{self.path}: the encoder already failed")
        self._proc = None
        rc = proc.finish()
        self._remove_scratch()
        if rc != 0:
            message = self._failure_message(rc, proc, "while finishing the file")
            proc.close_log()
            raise MediaError(message)
        proc.close_log()
        if cut_copies and self._frames:
            self._cut_copied_streams()
        self._result = self._check_output()
        return self._result

    def abort(self) -> WriteResult:
        """Finalise the file at once with the frames written so far; never raises.

        Returns:
            The :class:`WriteResult` of what was kept.
        """
        if self._result is not None:
            return self._result
        proc, self._proc = self._proc, None
        if proc is not None:
            rc = proc.finish(timeout=60)
            if rc != 0:
                self.warnings.append(self._failure_message(rc, proc, "while finishing the aborted file"))
            proc.close_log()
        self._remove_scratch()
        if self._frames:
            self._cut_copied_streams()
        try:
            self._result = self._check_output()
        except MediaError as exc:
            self._result = WriteResult(str(self.path), self._frames, None, [*self.warnings, str(exc)])
        return self._result

    def _video_end(self) -> Fraction:
        """Where the written video ends on the output's timeline (after a lead-in delay, if any)."""
        frame = 1 / self.stream.fps
        if self._mkv is not None and self._first_pts is not None and self._last_pts is not None:
            length = self._last_pts - self._first_pts + frame
        else:
            length = self._frames * frame
        delay = self._copy.video_delay if self._copy is not None else Fraction(0)
        return delay + length

    def _cut_copied_streams(self) -> None:
        """A run stopped before the end of its source: cut the copied audio, subtitles and chapters where the
        video ends, so players do not show a frozen picture under the rest of the sound. A stream copy into a
        new file, then an atomic rename: the file stays playable at every moment."""
        if self._copy is None or not self.path.exists():
            return
        end = self._video_end()
        tmp = self.path.with_name(f".{self.path.stem}.cut{self.path.suffix}")
        args = ["-v", "error", "-i", file_arg(self.path), "-map", "0", "-c", "copy", "-t", f"{float(end):.6f}",
                "-f", self._muxer, "-y", file_arg(tmp)]
        proc = FFmpegProcess(args)
        rc = proc.finish(timeout=120)
        if rc == 0 and tmp.exists():
            os.replace(tmp, self.path)
        else:
            self.warnings.append(f"{self.path}: the copied audio and subtitles could not be cut where the video "
                                 f"stops ({proc.tail()}); they run on past it")
            tmp.unlink(missing_ok=True)
        proc.close_log()

    def _check_output(self) -> WriteResult:
        if self._frames == 0:
            # a file without a frame is no video (players refuse it): do not leave one behind
            try:
                self.path.unlink()
                self.warnings.append(f"{self.path}: no frame was written, so the file was removed")
            except FileNotFoundError:
                self.warnings.append(f"{self.path}: no frame was written")
            except OSError as exc:
                self.warnings.append(f"{self.path}: no frame was written, and the empty file could not be "
                                     f"removed ({exc.strerror}); delete it")
            return WriteResult(str(self.path), 0, None, list(self.warnings))
        info = probe(self.path)
        duration = float(info.video_duration) if info.video_duration is not None else info.duration
        fps = self.stream.fps
        frame = 1 / fps
        if info.video is None or info.video.frames != self._frames:
            got = info.video.frames if info.video is not None else 0
            self.warnings.append(f"{self.path}: the output holds {got} frames, {self._frames} were written")
        if info.video_duration is not None:
            if self._mkv is not None and self._first_pts is not None and self._last_pts is not None:
                expected = self._last_pts - self._first_pts + frame
            else:
                expected = self._frames * frame
            drift = abs(info.video_duration - expected)
            if drift > frame:
                self.warnings.append(
                    f"{self.path}: output video lasts {float(info.video_duration):.3f} s, expected "
                    f"{float(expected):.3f} s (drift of more than one frame)"
                )
        return WriteResult(str(self.path), self._frames, duration, list(self.warnings))

    def _remove_scratch(self) -> None:
        if self._copy is not None:
            self._copy.remove_scratch()

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return self._frames

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # Closing stdin lets a forgotten encoder finalise instead of waiting forever.
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.proc.stdin is not None and not proc.proc.stdin.closed:
            try:
                proc.proc.stdin.close()
            except OSError:
                pass
