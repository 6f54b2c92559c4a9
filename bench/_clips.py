"""Benchmark inputs made with the bundled ffmpeg (cached under bench/.cache)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import imageio_ffmpeg

CACHE = Path(__file__).resolve().parent / ".cache"


def make_clip(name: str, *, width: int, height: int, frames: int, fps: int = 25, audio: bool = True) -> Path:
    """A real H.264 clip (testsrc2 motion plus noise so it is not trivially compressible), cached."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / name
    if path.exists():
        return path
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    args = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i",
            f"testsrc2=size={width}x{height}:rate={fps},noise=alls=12:allf=t"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    args += ["-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
             "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]
    if audio:
        args += ["-c:a", "aac", "-shortest"]
    tmp = path.with_suffix(".part" + path.suffix)
    subprocess.run(args + [str(tmp)], check=True)
    os.replace(tmp, path)
    return path
