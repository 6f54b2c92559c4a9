"""Segmentation figures, each against its baseline in the same invocation, rounds alternated.

    python bench/segment.py model  [--frames 48] [--rounds 3]   # segment (bundled selfie model) in the engine vs a hand loop
    python bench/segment.py masked [--frames 8]  [--rounds 2]   # upscale_person_only vs upscaling the whole frame
    python bench/segment.py iou                                 # the bundled models' masks vs the reference mask

``model``: the node's busy time inside ``diffusify run`` (video.read -> segment -> discard) against two hand-written
loops over the same LiteRT interpreter, frames and resizes (torch, bilinear with antialiasing down, bilinear up):
one over frames decoded beforehand (1 and all threads; the better counts), one decoding as it goes in a reader
thread with a bounded queue, as a user's script for a file would (and as the engine does: its node shares the
cores with the decoder). Target: node/hand throughput >= 0.95.

``masked``: the whole ``pipelines/upscale_person_only.yaml`` graph (segment, smooth, feather, two resizes, the
neural upscale, the masked merge) against ``video.read -> upscale.spandrel -> video.write`` with the same model,
clip and encoder. The neural model still runs on the whole frame in both: what masking adds is the segmentation
and the merge, and that is all it should add. Prints both throughputs, the ratio, and the busy seconds of the
nodes only the masked graph has.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from diffusify import run, tune_process  # noqa: E402
from diffusify.io.probe import probe  # noqa: E402
from diffusify.io.reader import VideoReader  # noqa: E402

tune_process()  # as the command line does
CLIP = ROOT / "examples" / "media" / "astronaut.mp4"
MODEL = ROOT / "weights" / "selfie_segmentation.tflite"
UPSCALER = ROOT / "weights" / "realesr-animevideov3-x2.safetensors"


def hand_loop(frames: list[torch.Tensor], threads: int) -> float:
    """Seconds for the same work as the node, written by hand over frames decoded beforehand: resize, invoke,
    resize back, with ``threads`` threads for torch and for the interpreter."""
    return _with_threads(threads, lambda it: _timed_loop(frames[0], frames, it))


def decoding_loop(count: int, threads: int) -> float:
    """The hand loop as a user would write it for a file: a reader thread decodes into a bounded queue (as the
    engine's source does) while the loop segments; seconds for the whole clip."""
    import queue
    import threading

    frames: queue.Queue[torch.Tensor | None] = queue.Queue(maxsize=8)

    def read() -> None:
        for f in VideoReader(str(CLIP), probe(CLIP), start=0, end=count):
            frames.put(f.data)
        frames.put(None)

    def arriving() -> Iterator[torch.Tensor]:
        threading.Thread(target=read, daemon=True).start()  # started with the clock
        while (x := frames.get()) is not None:
            yield x

    warm = next(iter(VideoReader(str(CLIP), probe(CLIP), start=0, end=1))).data
    return _with_threads(threads, lambda it: _timed_loop(warm, arriving(), it))


def _with_threads(threads: int, work: Callable[[Any], float]) -> float:
    from ai_edge_litert.interpreter import Interpreter

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return work(Interpreter(model_path=str(MODEL), num_threads=threads))
    finally:
        torch.set_num_threads(before)


def _timed_loop(warm: torch.Tensor, frames: Iterable[torch.Tensor], it: Any) -> float:
    it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

    def step(x: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(x[None], size=(256, 256), mode="bilinear", align_corners=False, antialias=True)
        it.set_tensor(inp, np.ascontiguousarray(y.permute(0, 2, 3, 1).numpy()))
        it.invoke()
        fg = torch.from_numpy(it.get_tensor(out).copy()).permute(0, 3, 1, 2)
        return F.interpolate(fg, size=x.shape[-2:], mode="bilinear", align_corners=False)[0].clamp_(0, 1)

    with torch.inference_mode():
        step(warm)  # warm-up
        t0 = time.perf_counter()
        for x in frames:
            step(x)
        return time.perf_counter() - t0


def node_run(frames: int, folder: Path) -> float:
    """Busy seconds of the segment node inside diffusify run over the first ``frames`` frames."""
    recipe = folder / "segment.yaml"
    recipe.write_text(textwrap.dedent(f"""
        version: 1
        devices: [cpu]
        nodes:
          src: {{type: video.read, with: {{path: "{CLIP}", end: {frames}}}}}
          who: {{type: segment, input: src}}
          out: {{type: discard, input: who}}
    """))
    s = run(str(recipe))
    return next(n for n in s["nodes"] if n["id"] == "who")["busy_seconds"]


def model(args: argparse.Namespace) -> None:
    frames = [f.data for f in VideoReader(str(CLIP), probe(CLIP), start=0, end=args.frames)]
    counts = sorted({1, torch.get_num_threads()})
    hand: dict[int, list[float]] = {t: [] for t in counts}
    decoding: list[float] = []
    node: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        node_run(2, Path(d))  # imports and first-load costs out of the rounds
        for _ in range(args.rounds):
            for t in counts:
                hand[t].append(hand_loop(frames, t))
            decoding.append(decoding_loop(args.frames, torch.get_num_threads()))
            node.append(node_run(args.frames, Path(d)))
    best = min(counts, key=lambda t: statistics.median(hand[t]))
    h, n = statistics.median(hand[best]), statistics.median(node)
    for t in counts:
        print(f"segment: hand loop, {t} thread(s): {', '.join(f'{x:.3f}' for x in hand[t])} s per round")
    print(f"segment: node busy: {', '.join(f'{x:.3f}' for x in node)} s per round ({args.frames} frames of "
          "432x432, bundled selfie model, CPU)")
    print(f"segment: best hand loop ({best} thread(s)) {len(frames) / h:.1f} fps, node {args.frames / n:.1f} fps; "
          f"throughput ratio node/hand = {h / n:.3f} (target >= 0.95)")
    dec = statistics.median(decoding)
    print(f"segment: hand loop decoding as it goes (a reader thread, as in the engine): "
          f"{', '.join(f'{x:.3f}' for x in decoding)} s per round, {args.frames / dec:.1f} fps; "
          f"node/that loop = {dec / n:.3f}")


def masked(args: argparse.Namespace) -> None:
    whole_times, masked_times, extra = [], [], []
    only_masked = ("who", "steady", "soft", "matte", "plain", "comp")
    with tempfile.TemporaryDirectory() as d:
        whole = Path(d) / "whole.yaml"
        whole.write_text(textwrap.dedent(f"""
            version: 1
            devices: [cpu]
            nodes:
              src: {{type: video.read, with: {{path: "{CLIP}", end: {args.frames}}}}}
              up:  {{type: upscale.spandrel, input: src, with: {{model: "{UPSCALER}"}}}}
              out: {{type: video.write, input: up, with: {{path: "{d}/whole.mkv", codec: libx264, crf: 18}}}}
        """))
        recipe = ROOT / "pipelines" / "upscale_person_only.yaml"
        overrides = {"input": str(CLIP), "output": f"{d}/masked.mkv"}
        for _ in range(args.rounds):
            s = run(str(whole), overwrite=True)
            whole_times.append(s["wall_seconds"])
            s = run(str(recipe), set=overrides, overwrite=True, max_frames=args.frames)
            masked_times.append(s["wall_seconds"])
            extra.append({n["id"]: n["busy_seconds"] for n in s["nodes"] if n["id"] in only_masked})
    w, m = statistics.median(whole_times), statistics.median(masked_times)
    print(f"masked upscale: {args.frames} frames of 432x432 -> 864x864, CPU; per round whole "
          f"{', '.join(f'{t:.2f}' for t in whole_times)} s, masked {', '.join(f'{t:.2f}' for t in masked_times)} s")
    print(f"masked upscale: whole frame {args.frames / w:.3f} fps, upscale_person_only {args.frames / m:.3f} fps; "
          f"throughput ratio masked/whole = {w / m:.3f}")
    last = extra[-1]
    print("masked upscale: busy seconds of the nodes only the masked graph has (last round): "
          + ", ".join(f"{k} {v:.2f}" for k, v in last.items())
          + f"; their sum per frame {sum(last.values()) / args.frames * 1000:.0f} ms")


def iou(args: argparse.Namespace) -> None:
    """Each bundled model's mask of the astronaut photo (through ``diffusify run``) against the reference mask of
    the person made by a second method (tests/fixtures/segmentation/README.md)."""
    from PIL import Image

    fixtures = ROOT / "tests" / "fixtures" / "segmentation"
    reference = np.asarray(Image.open(fixtures / "astronaut_person.png")) > 0
    for name in ("selfie-segmentation", "selfie-segmentation-landscape"):
        with tempfile.TemporaryDirectory() as d:
            recipe = Path(d) / "iou.yaml"
            recipe.write_text(textwrap.dedent(f"""
                version: 1
                nodes:
                  src: {{type: image.read, with: {{path: "{fixtures / 'astronaut.jpg'}"}}}}
                  who: {{type: segment, input: src, with: {{model: {name}, threshold: 0.5}}}}
                  out: {{type: image.write, input: who, with: {{path: "{d}/mask"}}}}
            """))
            run(str(recipe))
            mask = np.asarray(Image.open(next(Path(d, "mask").glob("*.png")))) > 127
        print(f"iou: {name}: {float((mask & reference).sum() / (mask | reference).sum()):.3f} (target >= 0.9)")


FIGURES = {"model": (model, 48, 3), "masked": (masked, 8, 2), "iou": (iou, 0, 0)}  # (function, frames, rounds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("figure", choices=sorted(FIGURES))
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args()
    figure, frames, rounds = FIGURES[args.figure]
    args.frames, args.rounds = args.frames or frames, args.rounds or rounds
    figure(args)


if __name__ == "__main__":
    main()
