"""Helpers for the io tests: tiny clips made with ffmpeg's lavfi sources, and raw decodes for comparisons."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np

from diffusify.io.ffmpeg import ffmpeg_exe

SRT = """1
00:00:00,000 --> 00:00:00,400
Hello

2
00:00:00,400 --> 00:00:00,900
World
"""

FFMETADATA = """;FFMETADATA1
title=Test clip
[CHAPTER]
TIMEBASE=1/1000
START=0
END=500
title=One
[CHAPTER]
TIMEBASE=1/1000
START=500
END=1000
title=Two
"""


def ffmpeg(*args: str | Path) -> None:
    """Run the bundled ffmpeg quietly, failing the test with its log on error."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"ffmpeg failed: {' '.join(cmd)}\n{proc.stderr.decode(errors='replace')}")


def make_clip(
    path: Path,
    *,
    size: str = "64x48",
    rate: str = "25",
    frames: int = 10,
    source: str = "testsrc2",
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    vf: str | None = None,
    color: tuple[str, str] | None = None,
    tags: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> Path:
    """A short video clip from a lavfi source.

    Args:
        color: ``(matrix, range)``: the RGB source is converted to YUV with exactly these and tagged so.
        tags: extra frame tags for setparams (``color_primaries``, ``color_trc``).
    """
    graph = f"{source}=size={size}:rate={rate}"
    filters = [vf] if vf else []
    out_tags: list[str] = []
    if color is not None:
        # A well-defined RGB picture, converted with an explicit matrix and range.
        graph += ",format=rgb24"
        matrix, rng = color
        odd = any(int(side) % 2 for side in size.split("x"))
        extra_tags = "".join(f":{k}={v}" for k, v in (tags or {}).items())
        filters.append(yuv_vf(matrix, rng, pix_fmt, extra_tags, whole_blocks=not odd))
        # The encoder's range and matrix must agree, or ffmpeg converts the frames again behind our back.
        out_tags = ["-colorspace", matrix, "-color_range", rng]
        for key, value in (tags or {}).items():
            out_tags += [f"-{key}", value]
    args: list[str | Path] = ["-f", "lavfi", "-i", graph, "-frames:v", str(frames)]
    if filters:
        args += ["-vf", ",".join(filters)]
    args += ["-c:v", codec, "-pix_fmt", pix_fmt, *out_tags, *extra, path]
    ffmpeg(*args)
    return path


def yuv_vf(
    matrix: str, rng: str, pix_fmt: str = "yuv420p", extra_tags: str = "", *, whole_blocks: bool = True
) -> str:
    """A filter chain converting RGB to YUV with an explicit matrix and range, and tagging the frames so.

    zimg with MPEG-2 (left) chroma siting, the convention of H.264/HEVC video; swscale (same siting) for frame
    sizes that are not whole chroma blocks, which zimg refuses.
    """
    tags = f"setparams=colorspace={matrix}:range={rng}{extra_tags}"
    if not whole_blocks:
        convert = f"scale=out_color_matrix={matrix}:out_range={rng}:flags=bicubic+accurate_rnd+full_chroma_int"
        return f"{convert},format={pix_fmt},{tags}"
    zmatrix = {"bt709": "709", "smpte170m": "170m", "bt470bg": "470bg", "bt2020nc": "2020_ncl"}[matrix]
    zrange = "limited" if rng == "tv" else "full"
    return f"zscale=matrix={zmatrix}:range={zrange}:chromal=left:filter=bicubic:dither=none,format={pix_fmt},{tags}"


def make_twos_clip(path: Path, *, size: str = "128x72", frames: int = 24) -> Path:
    """A 24 fps clip drawn on twos: each picture shown for two frames, then compressed (as anime is)."""
    return make_clip(path, size=size, rate="24", frames=frames, vf="fps=12,fps=24", codec="libx264",
                     extra=("-crf", "18"))


def make_av_clip(path: Path, tmp: Path, *, rate: str = "30000/1001", frames: int = 30) -> Path:
    """A clip with video, English AAC audio, a French SRT subtitle with a title, chapters and global title."""
    srt = tmp / "subs.srt"
    srt.write_text(SRT)
    meta = tmp / "meta.txt"
    meta.write_text(FFMETADATA)
    attachment = tmp / "notes.txt"
    attachment.write_text("attached notes\n")
    args: list[str | Path] = [
        "-f", "lavfi", "-i", f"testsrc2=size=96x64:rate={rate}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-i", srt, "-i", meta,
        "-map", "0:v", "-map", "1:a", "-map", "2:s", "-map_metadata", "3", "-map_chapters", "3",
        "-frames:v", str(frames), "-t", f"{float(frames / Fraction(rate)):.4f}",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-c:s", "srt",
        "-metadata:s:a:0", "language=eng", "-metadata:s:s:0", "language=fre",
        "-metadata:s:s:0", "title=French subs",
    ]  # fmt: skip
    if path.suffix == ".mkv":
        args += ["-attach", attachment, "-metadata:s:t:0", "mimetype=text/plain"]
    ffmpeg(*args, path)
    return path


def decode_rgb(
    path: Path, *, matrix: str | None = None, rng: str | None = None, deep: bool = False
) -> np.ndarray:
    """Decode every frame to RGB with ffmpeg alone (independently of the reader), as (N, H, W, 3) floats 0-255.

    Args:
        path: the video.
        matrix: YUV matrix to convert with (scale filter name), None for ffmpeg's choice.
        rng: ``tv`` or ``pc``, None for ffmpeg's choice.
        deep: decode through 16-bit RGB.
    """
    from diffusify.io.probe import probe

    info = probe(path)
    assert info.video is not None
    opts = ["flags=bicubic+accurate_rnd+full_chroma_int+full_chroma_inp+bitexact", "out_range=pc"]
    if matrix:
        opts.append(f"in_color_matrix={matrix}")
    if rng:
        opts.append(f"in_range={rng}")
    fmt = "rgb48le" if deep else "rgb24"
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0"]
    cmd += ["-vf", f"scale={':'.join(opts)},format={fmt}", "-f", "rawvideo", "-pix_fmt", fmt, "-"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    data = np.frombuffer(out, dtype="<u2" if deep else np.uint8).astype(np.float64)
    if deep:
        data = data / 257.0
    return data.reshape(-1, info.video.height, info.video.width, 3)


def decode_planes(path: Path, pix_fmt: str) -> np.ndarray:
    """Decode every frame's raw planes in ``pix_fmt`` (no colour conversion), flattened per frame."""
    from diffusify.io.probe import probe

    info = probe(path)
    assert info.video is not None
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0"]
    cmd += ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    dtype = "<u2" if pix_fmt.endswith("le") else np.uint8
    frames = info.video.frames or 1
    return np.frombuffer(out, dtype=dtype).reshape(frames, -1)


def count_decodable_frames(path: Path) -> int:
    """Frames that ffmpeg decodes from the file without an error exit."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0"]
    cmd += ["-f", "framecrc", "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return sum(1 for line in proc.stdout.decode().splitlines() if line and not line.startswith("#"))


def stream_span(path: Path, spec: str) -> tuple[float, float]:
    """First packet time and last packet end, in seconds, of one stream (``a:0``, ``s:0``...)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:{spec}"]
    cmd += ["-c", "copy", "-f", "framecrc", "-"]
    text = subprocess.run(cmd, capture_output=True, check=True).stdout.decode()
    tb = Fraction(1)
    starts, ends = [], []
    for line in text.splitlines():
        if line.startswith("#tb"):
            num, den = line.split(":")[1].strip().split("/")
            tb = Fraction(int(num), int(den))
        elif line and not line.startswith("#"):
            fields = [f.strip() for f in line.split(",")]
            pts, dur = int(fields[2]), int(fields[3])
            starts.append(pts * tb)
            ends.append((pts + dur) * tb)
    return float(min(starts)), float(max(ends))


def framemd5(path: str | Path) -> tuple[list[str], list[str]]:
    """Each decoded video frame's and audio packet's md5 (ffmpeg's framemd5 muxer): (video, audio)."""
    out = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "framemd5", "-"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split(",") for line in out.splitlines() if line and not line.startswith("#")]
    return [r[-1].strip() for r in rows if r[0].strip() == "0"], [r[-1].strip() for r in rows if r[0].strip() == "1"]
