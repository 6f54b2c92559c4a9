"""Runtime figures: overhead against bare ffmpeg, memory flatness over long runs, and compute/IO overlap.

    python bench/runtime.py overhead   # 6-node graph (fan-out + merge) vs ffmpeg decode->encode, 1080p 300 frames
    python bench/runtime.py memory     # peak RSS, 300 vs 3000 frames of 1080p through a 2x resize
    python bench/runtime.py overlap    # a 20 ms/frame processor on 360p: wall time vs frames x 20 ms
    python bench/runtime.py all

Each figure runs its baseline in the same invocation and prints the ratio.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import imageio_ffmpeg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._clips import make_clip  # noqa: E402

CODEC = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]


def _recipe(tmp: Path, text: str) -> str:
    path = tmp / "bench.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def _run_cli(recipe: str, *extra: str) -> dict:
    """Run `diffusify run` in a fresh process and return its final summary (from --json-events)."""
    proc = subprocess.run([sys.executable, "-m", "diffusify", "run", recipe, "--json-events", "--overwrite", *extra],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"diffusify run failed: {proc.stderr.strip()}")
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return next(e for e in events if e["event"] == "finished")["summary"]


def overhead() -> None:
    clip = make_clip("1080p_300.mp4", width=1920, height=1080, frames=300)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), "-map", "0:v",
                        *CODEC, str(tmp / "ffmpeg.mkv")], check=True)
        bare = time.perf_counter() - t0
        recipe = _recipe(tmp, f"""
            version: 1
            nodes:
              src:   {{type: video.read, with: {{path: "{clip}"}}}}
              warm:  {{type: color, input: src, with: {{brightness: 0.02}}}}
              cut:   {{type: crop, input: src, with: {{x: 0, y: 0}}}}
              mix:   {{type: compose.blend, inputs: {{a: warm, b: cut}}, with: {{weight: 0.5}}}}
              grade: {{type: color, input: mix, with: {{contrast: 1.05}}}}
              out:   {{type: video.write, input: grade, with: {{path: "{tmp / 'ours.mkv'}", codec: libx264,
                       preset: veryfast, crf: 20, pix_fmt: yuv420p, copy_streams_from: none}}}}
        """)
        t0 = time.perf_counter()
        summary = _run_cli(recipe)
        ours = time.perf_counter() - t0
    print(f"overhead: bare ffmpeg decode->encode {300 / bare:.1f} fps ({bare:.2f} s); "
          f"6-node graph {300 / ours:.1f} fps ({ours:.2f} s, engine wall {summary['wall_seconds']:.2f} s)")
    print(f"overhead: throughput ratio ours/ffmpeg = {bare / ours:.3f} (target >= 0.9)")


def memory() -> None:
    clip = make_clip("1080p_3000.mp4", width=1920, height=1080, frames=3000, audio=False)
    peaks = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        recipe = _recipe(tmp, f"""
            version: 1
            nodes:
              src: {{type: video.read, with: {{path: "{clip}"}}}}
              up:  {{type: resize, input: src, with: {{scale: 2, method: bilinear}}}}
              out: {{type: video.write, input: up, with: {{path: "{tmp / 'up.mkv'}", preset: ultrafast, crf: 28}}}}
        """)
        for n in (300, 3000):
            t0 = time.perf_counter()
            s = _run_cli(recipe, "--max-frames", str(n))
            peaks[n] = s["peak_ram_bytes"]
            print(f"memory: {n} frames 1080p -> 2160p: peak RSS {peaks[n] / 2**20:.0f} MiB "
                  f"({time.perf_counter() - t0:.0f} s, {s['fps']:.1f} fps)")
    print(f"memory: peak RSS ratio 3000/300 = {peaks[3000] / peaks[300]:.3f} (target <= 1.1)")


def overlap() -> None:
    # decode + encode must cost less than the 20 ms of compute for it to hide them: on a 2-core machine a
    # 720p x264 encode alone takes longer than that, so the clip is 640x360 (the bare ffmpeg time is printed)
    clip = make_clip("360p_300.mp4", width=640, height=360, frames=300)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), "-map", "0:v",
                        *CODEC, str(Path(d) / "bare.mkv")], check=True)
    print(f"overlap: bare ffmpeg decode->encode of the clip takes {time.perf_counter() - t0:.2f} s")
    plugin = Path(__file__).resolve().parent / "_slow_plugin.py"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        recipe = _recipe(tmp, f"""
            version: 1
            nodes:
              src:  {{type: video.read, with: {{path: "{clip}"}}}}
              work: {{type: bench.sleep, input: src, with: {{ms: 20}}}}
              out:  {{type: video.write, input: work, with: {{path: "{tmp / 'o.mkv'}", preset: veryfast, crf: 20}}}}
        """)
        code = (f"import sys; sys.path.insert(0, {str(plugin.parent)!r}); import _slow_plugin; "
                f"from diffusify import run; from diffusify.processors.registry import default_registry; "
                f"reg = default_registry().copy(); reg.add(_slow_plugin.Sleep); "
                f"import json; print(json.dumps(run({recipe!r}, registry=reg, overwrite=True)))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        s = json.loads(out.strip().splitlines()[-1])
    ideal = 300 * 0.020
    print(f"overlap: 300 frames x 20 ms = {ideal:.2f} s ideal; wall {s['wall_seconds']:.2f} s; "
          f"ratio {s['wall_seconds'] / ideal:.3f} (target <= 1.1)")


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    for name in (["overhead", "memory", "overlap"] if which == "all" else [which]):
        globals()[name]()
