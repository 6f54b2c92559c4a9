"""GPU figures of the bundled model (needs one CUDA GPU; about 3-4 minutes on an H100).

    python bench/gpu.py [--frames 60] [--device cuda:0]

Prints a table: steady-state fps (first frame at the sink to the last; loading, warm-up and compiling excluded)
of upscale.spandrel at 720p and 1080p input with fp32/fp16, channels_last, torch.compile,
batch 1-4 and 1-2 replicas on one GPU (frames discarded by the `discard` sink), then the full pipeline writing with
NVENC (h264_nvenc) vs libx264. The first row of each resolution is the baseline of its ratios.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffusify import run, tune_process  # noqa: E402

tune_process()  # as the command line does: these figures are the engine's as `diffusify run` runs it

MODEL = ROOT / "weights" / "realesr-animevideov3-x2.safetensors"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
CONFIGS = [
    ("fp32", dict(precision="fp32"), 1, None),
    ("fp16", dict(precision="fp16"), 1, None),
    ("fp16 channels_last", dict(precision="fp16", channels_last=True), 1, None),
    ("fp16 batch 2", dict(precision="fp16", batch=2), 1, None),
    ("fp16 batch 4", dict(precision="fp16", batch=4), 1, None),
    ("fp16 2 replicas", dict(precision="fp16"), 2, None),
    ("fp16 compile", dict(precision="fp16", compile=True), 1, None),
    ("fp16 + libx264", dict(precision="fp16"), 1, "libx264"),
    ("fp16 + h264_nvenc", dict(precision="fp16"), 1, "h264_nvenc"),
]


def one(tmp: Path, size: str, params: dict, replicas: int, codec: str | None, frames: int, device: str) -> float:
    w, h = SIZES[size]
    with_ = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in params.items())
    sink = "{type: discard, input: up}" if codec is None else \
        f"{{type: video.write, input: up, with: {{path: \"{tmp / 'o.mp4'}\", codec: {codec}, preset: " \
        f"{'p4' if 'nvenc' in codec else 'veryfast'}}}}}"
    recipe = tmp / "r.yaml"
    recipe.write_text(textwrap.dedent(f"""
        version: 1
        devices: [{device}]
        nodes:
          src: {{type: pattern, with: {{kind: moving, width: {w}, height: {h}, frames: {frames}}}}}
          up:  {{type: upscale.spandrel, input: src, with: {{model: "{MODEL}", tile: none, {with_}}},
                 replicas: {replicas}}}
          out: {sink}
    """))
    s = run(str(recipe), overwrite=True)
    # steady state: from the first frame at the sink to the last (model loading, warm-up and compiling excluded)
    steady = s["wall_seconds"] - (s["first_frame_seconds"] or 0.0)
    return (s["frames"] - 1) / steady if steady > 0 else s["fps"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--device", default="cuda:0")
    a = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py needs a CUDA GPU")
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, {a.frames} frames per row")
    print(f"{'input':<6} {'config':<22} {'fps':>8} {'vs fp32':>8}")
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        for size in SIZES:
            base = None
            for label, params, replicas, codec in CONFIGS:
                try:
                    fps = one(Path(d), size, params, replicas, codec, a.frames, a.device)
                except Exception as e:  # report the row, keep the table going
                    print(f"{size:<6} {label:<22} {'failed':>8}  {str(e).splitlines()[0][:80]}")
                    continue
                base = base or fps
                print(f"{size:<6} {label:<22} {fps:8.2f} {fps / base:7.2f}x", flush=True)
    print(f"total {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
