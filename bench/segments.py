"""Segmented runs: what the journal and the join cost, and what running segments side by side gains.

    python bench/segments.py overhead [--frames 600] [--segments 4] [--rounds 3]
    python bench/segments.py scaling  [--frames 48] [--rounds 2]

``overhead``: one recipe (decode 640x360 H.264, unsharp mask, encode x264) run whole and in N segments on one
worker (each segment: its own plan, decoder and encoder, its file hashed and recorded in the journal with an
fsync, then the join by stream copy), rounds alternated. Target: segmented / whole <= 1.05 of the time.

``scaling``: the bundled Real-ESRGAN x2 model over a 320x180 clip in 4 segments, on 1 worker and on 2 workers
(segment-parallel, one engine each), rounds alternated. On a machine with several GPUs pass ``--device
cuda:0,cuda:1`` to deal the workers out over them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _clips import make_clip  # noqa: E402

from diffusify import run, tune_process  # noqa: E402

tune_process()  # as the command line does


def _recipe(folder: Path, clip: Path, middle: str, codec: str) -> Path:
    path = folder / "bench.yaml"
    path.write_text(textwrap.dedent(f"""
        version: 1
        params:
          output: out.mkv
        nodes:
          src:  {{type: video.read, with: {{path: "{clip}"}}}}
          last: {middle}
          out:  {{type: video.write, input: last, with: {{path: "${{output}}", codec: {codec}}}}}
    """))
    return path


def overhead(args: argparse.Namespace) -> None:
    clip = make_clip(f"seg_640x360_{args.frames}.mp4", width=640, height=360, frames=args.frames)
    whole, seg = [], []
    with tempfile.TemporaryDirectory() as d:
        recipe = _recipe(Path(d), clip, "{type: sharpen, input: src, with: {amount: 0.5}}", "libx264")
        run(str(recipe), output=f"{d}/warm.mkv", max_frames=8)  # imports and first-use costs out of the rounds
        for _ in range(args.rounds):
            whole.append(run(str(recipe), output=f"{d}/whole.mkv", overwrite=True)["wall_seconds"])
            seg.append(run(str(recipe), output=f"{d}/seg.mkv", overwrite=True, segments=args.segments)
                       ["wall_seconds"])
    w, s = statistics.median(whole), statistics.median(seg)
    print(f"overhead: {args.frames} frames 640x360, sharpen, x264; whole {', '.join(f'{t:.2f}' for t in whole)} s; "
          f"{args.segments} segments {', '.join(f'{t:.2f}' for t in seg)} s")
    print(f"overhead: segmented / whole = {s / w:.3f} of the time (target <= 1.05); "
          f"{args.frames // args.segments} frames a segment")


def scaling(args: argparse.Namespace) -> None:
    clip = make_clip(f"seg_320x180_{args.frames}.mp4", width=320, height=180, frames=args.frames)
    model = ROOT / "weights" / "realesr-animevideov3-x2.safetensors"
    devices = args.device.split(",") if args.device else None
    one, two = [], []
    with tempfile.TemporaryDirectory() as d:
        recipe = _recipe(Path(d), clip, f'{{type: upscale.spandrel, input: src, with: {{model: "{model}"}}}}', "ffv1")
        run(str(recipe), output=f"{d}/warm.mkv", max_frames=2)
        for _ in range(args.rounds):
            one.append(run(str(recipe), output=f"{d}/one.mkv", overwrite=True, segments=4, workers=1,
                           devices=devices)["wall_seconds"])
            two.append(run(str(recipe), output=f"{d}/two.mkv", overwrite=True, segments=4, workers=2,
                           devices=devices)["wall_seconds"])
    a, b = statistics.median(one), statistics.median(two)
    print(f"scaling: {args.frames} frames 320x180 -> 640x360, realesr-animevideov3-x2, 4 segments, devices "
          f"{args.device or 'auto'}; 1 worker {', '.join(f'{t:.2f}' for t in one)} s; 2 workers "
          f"{', '.join(f'{t:.2f}' for t in two)} s")
    print(f"scaling: 2 workers / 1 worker throughput = {a / b:.3f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("figure", choices=("overhead", "scaling"))
    ap.add_argument("--frames", type=int)
    ap.add_argument("--segments", type=int, default=4)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--device", help="devices dealt out to the workers (scaling), e.g. cuda:0,cuda:1")
    args = ap.parse_args()
    scaled = args.figure == "scaling"
    args.frames = args.frames or (48 if scaled else 600)
    args.rounds = args.rounds or (2 if scaled else 3)
    (scaling if scaled else overhead)(args)


if __name__ == "__main__":
    main()
