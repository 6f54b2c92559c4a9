"""interpolate.rife inside `diffusify run` against a hand-written loop over the same model and frames.

    python bench/interpolate.py [--frames 32] [--device cpu|cuda:0] [--multiplier 2]

Fair: the same network and weights (the bundled RIFE 4.25), the same precision (fp32 on the CPU, fp16 on CUDA),
the same padding to a multiple of 64, one batch of timesteps per pair of frames, and a warm-up call before timing.
The node's figure is its busy time (what the model costs inside the engine), the ratio node/hand should be >= 0.95.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from diffusify import run, tune_process  # noqa: E402
from diffusify.io.probe import probe  # noqa: E402
from diffusify.io.reader import VideoReader  # noqa: E402
from diffusify.processors.rife import load_rife  # noqa: E402

tune_process()  # as the command line does
CLIP = ROOT / "examples" / "media" / "sample.mp4"
MODEL = ROOT / "weights" / "rife-4.25.safetensors"


def hand_loop(frames: list[torch.Tensor], device: str, multiplier: int) -> float:
    net = load_rife(str(MODEL), device)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    net.to(dtype)
    _, h, w = frames[0].shape
    ph, pw = -(-h // 64) * 64, -(-w // 64) * 64
    ts = torch.tensor([i / multiplier for i in range(1, multiplier)], device=device, dtype=dtype).view(-1, 1, 1, 1)
    n = len(ts)

    def step(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x0 = F.pad(a[None].to(device, dtype), (0, pw - w, 0, ph - h)).expand(n, -1, -1, -1)
        x1 = F.pad(b[None].to(device, dtype), (0, pw - w, 0, ph - h)).expand(n, -1, -1, -1)
        return net(x0, x1, ts, (16, 8, 4, 2, 1))[:, :, :h, :w].float().clamp_(0, 1)

    with torch.inference_mode():
        step(frames[0], frames[1])  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for a, b in zip(frames, frames[1:], strict=False):
            step(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--multiplier", type=int, default=2)
    args = ap.parse_args()
    frames = [f.data for f in VideoReader(str(CLIP), probe(CLIP), start=0, end=args.frames)]
    hand = hand_loop(frames, args.device, args.multiplier)
    pairs = len(frames) - 1
    with tempfile.TemporaryDirectory() as d:
        recipe = Path(d) / "r.yaml"
        recipe.write_text(textwrap.dedent(f"""
            version: 1
            devices: [{args.device}]
            nodes:
              src: {{type: video.read, with: {{path: "{CLIP}", end: {args.frames}}}}}
              up: {{type: interpolate.rife, input: src, with: {{multiplier: {args.multiplier}, scene_change: off}}}}
              out: {{type: discard, input: up}}
        """))
        s = run(str(recipe))
    node = next(n for n in s["nodes"] if n["id"] == "up")
    hand_fps, node_fps = pairs / hand, node["frames"] / args.multiplier / node["busy_seconds"]
    print(f"interpolate: {args.device}, {args.frames} frames of 480x270, x{args.multiplier}; hand-written loop "
          f"{hand_fps:.2f} source frames/s; interpolate.rife inside diffusify run {node_fps:.2f} source frames/s "
          f"(node busy time), whole run {s['fps']:.2f} output fps")
    print(f"interpolate: throughput ratio node/hand = {node_fps / hand_fps:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
