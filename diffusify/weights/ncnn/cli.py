"""Command line of the ncnn importer (``python -m diffusify.weights.ncnn``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from diffusify.weights.errors import WeightsError
from diffusify.weights.ncnn.convert import import_ncnn


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: convert one ncnn model and print what was written."""
    parser = argparse.ArgumentParser(
        prog="python -m diffusify.weights.ncnn",
        description="Convert an ncnn model (.param + .bin) to a spandrel-loadable .safetensors file.",
    )
    parser.add_argument("param", type=Path, help="text .param graph")
    parser.add_argument("bin", type=Path, help=".bin weights")
    parser.add_argument("out", type=Path, help="output .safetensors file")
    parser.add_argument("--name", help="model name recorded in the metadata")
    parser.add_argument("--licence", help="licence of the weights (SPDX id), recorded in the metadata")
    parser.add_argument("--source", help="where the source files came from, recorded in the metadata")
    parser.add_argument(
        "--pre-pad", type=int, default=None, help="mirror padding in pixels (default: family)"
    )
    args = parser.parse_args(argv)
    extra = {k: v for k, v in (("licence", args.licence), ("source", args.source)) if v}
    try:
        result = import_ncnn(
            args.param, args.bin, args.out, name=args.name, metadata=extra, pre_pad=args.pre_pad
        )
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    post = f" then {result.post_resize} x{result.post_scale}" if result.post_scale is not None else ""
    print(
        f"{result.out_path}: {result.description}{post} (effective x{result.effective_scale:g}), "
        f"{result.parameters} parameters from {result.source_storage}, sha256 {result.sha256}"
    )
    return 0

