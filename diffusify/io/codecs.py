"""Encoder presets and the output containers: how each codec is driven and what it can store.

Pure tables and string logic (no torch), so validation can check a writer's settings against the stream it will
get before anything runs.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from diffusify.core.stream import ColorInfo, StreamInfo
from diffusify.io.ffmpeg import available_encoders, encoder_failure, encoder_pix_fmts
from diffusify.io.formats import chroma_block, pix_fmt_bit_depth

__all__ = [
    "AUTO",
    "CODEC_PRESETS",
    "CONTAINERS",
    "CodecPreset",
    "closest",
    "container_problem",
    "alpha_problem",
    "default_pix_fmt",
    "has_alpha",
    "hdr10_params",
    "pix_fmt_problem",
    "preset_problem",
    "quality_problem",
    "resolve_codec",
    "sample_depth",
    "size_problem",
    "writer_problem",
    "writer_problems",
]


@dataclass(frozen=True)
class CodecPreset:
    """How to drive one encoder.

    Attributes:
        pix_fmt: default output pixel format for 8-bit streams.
        pix_fmt_high: default output pixel format when the stream is deeper than 8 bits.
        quality_flag: the flag ``crf`` maps to (``-crf``, ``-cq``, ``-qscale:v``), None for lossless codecs.
        default_quality: the value used when neither crf nor bitrate is given.
        preset_flag: the flag ``preset`` maps to (``-preset``, ``-profile:v``).
        default_preset: the preset used when none is given, None for the encoder's own default.
        quality_args: extra arguments for constant-quality mode (dropped when a bitrate is given).
        extra_args: arguments always passed.
        containers: file extensions the codec can be stored in, None for no restriction known here.
        hardware: needs a GPU at run time (NVENC).
        software: the software encoder of the same format, suggested when the hardware is missing.
        whole_chroma: the encoder only takes frame sizes made of whole chroma blocks (an even width and height
            for 4:2:0); others pad odd sizes themselves.
        presets: the values ``preset`` may take, None when it is not checked here.
        quality_range: the lowest and highest ``crf`` the encoder takes, None when it is not checked here.
        alpha: the default output pixel formats (8-bit, deeper) when frames carry an alpha channel; None for
            encoders that cannot store one.
    """

    pix_fmt: str
    pix_fmt_high: str
    quality_flag: str | None
    default_quality: int | None
    preset_flag: str | None
    default_preset: str | None = None
    quality_args: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    containers: frozenset[str] | None = None
    hardware: bool = False
    software: str | None = None
    whole_chroma: bool = False
    presets: tuple[str, ...] | None = None
    quality_range: tuple[int, int] | None = None
    alpha: tuple[str, str] | None = None


_NVENC_QUALITY = ("-rc", "vbr", "-b:v", "0")
_NOT_WEBM = frozenset({".mkv", ".mp4", ".mov", ".avi"})

_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
_NVENC_PRESETS = (
    *(f"p{i}" for i in range(1, 8)),
    "default", "slow", "medium", "fast", "hp", "hq", "bd", "ll", "llhq", "llhp", "lossless", "losslesshp",
)  # fmt: skip

CODEC_PRESETS: dict[str, CodecPreset] = {
    "libx264": CodecPreset(
        "yuv420p", "yuv420p10le", "-crf", 18, "-preset", None, containers=_NOT_WEBM, whole_chroma=True,
        presets=_X26X_PRESETS, quality_range=(0, 51),
    ),
    "libx265": CodecPreset(
        "yuv420p", "yuv420p10le", "-crf", 20, "-preset", None, containers=_NOT_WEBM, whole_chroma=True,
        presets=_X26X_PRESETS, quality_range=(0, 51),
    ),
    "libsvtav1": CodecPreset(
        "yuv420p", "yuv420p10le", "-crf", 30, "-preset", None, presets=tuple(str(i) for i in range(-2, 14)),
        quality_range=(0, 63),
    ),
    "prores_ks": CodecPreset(
        "yuv422p10le",
        "yuv422p10le",
        "-qscale:v",
        None,
        "-profile:v",
        "hq",
        containers=frozenset({".mov", ".mkv"}),
        presets=("auto", "proxy", "lt", "standard", "hq", "4444", "4444xq"),
        alpha=("yuva444p10le", "yuva444p10le"),
    ),
    "ffv1": CodecPreset(
        "yuv444p",
        "yuv444p10le",
        None,
        None,
        None,
        extra_args=("-level", "3", "-g", "1", "-slicecrc", "1"),
        containers=frozenset({".mkv", ".mov", ".avi"}),
        presets=(),
        alpha=("yuva444p", "yuva444p10le"),
    ),
    "h264_nvenc": CodecPreset(
        "yuv420p", "yuv420p", "-cq", 19, "-preset", "p5", _NVENC_QUALITY, containers=_NOT_WEBM, hardware=True,
        software="libx264", whole_chroma=True,
        presets=_NVENC_PRESETS, quality_range=(0, 51),
    ),
    "hevc_nvenc": CodecPreset(
        "yuv420p", "p010le", "-cq", 21, "-preset", "p5", _NVENC_QUALITY, containers=_NOT_WEBM, hardware=True,
        software="libx265", whole_chroma=True,
        presets=_NVENC_PRESETS, quality_range=(0, 51),
    ),
    "av1_nvenc": CodecPreset(
        "yuv420p", "p010le", "-cq", 30, "-preset", "p5", _NVENC_QUALITY, hardware=True, software="libsvtav1",
        whole_chroma=True, presets=_NVENC_PRESETS, quality_range=(0, 51),
    ),
}

# Extension -> ffmpeg muxer.
CONTAINERS: dict[str, str] = {".mkv": "matroska", ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".avi": "avi"}
CONTAINERS[".webm"] = "webm"


AUTO = "auto"
"""The codec name that lets the machine choose: NVENC where it opens, else libx264 (see :func:`resolve_codec`)."""


def resolve_codec(codec: str, bit_depth: int) -> tuple[str, str | None]:
    """The encoder a writer runs for ``codec``, and for ``auto`` a one-line note on the choice.

    ``auto`` takes NVENC (``h264_nvenc``; ``hevc_nvenc`` for streams above 8 bits, which H.264 NVENC cannot keep)
    where one tiny frame encodes with it on this machine, once per process; otherwise libx264, which uses every
    core. Data-centre GPUs such as the H100 and H200 have no video encoder units: libx264 there too.

    Args:
        codec: the codec asked for; any name but ``auto`` comes back as it is, with no note.
        bit_depth: the stream's bit depth.

    Returns:
        ``(encoder name, note or None)``.
    """
    if codec != AUTO:
        return codec, None
    hardware = "hevc_nvenc" if bit_depth > 8 else "h264_nvenc"
    reason = encoder_failure(hardware) if hardware in available_encoders() else "not in the bundled ffmpeg"
    if reason is None:
        return hardware, f"codec auto: {hardware} (NVENC opens on this machine)"
    if "libcuda" in reason.lower():
        where = "no NVIDIA driver here"
    else:
        where = "no NVENC on this GPU (data-centre GPUs such as the H100 and H200 have no video encoder)"
    return "libx264", f"codec auto: libx264 on all {os.cpu_count() or 1} cores: {where}; {hardware}: {reason}"


def sample_depth(pix_fmt: str) -> int:
    """The depth (8 or 16 bits) of the RGB samples a writer hands the encoder for output format ``pix_fmt``:
    16 above 8 bits, so that the extra precision is real."""
    return 16 if pix_fmt_bit_depth(pix_fmt) > 8 else 8


def closest(value: str, choices: Sequence[str]) -> str:
    """``did you mean 'x'? `` for the closest of ``choices``, or an empty string (for messages about settings)."""
    close = difflib.get_close_matches(value, choices, n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def default_pix_fmt(codec: str, bit_depth: int, *, alpha: bool = False) -> str:
    """The pixel format a writer uses when none is given.

    Args:
        codec: the encoder.
        bit_depth: the stream's bit depth.
        alpha: the frames carry an alpha channel.

    Returns:
        The codec preset's format for that depth (4:2:0 for encoders without a preset).
    """
    preset = CODEC_PRESETS.get(codec)
    if preset is None:
        return "yuv420p10le" if bit_depth > 8 else "yuv420p"
    if alpha and preset.alpha is not None:
        return preset.alpha[1] if bit_depth > 8 else preset.alpha[0]
    return preset.pix_fmt_high if bit_depth > 8 else preset.pix_fmt


def has_alpha(pix_fmt: str) -> bool:
    """The pixel format stores an alpha plane (``yuva444p10le``, ``gbrap``, ``rgba``, ``ya16le``...)."""
    return pix_fmt.startswith(("yuva", "gbrap", "rgba", "bgra", "argb", "abgr", "ya"))


def alpha_problem(codec: str, pix_fmt: str | None, preset: str | None) -> tuple[str, str] | None:
    """Why ``codec`` with these settings cannot keep an alpha channel, None when it can.

    Args:
        codec: the encoder.
        pix_fmt: the pixel format asked for, None for the default.
        preset: the preset asked for (the ProRes profile), None for the default.

    Returns:
        ``(the parameter it is about, message naming the fix)``, or None.
    """
    info = CODEC_PRESETS.get(codec)
    if info is None or info.alpha is None:
        return "codec", (f"{codec} cannot store an alpha channel; use prores_ks in a .mov (ProRes 4444) or ffv1 in "
                         "a .mkv, or write the matte as its own gray video or image sequence")
    if pix_fmt is not None and not has_alpha(pix_fmt):
        return "pix_fmt", f"{pix_fmt} has no alpha plane; use {info.alpha[0]} or {info.alpha[1]}, or leave pix_fmt empty"
    if codec == "prores_ks" and preset is not None and preset not in ("4444", "4444xq"):
        return "preset", f"ProRes stores alpha only in the 4444 profiles; set preset to 4444 or 4444xq (got {preset})"
    return None


def size_problem(codec: str, pix_fmt: str, width: int, height: int) -> str | None:
    """Why ``codec`` cannot store ``width`` x ``height`` frames as ``pix_fmt``, None when it can.

    Args:
        codec: the encoder.
        pix_fmt: the output pixel format.
        width: frame width.
        height: frame height.

    Returns:
        A message that names the fix, or None.
    """
    preset = CODEC_PRESETS.get(codec)
    bw, bh = chroma_block(pix_fmt)
    if preset is None or not preset.whole_chroma or (width % bw == 0 and height % bh == 0):
        return None
    fit = f"{width - width % bw}x{height - height % bh}"
    needs = [
        ("an even " if step == 2 else f"a multiple of {step} as its ") + side
        for side, step in (("width", bw), ("height", bh))
        if step > 1
    ]
    return (
        f"{codec} cannot store {width}x{height} frames as {pix_fmt} (its chroma needs {' and '.join(needs)}); crop "
        f"or resize to {fit} before the writer, or set pix_fmt to a 4:4:4 format such as "
        f"{'yuv444p10le' if '10' in pix_fmt else 'yuv444p'}"
    )


def container_problem(codec: str, suffix: str, *, vfr: bool = False) -> tuple[str, str] | None:
    """Why a file with extension ``suffix`` cannot hold ``codec`` (or a variable frame rate), None when it can.

    Args:
        codec: the encoder.
        suffix: the output file's extension, with its dot.
        vfr: the stream has variable frame rate timestamps to keep.

    Returns:
        ``(what is wrong: "path" or "codec", message naming the fix)``, or None.
    """
    suffix = suffix.lower()
    if suffix not in CONTAINERS:
        return "path", f"unsupported output extension '{suffix or '(none)'}' (use one of {', '.join(sorted(CONTAINERS))})"
    preset = CODEC_PRESETS.get(codec)
    if preset is not None and preset.containers is not None and suffix not in preset.containers:
        return "codec", f"{codec} cannot be stored in a {suffix} file (use {', '.join(sorted(preset.containers))})"
    if vfr and suffix == ".avi":
        return "path", "AVI stores a constant frame rate only, and this stream has variable frame timestamps; use .mkv or .mp4"
    return None


def hdr10_params(codec: str, color: ColorInfo) -> tuple[str, str] | None:
    """The encoder option that writes a stream's HDR10 mastering display and content light level.

    Args:
        codec: the encoder.
        color: the stream's colour metadata.

    Returns:
        ``(option, value)`` such as ``("-x265-params", "master-display=...:max-cll=1000,400")``; None for encoders
        that take no such option (or when there is nothing to write).
    """
    keys: list[str] = []
    if codec == "libx265":
        flag = "-x265-params"
        if color.mastering is not None:
            rx, ry, gx, gy, bx, by, wx, wy, high, low = color.mastering

            def xy(x: float, y: float) -> str:  # chromaticities in units of 0.00002
                return f"({round(x * 50000)},{round(y * 50000)})"

            luminance = f"L({round(high * 10000)},{round(low * 10000)})"  # in units of 0.0001 cd/m2
            keys.append(f"master-display=G{xy(gx, gy)}B{xy(bx, by)}R{xy(rx, ry)}WP{xy(wx, wy)}{luminance}")
        if color.light is not None:
            keys.append(f"max-cll={color.light[0]},{color.light[1]}")
    elif codec == "libsvtav1":
        flag = "-svtav1-params"
        if color.mastering is not None:
            rx, ry, gx, gy, bx, by, wx, wy, high, low = color.mastering
            keys.append(
                f"mastering-display=G({gx:.4f},{gy:.4f})B({bx:.4f},{by:.4f})R({rx:.4f},{ry:.4f})"
                f"WP({wx:.4f},{wy:.4f})L({high:.4f},{low:.4f})"
            )
        if color.light is not None:
            keys.append(f"content-light={color.light[0]},{color.light[1]}")
    else:
        return None
    return (flag, ":".join(keys)) if keys else None


def preset_problem(codec: str, preset: str) -> str | None:
    """Why ``codec`` does not take ``preset``, None when it does (or when this table does not know).

    Args:
        codec: the encoder.
        preset: the speed preset (the ProRes profile for prores_ks).
    """
    info = CODEC_PRESETS.get(codec)
    if info is None or info.presets is None or preset in info.presets:
        return None
    if not info.presets:
        return f"{codec} has no presets; remove preset"
    return f"{codec} has no preset '{preset}' ({closest(preset, info.presets)}it takes {', '.join(info.presets)})"


def pix_fmt_problem(codec: str, pix_fmt: str) -> str | None:
    """Why ``codec`` cannot encode ``pix_fmt``, None when it can (or when the bundled ffmpeg does not say).

    Args:
        codec: the encoder.
        pix_fmt: the output pixel format.
    """
    formats = encoder_pix_fmts(codec)
    native = pix_fmt + ("le" if sys.byteorder == "little" else "be")  # ffmpeg's alias: yuv420p10 for yuv420p10le
    if formats is None or pix_fmt in formats or native in formats:
        return None
    return f"{codec} cannot encode {pix_fmt} ({closest(pix_fmt, sorted(formats))}it takes {', '.join(sorted(formats))})"


def quality_problem(codec: str, crf: int) -> str | None:
    """Why ``codec`` does not take constant quality ``crf``, None when it does (or when this table does not know).

    Args:
        codec: the encoder.
        crf: the constant-quality value.
    """
    info = CODEC_PRESETS.get(codec)
    if info is None or info.quality_range is None:
        return None
    low, high = info.quality_range
    return None if low <= crf <= high else f"{codec} takes crf {low} to {high} (got {crf}; lower is better quality)"


def writer_problems(
    codec: str,
    suffix: str,
    *,
    pix_fmt: str | None,
    preset: str | None,
    crf: int | None,
    stream: StreamInfo | None,
    vfr: bool,
) -> list[tuple[str, str]]:
    """Every problem with a video writer's settings: what validation reports and the writer refuses.

    Args:
        codec: the encoder.
        suffix: the output file's extension, with its dot.
        pix_fmt: the pixel format asked for, None for the codec's default.
        preset: the preset asked for, if any.
        crf: the constant quality asked for, if any.
        stream: the stream to write, None when not known yet (its size is then not checked).
        vfr: its frames keep their own timestamps.

    Returns:
        ``(the parameter it is about, message naming the fix)`` for each problem, in that order.
    """
    out: list[tuple[str, str]] = []
    wrong = container_problem(codec, suffix, vfr=vfr)
    if wrong is not None:
        out.append(wrong)
    if preset is not None and (problem := preset_problem(codec, preset)):
        out.append(("preset", problem))
    if crf is not None and (problem := quality_problem(codec, crf)):
        out.append(("crf", problem))
    bad_pix_fmt = pix_fmt is not None and (problem := pix_fmt_problem(codec, pix_fmt))
    if bad_pix_fmt:
        out.append(("pix_fmt", problem))
    elif stream is not None:
        chosen = pix_fmt or default_pix_fmt(codec, stream.bit_depth, alpha=stream.channels == 4)
        if problem := size_problem(codec, chosen, stream.width, stream.height):
            out.append((("pix_fmt" if pix_fmt else "codec"), problem))
    if stream is not None and stream.channels == 4 and (wrong := alpha_problem(codec, pix_fmt, preset)):
        out.append(wrong)
    return out


def writer_problem(codec: str, suffix: str, **settings: Any) -> tuple[str, str] | None:
    """The first of :func:`writer_problems`, or None."""
    problems = writer_problems(codec, suffix, **settings)
    return problems[0] if problems else None
