"""PNG/TIFF image sequences in and out.

Both directions go through ffmpeg, like video: its PNG and TIFF codecs handle 8 and 16 bits, gray, RGB and
RGBA, where the usual Python imaging libraries drop 16-bit RGB to 8 bits. Reading feeds ffmpeg a concat list of
the files in natural order; writing uses its image2 muxer.

Listing and :func:`probe_images` need neither torch nor numpy, so validation can use them.
"""

from __future__ import annotations

import glob
import os
import re
import struct
import tempfile
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from diffusify.core.stream import StreamInfo
from diffusify.io.errors import MediaError
from diffusify.io.ffmpeg import FFmpegProcess, file_arg, prepare_output
from diffusify.io.paths import require_regular, unsafe_name
from diffusify.io.probe import probe

if TYPE_CHECKING:
    import torch

    from diffusify.core.frame import Frame
    from diffusify.io.writer import WriteResult

__all__ = ["IMAGE_EXTENSIONS", "ImageSequenceReader", "ImageSequenceWriter", "list_images", "probe_images"]

IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".webp", ".bmp")
_PRINTF = re.compile(r"%(0?)(\d*)d")
_DIGITS = re.compile(r"(\d+)")


def _natural_key(path: Path) -> list[object]:
    # "img2" before "img10", as a person numbering frames means it.
    return [int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(path.name)]


def list_images(pattern_or_dir: str | os.PathLike[str]) -> list[Path]:
    """The files of an image sequence, in natural order.

    Args:
        pattern_or_dir: a folder (every PNG, TIFF, JPEG, WebP or BMP in it), a glob (``shots/*.png``) or a printf pattern
            (``frames/img_%05d.tif``).

    Returns:
        The matching files.

    Raises:
        MediaError: nothing matches.
    """
    text = os.fspath(pattern_or_dir)
    path = Path(text)
    if path.is_dir():
        files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    elif _PRINTF.search(path.name):
        folder = path.parent
        regex = re.compile(
            "^"
            + _PRINTF.sub(
                lambda m: r"\d{%s,}" % (m.group(2) or "1") if m.group(1) else r"\d+",
                re.escape(path.name).replace(r"\%", "%"),
            )
            + "$"
        )
        files = [p for p in folder.iterdir() if regex.match(p.name)] if folder.is_dir() else []
    elif glob.has_magic(text):
        files = [Path(p) for p in glob.glob(text) if Path(p).is_file()]
    elif path.is_file():
        files = [path]
    else:
        raise MediaError(f"{text}: no such folder or image")
    if not files:
        raise MediaError(f"{text}: no PNG or TIFF images found")
    for f in files:
        why = unsafe_name(f)
        if why is not None:
            raise MediaError(f"{os.fspath(f)!r}: the file name {why}, which ffmpeg's list of inputs cannot hold "
                             "safely; rename the file")
        require_regular(f, "an image of a sequence")
        _check_signature(f)
    return sorted(files, key=_natural_key)


_SIGNATURES = {
    ".png": (b"\x89PNG\r\n\x1a\n",), ".tif": (b"II*\x00", b"MM\x00*"), ".tiff": (b"II*\x00", b"MM\x00*"),
    ".jpg": (b"\xff\xd8\xff",), ".jpeg": (b"\xff\xd8\xff",), ".bmp": (b"BM",), ".webp": (b"RIFF",),
}


def _check_signature(path: Path) -> None:
    """Refuse a file whose first bytes are not its format's: the decoder would skip it silently and the frames
    after it would be numbered wrong (an error then names the wrong file)."""
    signatures = _SIGNATURES.get(path.suffix.lower())
    if not signatures:
        return
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError as exc:
        raise MediaError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not any(head.startswith(sig) for sig in signatures) or (path.suffix.lower() == ".webp"
                                                               and head[8:12] != b"WEBP"):
        raise MediaError(f"{path}: is not a {path.suffix.lstrip('.').upper()} image (its first bytes say "
                         "otherwise); replace or remove it")


def sequence_folder(dir_or_pattern: str | os.PathLike[str]) -> str:
    """The folder an image sequence is written into: the folder itself, or a printf pattern's folder."""
    text = os.fspath(dir_or_pattern)
    return str(Path(text).parent) if _PRINTF.search(Path(text).name) else text


def _image_size(path: Path) -> tuple[int, int] | None:
    """Width and height from a PNG or TIFF header without decoding, None for anything else."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                width, height = struct.unpack(">II", head[16:24])
                return width, height
            if head[:4] in (b"II*\x00", b"MM\x00*"):
                endian = "<" if head[:2] == b"II" else ">"
                (offset,) = struct.unpack(endian + "I", head[4:8])
                fh.seek(offset)
                (count,) = struct.unpack(endian + "H", fh.read(2))
                entries = fh.read(12 * count)
                size: dict[int, int] = {}
                for i in range(count):
                    tag, kind, _n, value = struct.unpack(endian + "HHI4s", entries[12 * i : 12 * i + 12])
                    if tag in (256, 257):
                        # SHORT values sit in the first two bytes of the value field, LONG values fill it.
                        fmt = "H" if kind == 3 else "I"
                        size[tag] = struct.unpack(endian + fmt, value[: struct.calcsize(fmt)])[0]
                if 256 in size and 257 in size:
                    return size[256], size[257]
    except (OSError, struct.error):
        return None
    return None


def probe_images(pattern_or_dir: str | os.PathLike[str], fps: Fraction = Fraction(25)) -> StreamInfo:
    """Describe an image sequence from its file count and its first image.

    Args:
        pattern_or_dir: see :func:`list_images`.
        fps: the rate the sequence is played at.

    Returns:
        The stream the sequence produces (RGB, the first image's size and bit depth).

    Raises:
        MediaError: no images, or the first one is unreadable.
    """
    files = list_images(pattern_or_dir)
    info = probe(files[0])
    if info.video is None:
        raise MediaError(f"{files[0]}: not a readable image")
    return info.video.replace(frames=len(files), fps=Fraction(fps), vfr=False)


class ImageSequenceReader:
    """Iterate over an image sequence as RGB float frames (gray and RGBA are converted to RGB).

    Args:
        pattern_or_dir: see :func:`list_images`.
        fps: rate used for the frames' ``pts`` (``index / fps``).
        start: first image to return (0-based in sorted order).
        end: image index to stop before, None for all.
        high_bit_depth: decode through 16 bits; None decides from the first image.
        device: where the tensors are put.
        native: hand frames over as ``uint8``/``uint16`` samples, not widened to float: a numpy array on the
            CPU (torch is then never imported), else a tensor on ``device``.

    Raises:
        MediaError: no images, a range outside the sequence, or images of different sizes.
    """

    def __init__(
        self,
        pattern_or_dir: str | os.PathLike[str],
        *,
        fps: Fraction = Fraction(25),
        start: int = 0,
        end: int | None = None,
        high_bit_depth: bool | None = None,
        device: str | torch.device = "cpu",
        native: bool = False,
    ) -> None:
        from diffusify.io.pixels import PlaneReader

        self.source = os.fspath(pattern_or_dir)
        files = list_images(pattern_or_dir)
        if start < 0 or start >= len(files):
            raise MediaError(f"{self.source}: start image {start} is outside the {len(files)} images")
        end = len(files) if end is None else min(end, len(files))
        if end <= start:
            raise MediaError(f"{self.source}: end image {end} must be greater than start image {start}")
        self.files = files[start:end]
        self.start = start
        self.fps = Fraction(fps)
        first = probe(self.files[0])
        if first.video is None:
            raise MediaError(f"{self.files[0]}: not a readable image")
        video = first.video
        self._pix_fmt = first.pix_fmt
        self.high_bit_depth = video.bit_depth > 8 if high_bit_depth is None else high_bit_depth
        self.stream: StreamInfo = video.replace(frames=len(self.files), fps=self.fps, vfr=False)
        self.device = str(device)  # a string, not a torch.device: reading for the CPU needs no torch
        self.native = native
        self._width, self._height = video.width, video.height
        for path in self.files[1:]:
            size = _image_size(path)
            if size is not None and size != (self._width, self._height):
                raise MediaError(
                    f"{path}: is {size[0]}x{size[1]}, the sequence starts at {self._width}x{self._height}; "
                    "all images must have one size"
                )
        self._planes = PlaneReader(self._width, self._height, high_bit_depth=self.high_bit_depth, device=self.device,
                                   native=native)
        self._proc: FFmpegProcess | None = None
        self._list: str | None = None
        self._next = 0

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> ImageSequenceReader:
        return self

    def __enter__(self) -> ImageSequenceReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _spawn(self) -> FFmpegProcess:
        from diffusify.io.formats import planar_rgb_format, to_rgb_filter

        fd, self._list = tempfile.mkstemp(suffix=".ffconcat", prefix="diffusify-")
        duration = 1 / self.fps
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("ffconcat version 1.0\n")
            for path in self.files:
                quoted = str(path.resolve()).replace("'", "'\\''")
                fh.write(f"file '{quoted}'\nduration {float(duration):.9f}\n")
        out_fmt = planar_rgb_format(self.high_bit_depth)
        convert = to_rgb_filter(self._pix_fmt, self.stream.color, self._width, self._height, out_fmt)
        args = ["-v", "error", "-nostats", "-f", "concat", "-safe", "0", "-i", self._list]
        args += ["-map", "0:v:0", "-vf", convert, "-fps_mode", "passthrough"]
        args += ["-frames:v", str(len(self.files)), "-f", "rawvideo", "-pix_fmt", out_fmt,
                 "-avioflags", "direct", "pipe:1"]  # one write a frame, as the video reader's
        self._proc = FFmpegProcess(args, stdout_pipe=True)
        return self._proc

    def __next__(self) -> Frame:
        from diffusify.core.frame import Frame

        if self._next >= len(self.files):
            self.close()
            raise StopIteration
        proc = self._proc or self._spawn()
        assert proc.proc.stdout is not None
        buf, got = self._planes.read(proc.proc.stdout)
        if got != self._planes.frame_bytes:
            rc = proc.finish()
            reason = proc.tail()
            name = self.files[self._next]
            self.close()
            raise MediaError(
                f"{name}: cannot decode image {self.start + self._next} (ffmpeg exit {rc}: {reason})"
            )
        data = self._planes.data(buf)
        index = self._next
        self._next += 1
        return Frame(index, index / self.fps, data, {"source_index": self.start + index})

    def close(self) -> None:
        """Stop the decoder and remove the temporary list. Safe to call more than once."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.close_log()
        if self._list is not None:
            try:
                os.unlink(self._list)
            except OSError:
                pass
            self._list = None
        self._next = len(self.files)

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.proc.poll() is None:
            proc.kill()


def _interleaved(samples: Any) -> Any:
    """``(C, H, W)`` samples (a tensor on any device, or a numpy array) as a contiguous ``(H, W, C)`` numpy array,
    the order of ffmpeg's packed formats."""
    import numpy as np

    from diffusify.ops.samples import is_array

    if is_array(samples):
        return np.ascontiguousarray(samples.transpose(1, 2, 0))
    return samples.permute(1, 2, 0).contiguous().cpu().numpy()


class ImageSequenceWriter:
    """Write frames as numbered PNG or TIFF images.

    The size and the channel count come from the first frame (1 channel writes grayscale images), unless
    ``stream`` gives them up front; a stream of 4 channels writes RGBA images (the fourth is alpha).

    Args:
        dir_or_pattern: a folder (files ``frame_000000.png``...) or a printf pattern (``out/img_%05d.tif``).
        bit_depth: 8 or 16 bits per sample.
        format: ``png`` or ``tiff``; a pattern's extension wins.
        start_number: number of the first file.
        overwrite: replace files of an earlier run.
        stream: the stream being written, to check frames against.

    Raises:
        MediaError: bad options, or files from an earlier run exist and ``overwrite`` is off.
    """

    def __init__(
        self,
        dir_or_pattern: str | os.PathLike[str],
        *,
        bit_depth: int = 8,
        format: str = "png",
        start_number: int = 0,
        overwrite: bool = False,
        stream: StreamInfo | None = None,
    ) -> None:
        text = os.fspath(dir_or_pattern)
        if _PRINTF.search(Path(text).name):
            pattern = Path(text)
            fmt = {".png": "png", ".tif": "tiff", ".tiff": "tiff"}.get(pattern.suffix.lower())
            if fmt is None:
                raise MediaError(f"{text}: image pattern must end in .png, .tif or .tiff")
        else:
            fmt = format.lower()
            if fmt not in ("png", "tiff"):
                raise MediaError(f"{text}: image format must be png or tiff (got {format})")
            pattern = Path(text) / f"frame_%06d.{'png' if fmt == 'png' else 'tif'}"
        if bit_depth not in (8, 16):
            raise MediaError(f"{text}: image bit depth must be 8 or 16 (got {bit_depth})")
        if stream is not None and stream.channels not in (1, 3, 4):
            raise MediaError(f"{text}: images can be written from 1, 3 or 4 channels (got {stream.channels})")
        self.pattern = pattern
        self.path = str(pattern.parent)
        self.stream = stream
        self.bit_depth = bit_depth
        self.format = fmt
        self.start_number = start_number
        folder = pattern.parent
        if folder.exists() and not folder.is_dir():
            raise MediaError(f"{folder}: is a file, not a folder")
        if folder.is_dir() and not overwrite:
            regex = _PRINTF.sub(r"\\d+", re.escape(pattern.name).replace(r"\%", "%"))
            taken = [p for p in folder.iterdir() if re.fullmatch(regex, p.name)]
            if taken:
                raise MediaError(
                    f"{folder}: already holds {len(taken)} images named like {pattern.name}; "
                    "pass --overwrite (overwrite=True in the library) to replace them"
                )
        prepare_output(folder, folder=True)
        self._high = bit_depth == 16
        self._frames = 0
        self._size: tuple[int, int] | None = (stream.width, stream.height) if stream is not None else None
        self._gray: bool | None = (stream.channels == 1) if stream is not None else None
        self._alpha = stream is not None and stream.channels == 4
        self._proc: FFmpegProcess | None = None
        self._closed = False

    def _spawn(self, width: int, height: int, gray: bool) -> FFmpegProcess:
        high, fmt = self._high, self.format
        if gray:
            in_fmt = "gray16le" if high else "gray"
            out_fmt = ("gray16be" if fmt == "png" else "gray16le") if high else "gray"
        elif self._alpha:
            in_fmt = "rgba64le" if high else "rgba"
            out_fmt = ("rgba64be" if fmt == "png" else "rgba64le") if high else "rgba"
        else:
            in_fmt = "rgb48le" if high else "rgb24"
            out_fmt = ("rgb48be" if fmt == "png" else "rgb48le") if high else "rgb24"
        args = ["-v", "warning", "-nostats", "-y", "-f", "rawvideo", "-pix_fmt", in_fmt]
        args += ["-s", f"{width}x{height}", "-framerate", "25", "-i", "pipe:0"]
        args += ["-map", "0:v:0", "-c:v", fmt, "-pix_fmt", out_fmt, "-fps_mode", "passthrough"]
        if fmt == "tiff":
            args += ["-compression_algo", "deflate"]
        args += ["-start_number", str(self.start_number), "-f", "image2", file_arg(self.pattern)]
        self._proc = FFmpegProcess(args, stdin_pipe=True)
        return self._proc

    def write(self, frame: Frame) -> None:
        """Write one frame as the next image.

        Args:
            frame: ``(C, H, W)`` float tensor in [0, 1], or native ``uint8``/``uint16`` samples (a tensor, or a
                decoder's numpy array: written without torch, the bytes the float path would write); C is 1
                (gray), 3 (RGB) or 4 (RGBA: alpha kept when the writer was opened for a 4-channel stream, dropped
                otherwise).

        Raises:
            MediaError: a frame of another size than the first, or ffmpeg failed.
        """
        if self._closed:
            raise MediaError(f"{self.pattern}: write() after close()")
        import numpy as np

        from diffusify.io.pixels import frame_samples, samples_at_depth
        from diffusify.ops.samples import is_array, is_native, widen

        data = frame_samples(frame, str(self.pattern), (1, 3, 4))  # a tensor, or a decoder's numpy array
        height, width = int(data.shape[1]), int(data.shape[2])
        if self._size is None:
            self._size = (width, height)
        if self._gray is None:
            self._gray = data.shape[0] == 1
        if (width, height) != self._size:
            raise MediaError(
                f"{self.pattern}: frame {frame.index} is {width}x{height}, the sequence is "
                f"{self._size[0]}x{self._size[1]}"
            )
        proc = self._proc or self._spawn(width, height, self._gray)
        if self._gray:
            if data.shape[0] >= 3:
                import torch

                # An RGB frame into a gray sequence is reduced with BT.709 luma weights.
                data = widen(data)
                weights = torch.tensor([0.2126, 0.7152, 0.0722], dtype=torch.float32, device=data.device)
                data = (data[:3].float() * weights[:, None, None]).sum(0, keepdim=True)
        elif self._alpha:
            if data.shape[0] != 4:
                raise MediaError(f"{self.pattern}: frame {frame.index} has {data.shape[0]} channels, the sequence "
                                 "was opened for RGB with alpha (4)")
        elif data.shape[0] >= 3:
            data = data[:3]
        else:  # one channel into RGB images: the same samples in each
            data = np.broadcast_to(data, (3, height, width)) if is_array(data) else data.expand(3, -1, -1)
        if is_native(data):
            packed = _interleaved(samples_at_depth(data, self._high))  # what the float path below gives, exactly
        else:
            import torch

            peak = 65535.0 if self._high else 255.0
            scaled = torch.nan_to_num(data.float(), nan=0.0).clamp(0.0, 1.0).mul(peak).round_()
            packed = _interleaved(scaled.to(torch.uint16 if self._high else torch.uint8))
        try:
            proc.send(packed)
        except (BrokenPipeError, ValueError, OSError):
            rc = proc.finish(timeout=30)
            reason = proc.tail()
            proc.close_log()
            self._proc = None
            self._closed = True
            raise MediaError(
                f"{self.pattern}: ffmpeg failed at frame {frame.index} (exit {rc}): {reason}"
            ) from None
        self._frames += 1

    def close(self) -> WriteResult:
        """Flush the last images.

        Returns:
            A :class:`~diffusify.io.writer.WriteResult` (``path`` is the folder, ``duration`` None).

        Raises:
            MediaError: ffmpeg failed.
        """
        from diffusify.io.writer import WriteResult

        self._closed = True
        proc, self._proc = self._proc, None
        if proc is not None:
            rc = proc.finish()
            reason = proc.tail()
            proc.close_log()
            if rc != 0:
                raise MediaError(f"{self.pattern}: ffmpeg failed while writing images (exit {rc}): {reason}")
        warnings = [] if self._frames else [f"{self.pattern}: no frames were written"]
        return WriteResult(self.path, self._frames, None, warnings)

    def abort(self) -> WriteResult:
        """Stop at once, keeping the images already written; never raises."""
        from diffusify.io.writer import WriteResult

        try:
            return self.close()
        except MediaError as exc:
            return WriteResult(self.path, self._frames, None, [str(exc)])

    @property
    def frames(self) -> int:
        """Images written so far."""
        return self._frames

    def __enter__(self) -> ImageSequenceWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
