"""Pixel format and colour naming helpers shared by the probe, the reader and the writers.

Pure string logic: no torch, no numpy, so validation can use it.
"""

from __future__ import annotations

import re
import sys

from diffusify.core.stream import ColorInfo
from diffusify.io.ffmpeg import available_filters

# Exact rounding and chroma interpolation on every pixel instead of swscale's fast paths.
SWS_FLAGS = "bicubic+accurate_rnd+full_chroma_int+full_chroma_inp+bitexact"

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

# ffmpeg colour space names -> zscale's matrix names.
_ZSCALE_MATRIX = {
    "bt709": "709",
    "smpte170m": "170m",
    "bt470bg": "470bg",
    "fcc": "fcc",
    "smpte240m": "240m",
    "bt2020nc": "2020_ncl",
    "bt2020c": "2020_cl",
}

_RGB_PREFIXES = (
    "rgb",
    "bgr",
    "gbr",
    "argb",
    "abgr",
    "0rgb",
    "0bgr",
    "x2rgb",
    "x2bgr",
    "pal8",
    "monow",
    "monob",
)
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


def zscale_matrix(matrix: str | None) -> str | None:
    """zscale's name for an ffmpeg colour space, or None for RGB/unknown spaces."""
    return _ZSCALE_MATRIX.get(matrix or "")


def normalize_range(value: str | None) -> str | None:
    """``tv`` or ``pc`` for any of ffmpeg's range spellings, None when unknown."""
    return _RANGE_ALIASES.get((value or "").lower())


def default_matrix(height: int) -> str:
    """The matrix players assume for an untagged YUV source: BT.709 from 720 lines up, BT.601 below."""
    return "bt709" if height >= 720 else "smpte170m"


def effective_color(color: ColorInfo, height: int) -> tuple[str, str]:
    """The matrix and range to convert a tagged or untagged YUV stream with.

    Args:
        color: the probed tags.
        height: frame height, which decides the matrix of untagged sources.

    Returns:
        ``(ffmpeg colour space name, "tv" | "pc")``.
    """
    matrix = color.matrix if scale_matrix(color.matrix) else default_matrix(height)
    return matrix, normalize_range(color.range) or "tv"


def planar_rgb_format(high_bit_depth: bool, *, alpha: bool = False) -> str:
    """The planar RGB format frames travel in: ``gbrp``, or 16-bit ``gbrp16`` in this machine's byte order
    (``gbrap``/``gbrap16`` with an alpha plane).

    Planar, because a ``(3, H, W)`` tensor is planar: no interleaving or de-interleaving on either side.
    """
    base = "gbrap" if alpha else "gbrp"
    if not high_bit_depth:
        return base
    return base + ("16le" if sys.byteorder == "little" else "16be")


def _zimg_range(rng: str) -> str:
    return "limited" if rng == "tv" else "full"


def chroma_block(pix_fmt: str) -> tuple[int, int]:
    """Width and height in pixels of one chroma sample of a YUV pixel format: (2, 2) for 4:2:0, (1, 1) for RGB.

    Args:
        pix_fmt: ffmpeg pixel format name.
    """
    name = pix_fmt.lower()
    if name.startswith(("nv12", "nv21", "p010", "p012", "p016")):
        return 2, 2
    if name.startswith(("nv16", "p210", "p212", "p216", "yuyv422", "uyvy422", "yvyu422", "y210", "y212")):
        return 2, 1
    for tag, block in (("420", (2, 2)), ("422", (2, 1)), ("440", (1, 2)), ("411", (4, 1)), ("410", (4, 4))):
        if name.startswith(("yuv" + tag, "yuvj" + tag, "yuva" + tag)):
            return block
    return 1, 1


def _whole_blocks(pix_fmt: str, width: int, height: int) -> bool:
    bw, bh = chroma_block(pix_fmt)
    return width % bw == 0 and height % bh == 0


def to_rgb_filter(pix_fmt: str | None, color: ColorInfo, width: int, height: int, out_fmt: str) -> str:
    """Filters turning a decoded source into full-range planar RGB with the right matrix.

    YUV goes through zscale (zimg) when the build has it: swscale's high bit depth paths are off by several
    codes (10-bit limited white comes out at 254/255). zimg only takes frame sizes made of whole chroma blocks,
    though, and 853x480 4:2:0 video is common: swscale converts those. RGB and gray sources only need repacking.

    Args:
        pix_fmt: the source pixel format.
        color: the source's colour tags.
        width: frame width (as decoded, after any rotation).
        height: frame height (also decides the matrix of untagged YUV sources).
        out_fmt: the planar RGB format to produce.

    Returns:
        A filter chain description.
    """
    if pix_fmt and not is_rgb_pix_fmt(pix_fmt) and not is_gray_pix_fmt(pix_fmt):
        matrix, rng = effective_color(color, height)
        if "zscale" in available_filters() and _whole_blocks(pix_fmt, width, height):
            return (
                f"zscale=matrixin={zscale_matrix(matrix)}:rangein={_zimg_range(rng)}:range=full"
                f":filter=bicubic:dither=none,format={out_fmt}"
            )
        return (
            f"scale=in_color_matrix={scale_matrix(matrix)}:in_range={rng}:out_range=pc:flags={SWS_FLAGS},"
            f"format={out_fmt}"
        )
    options = [f"flags={SWS_FLAGS}"]
    if pix_fmt and is_gray_pix_fmt(pix_fmt):
        # Luma-only sources are images in practice: full range unless tagged otherwise.
        options += [f"in_range={normalize_range(color.range) or 'pc'}", "out_range=pc"]
    return f"scale={':'.join(options)},format={out_fmt}"


def from_rgb_filter(
    color: ColorInfo, pix_fmt: str, width: int, height: int
) -> tuple[str, str | None, str | None]:
    """Filters turning full-range planar RGB into ``pix_fmt`` with the stream's matrix and range.

    Untagged streams are encoded as BT.709 limited range (and tagged so by the caller). zscale converts, except
    for frame sizes that are not whole chroma blocks of ``pix_fmt`` (zimg refuses them): swscale takes those.

    Args:
        color: the stream's colour tags.
        pix_fmt: the output pixel format.
        width: frame width.
        height: frame height.

    Returns:
        ``(filter chain, ffmpeg matrix name, range)``; matrix and range are None for RGB output formats.
    """
    if is_rgb_pix_fmt(pix_fmt) or is_gray_pix_fmt(pix_fmt):
        return f"scale=flags={SWS_FLAGS},format={pix_fmt}", None, None
    matrix = color.matrix if scale_matrix(color.matrix) else "bt709"
    rng = normalize_range(color.range) or "tv"
    if "zscale" in available_filters() and _whole_blocks(pix_fmt, width, height):
        chain = f"zscale=matrix={zscale_matrix(matrix)}:range={_zimg_range(rng)}:filter=bicubic:dither=none"
    else:
        chain = f"scale=out_color_matrix={scale_matrix(matrix)}:out_range={rng}:flags={SWS_FLAGS}"
    return f"{chain},format={pix_fmt}", matrix, rng
