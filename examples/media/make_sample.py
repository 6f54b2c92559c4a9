"""Generate ``sample.mp4`` and ``sample.png`` from public-domain / CC0 photographs (development-time script).

The clip is a slow "Ken Burns" zoom over one photograph, a hard cut, then a slow pan over a second one,
with a synthesised chord as its audio track. See ``README.md`` beside this file for the sources and
licences.

Needs (not project dependencies): ``scikit-image`` (its bundled sample photographs), ``Pillow``,
``numpy`` and ``imageio-ffmpeg`` (for the ffmpeg binary)::

    python examples/media/make_sample.py            # writes sample.mp4 and sample.png beside this file
    python examples/media/make_sample.py --out-dir out/media
"""

from __future__ import annotations

import argparse
import math
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 480, 270
FPS = 25
FRAMES = 75  # 3.0 s
CUT = 45  # first frame of the second shot (t = 1.8 s)
STILL = 20  # frame saved as sample.png
SAMPLE_RATE = 48_000


def _shot_frames(
    image: np.ndarray, count: int, start: tuple[float, float, float], end: tuple[float, float, float]
):
    """Frames of a pan/zoom: the crop window (centre x, centre y, width) moves linearly from start to end."""
    from PIL import Image

    src = Image.fromarray(image)
    for i in range(count):
        t = i / max(count - 1, 1)
        t = 0.5 - 0.5 * math.cos(math.pi * t)  # ease in/out
        cx, cy, w = (a + (b - a) * t for a, b in zip(start, end, strict=True))
        h = w * HEIGHT / WIDTH
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if box[0] < 0 or box[1] < 0 or box[2] > src.width or box[3] > src.height:
            raise ValueError(f"crop window {box} leaves the {src.width}x{src.height} image")
        frame = src.resize((WIDTH, HEIGHT), resample=Image.Resampling.LANCZOS, box=box)
        yield np.asarray(frame, dtype=np.uint8)


def render_frames() -> list[np.ndarray]:
    """All frames of the clip, RGB uint8 ``(HEIGHT, WIDTH, 3)``."""
    from skimage import data

    coffee = data.coffee()  # 400x600, CC0 (Rachel Michetti)
    rocket = data.rocket()  # 427x640, public domain (SpaceX)
    frames = list(_shot_frames(coffee, CUT, start=(300.0, 200.0, 600.0), end=(290.0, 190.0, 500.0)))
    frames += list(_shot_frames(rocket, FRAMES - CUT, start=(300.0, 213.0, 560.0), end=(340.0, 213.0, 560.0)))
    return frames


def render_audio(path: Path) -> None:
    """A 3 s A-major chord with soft attack and release, 48 kHz stereo 16-bit WAV."""
    n = FRAMES * SAMPLE_RATE // FPS
    t = np.arange(n) / SAMPLE_RATE
    notes = (220.0, 277.18, 329.63, 440.0)
    tone = sum(np.sin(2 * np.pi * f * t) * (0.8**k) for k, f in enumerate(notes))
    envelope = np.minimum(1.0, t / 0.15) * np.minimum(1.0, (t[-1] - t) / 0.4)
    left = 0.25 * tone * envelope / len(notes)
    right = 0.25 * np.roll(tone, SAMPLE_RATE // 500) * envelope / len(notes)
    pcm = (np.stack([left, right], axis=1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm.tobytes())


def encode(frames: list[np.ndarray], audio: Path, out: Path) -> None:
    """H.264 yuv420p (BT.709, limited range, tagged) + AAC, via ffmpeg."""
    import imageio_ffmpeg

    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{WIDTH}x{HEIGHT}",
        "-r",
        str(FPS),
        "-i",
        "-",
        "-i",
        str(audio),
        "-vf",
        "scale=out_color_matrix=bt709:out_range=tv:flags=accurate_rnd+full_chroma_int,format=yuv420p,"
        "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv",
        "-c:v",
        "libx264",
        "-preset",
        "slow",
        "-crf",
        "18",
        "-g",
        str(FPS),
        "-bf",
        "2",
        "-colorspace",
        "bt709",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        "-color_range",
        "tv",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
        "-map_metadata",
        "-1",
        "-fflags",
        "+bitexact",
        "-flags:v",
        "+bitexact",
        "-flags:a",
        "+bitexact",
        "-movflags",
        "+faststart",
        "-shortest",
        str(out),
    ]
    proc = subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"ffmpeg failed: {proc.stderr.decode(errors='replace').strip()}")


def main() -> None:
    """Write ``sample.mp4`` and ``sample.png``."""
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    frames = render_frames()
    Image.fromarray(frames[STILL]).save(args.out_dir / "sample.png", optimize=True)
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "chord.wav"
        render_audio(audio)
        encode(frames, audio, args.out_dir / "sample.mp4")
    print(f"wrote {args.out_dir / 'sample.mp4'} and {args.out_dir / 'sample.png'}")


if __name__ == "__main__":
    main()
