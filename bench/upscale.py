"""Spandrel node figures (CPU or GPU), each against a baseline run in the same invocation.

    python bench/upscale.py node      # upscale.spandrel inside `diffusify run` vs a hand-written torch loop
    python bench/upscale.py default   # pipelines/upscale_denoise.yaml end to end vs model-only time
    python bench/upscale.py tiling    # tile 128 / overlap 16 vs untiled
    python bench/upscale.py all       [--device cuda:0] [--frames N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffusify import run, tune_process  # noqa: E402
from diffusify.io.probe import probe  # noqa: E402
from diffusify.io.reader import VideoReader  # noqa: E402
from diffusify.processors.spandrel import load_descriptor  # noqa: E402

tune_process()  # as the command line does: these figures are the engine's as `diffusify run` runs it

MODEL = ROOT / "weights" / "realesr-animevideov3-x2.safetensors"
CLIP = ROOT / "examples" / "media" / "sample.mp4"


def decoded(frames: int) -> list[torch.Tensor]:
    with VideoReader(str(CLIP), probe(str(CLIP)), end=frames) as reader:
        return [f.data for f in reader]


def hand_loop(frames: list[torch.Tensor], device: str, border: int = 0) -> float:
    """The baseline a competent user writes: the same model over the same decoded frames, warm, with the same
    threads (``tune_process`` above) and precision, in the faster of the two memory layouts (timed both ways
    here, as the node's ``channels_last: auto`` does at setup). Returns seconds."""
    return min(_hand_loop(frames, device, border, last) for last in (False, True))


def _hand_loop(frames: list[torch.Tensor], device: str, border: int, channels_last: bool) -> float:
    import torch.nn.functional as F

    from diffusify.weights.ncnn import apply_post_scale

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = load_descriptor(str(MODEL), device).model.to(memory_format=fmt)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        net(frames[0].unsqueeze(0).to(device).contiguous(memory_format=fmt))  # warm-up, as the engine's setup does
        sync()
        t0 = time.perf_counter()
        for f in frames:
            x = f.unsqueeze(0).to(device)
            if border:
                x = F.pad(x, (border,) * 4, mode="reflect")
            y = apply_post_scale(net(x.contiguous(memory_format=fmt)), 0.5).clamp_(0, 1).cpu()  # the file's last step
        sync()
    del y
    return time.perf_counter() - t0


def _recipe(tmp: Path, frames: int, extra: str, device: str, *, encode: bool = True) -> str:
    """read -> upscale -> an x264 writer, or with ``encode=False`` the ``discard`` sink (the model stage alone, as
    the hand loop is: no encoder sharing the cores)."""
    path = tmp / "r.yaml"
    sink = (f"{{type: video.write, input: up, with: {{path: \"{tmp / 'o.mkv'}\", preset: veryfast}}}}" if encode
            else "{type: discard, input: up}")
    path.write_text(textwrap.dedent(f"""
        version: 1
        devices: [{device}]
        nodes:
          src: {{type: video.read, with: {{path: "{CLIP}", end: {frames}}}}}
          up:  {{type: upscale.spandrel, input: src, with: {{model: "{MODEL}"{extra}}}}}
          out: {sink}
    """))
    return str(path)


def node(frames: int, device: str) -> None:
    data = decoded(frames)
    base = hand_loop(data, device)
    for encode in (False, True):
        with tempfile.TemporaryDirectory() as d:
            s = run(_recipe(Path(d), frames, ", tile: none, border: 0", device, encode=encode), overwrite=True)
        up = next(n for n in s["nodes"] if n["id"] == "up")
        node_fps = up["frames"] / up["busy_seconds"]
        sink = "video.write (x264 on the same cores)" if encode else "discard (the model stage alone)"
        print(f"node: hand-written loop {frames / base:.2f} fps; upscale.spandrel inside diffusify run, sink "
              f"{sink}: {node_fps:.2f} fps (node busy time), whole run {s['fps']:.2f} fps")
        print(f"node: throughput ratio node/hand, sink {sink} = {node_fps / (frames / base):.3f} (target >= 0.95)")


def default(frames: int, device: str) -> None:
    info = probe(str(CLIP))
    total = info.video.frames if info.video else frames
    base = hand_loop(decoded(total), device, border=10)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        s = run(str(ROOT / "pipelines" / "upscale_denoise.yaml"), output=str(Path(d) / "o.mkv"),
                devices=[device])
        wall = time.perf_counter() - t0
    print(f"default: model-only {base:.2f} s for {total} frames; pipelines/upscale_denoise.yaml end to end "
          f"{wall:.2f} s (engine wall {s['wall_seconds']:.2f} s)")
    print(f"default: wall ratio = {wall / base:.3f} (target <= 1.15)")


def tiling(frames: int, device: str) -> None:
    from diffusify.core.stream import StreamInfo
    from diffusify.processors.base import PlanContext
    from diffusify.processors.spandrel import UpscaleSpandrel

    data = decoded(frames)
    h, w = data[0].shape[-2:]
    times = {}
    for label, params in (("untiled", {"tile": "none"}), ("tile 128/16", {"tile": 128, "overlap": 16})):
        p = UpscaleSpandrel.Params(model=str(MODEL), **params)
        src = StreamInfo(width=w, height=h)
        proc = UpscaleSpandrel("up", p, inputs={"input": src},
                               output=UpscaleSpandrel.infer_stream(p, {"input": src}, PlanContext()), device=device)
        proc.setup()
        with torch.inference_mode():
            proc._infer(data[0].unsqueeze(0).to(device))
            t0 = time.perf_counter()
            for f in data:
                proc._infer(f.unsqueeze(0).to(device)).cpu()
        times[label] = time.perf_counter() - t0
        print(f"tiling: {label}: {frames / times[label]:.2f} fps")
    print(f"tiling: overhead tile 128/16 vs untiled = {times['tile 128/16'] / times['untiled']:.3f} "
          f"(target <= 1.3)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("which", nargs="?", default="all", choices=["node", "default", "tiling", "all"])
    ap.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--frames", type=int, default=12)
    a = ap.parse_args()
    for name in (["node", "default", "tiling"] if a.which == "all" else [a.which]):
        globals()[name](a.frames, a.device)
