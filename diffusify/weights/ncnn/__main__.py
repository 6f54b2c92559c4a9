"""``python -m diffusify.weights.ncnn``: see :func:`diffusify.weights.ncnn.cli.main`."""

from diffusify.weights.ncnn.cli import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
