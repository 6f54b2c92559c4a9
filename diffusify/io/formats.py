"""Pixel format and colour naming helpers shared by the probe, the reader and the writers.

Pure string logic: no torch, no numpy, so validation can use it.
"""

from __future__ import annotations

import re

from diffusify.graph.stream import ColorInfo

# ffmpeg colour space names -> the value the scale filter's in/out_color_matrix option takes.
_SCALE_MATRIX = {
    "bt709": "bt709",
    "smpte170m": "smpte170m",
    "bt470bg": "bt470bg",
    "fcc": "fcc",
    "smpte240m": "smpte240m",
    "bt2020nc": "bt2020",
    "bt2020c": "bt2020",
}

_RGB_PREFIXES = ("rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "0bgr", "x2rgb", "x2bgr", "pal8", "monow", "monob")
_DEPTH_SUFFIX = re.compile(r"(\d+)(?:le|be)?$")
_RANGE_ALIASES = {"tv": "tv", "limited": "tv", "mpeg": "tv", "pc": "pc", "full": "pc", "jpeg": "pc"}


def pix_fmt_bit_depth(pix_fmt: str) -> int:
    """Bit depth of an ffmpeg pixel format, rounded up to 8, 10, 12 or 16.

    Args:
        pix_fmt: ffmpeg pixel format name (``yuv420p``, ``yuv420p10le``, ``p010le``, ``rgb48le``...).

    Returns:
        The per-sample depth; 8 for anything unrecognised.
    """
    name = pix_fmt.lower()
    if name.startswith(("rgb48", "bgr48", "rgba64", "bgra64", "p016", "p216", "p416", "y216", "ya16")):
        return 16
    if name.startswith(("p010", "p210", "p410", "y210", "x2rgb10", "x2bgr10", "v30x", "xv30")):
        return 10
    if name.startswith(("p012", "p212", "p412", "y212", "xv36")):
        return 12
    if name in ("v210",):
        return 10
    match = _DEPTH_SUFFIX.search(name)
    # Packed 8-bit names end in their bits per pixel (rgb24, bgr0...), not a per-sample depth.
    if match and (name.endswith(("le", "be")) or name.startswith(("gray", "yuv", "gbrp", "gbrap", "yuva"))):
        depth = int(match.group(1))
        for bucket in (8, 10, 12, 16):
            if depth <= bucket:
                return bucket
        return 16
    return 8


def is_rgb_pix_fmt(pix_fmt: str) -> bool:
    """Whether a pixel format stores RGB (or palette) samples rather than YUV."""
    name = pix_fmt.lower()
    return name.startswith(_RGB_PREFIXES) or name in ("rgba", "bgra", "rgb0", "bgr0", "0rgb", "0bgr")


def is_gray_pix_fmt(pix_fmt: str) -> bool:
    """Whether a pixel format is luma only (``gray``, ``gray16le``, ``ya8``...)."""
    return pix_fmt.lower().startswith(("gray", "ya8", "ya16"))


def scale_matrix(matrix: str | None) -> str | None:
    """The scale filter's name for an ffmpeg colour space, or None for RGB/unknown spaces."""
    return _SCALE_MATRIX.get(matrix or "")


def normalize_range(value: str | None) -> str | None:
    """``tv`` or ``pc`` for any of ffmpeg's range spellings, None when unknown."""
    return _RANGE_ALIASES.get((value or "").lower())


def default_matrix(height: int) -> str:
    """The matrix players assume for an untagged YUV source: BT.709 from 720 lines up, BT.601 below."""
    return "bt709" if height >= 720 else "smpte170m"


def effective_color(color: ColorInfo, height: int) -> tuple[str, str]:
    """The matrix and range to convert an untagged or tagged YUV stream with.

    Args:
        color: the probed tags.
        height: frame height, which decides the matrix of untagged sources.

    Returns:
        ``(scale matrix name, "tv" | "pc")``.
    """
    matrix = scale_matrix(color.matrix) or scale_matrix(default_matrix(height))
    assert matrix is not None
    return matrix, normalize_range(color.range) or "tv"
