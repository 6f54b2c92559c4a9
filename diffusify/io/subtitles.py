"""Text subtitles cut at a frame: the cue on screen at the cut stays, from the cut on.

Stream copy behind an input seek drops every packet that starts before the seek point, so a line that appeared
before the first kept frame and is still on screen there would be lost. For text formats the writer instead
extracts the stream to its own text form, moves every cue onto the cut's timeline, and muxes that file in place of
the copy. Times stay exact at the format's own precision: milliseconds for SubRip and WebVTT, centiseconds for
ASS/SSA. Bitmap subtitles (PGS, DVD) are still stream-copied.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from diffusify.io.errors import MediaError
from diffusify.io.ffmpeg import file_arg, run_ffmpeg

__all__ = ["TEXT_CODECS", "cut_cues", "cut_text_subtitles"]


@dataclass(frozen=True)
class _TextForm:
    encoder: str  # what the stream is extracted with: "copy", or a text encoder
    muxer: str  # ffmpeg muxer of the text form (also the key of the cue syntax below)
    suffix: str


# Source codec -> the text form it is cut in. mov_text and plain text have no file of their own: they are cut as
# SubRip and muxed back as the container asks (mov_text in mp4/mov).
_FORMS = {
    "subrip": _TextForm("copy", "srt", ".srt"),
    "srt": _TextForm("copy", "srt", ".srt"),
    "ass": _TextForm("copy", "ass", ".ass"),
    "ssa": _TextForm("copy", "ass", ".ass"),
    "webvtt": _TextForm("copy", "webvtt", ".vtt"),
    "mov_text": _TextForm("srt", "srt", ".srt"),
    "text": _TextForm("srt", "srt", ".srt"),
}
TEXT_CODECS = frozenset(_FORMS)  # every text subtitle codec ffmpeg can turn into a file

# SubRip "00:01:02,345 --> 00:01:04,000"; WebVTT the same with '.' and optional hours, then cue settings.
_ARROW = re.compile(
    r"^(?P<a>(?:\d+:)?\d{1,2}:\d{2}[,.]\d{3})[ \t]+-->[ \t]+(?P<b>(?:\d+:)?\d{1,2}:\d{2}[,.]\d{3})(?P<rest>.*)$"
)
# ASS "Dialogue: 0,0:01:02.34,0:01:04.00,Style,..." (also Comment lines, which carry times too).
_ASS_EVENT = re.compile(r"^(?P<head>(?:Dialogue|Comment):[ \t]*[^,]*,)(?P<a>[^,]*),(?P<b>[^,]*),(?P<tail>.*)$")
_BLANK = re.compile(r"\r?\n(?:[ \t]*\r?\n)+")


def _parse_clock(text: str, units: int) -> int:
    """``[h:]mm:ss.fff`` (or ``,fff``, or ``.cc``) to whole ``units`` per second."""
    head, _, frac = text.strip().replace(",", ".").partition(".")
    parts = [int(p) for p in head.split(":")]
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + p
    digits = len(frac)
    return seconds * units + round(Fraction(int(frac or "0"), 10**digits) * units)


def _format_clock(value: int, units: int, style: str) -> str:
    seconds, sub = divmod(value, units)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if style == "ass":
        return f"{hours}:{minutes:02d}:{seconds:02d}.{sub:02d}"
    sep = "," if style == "srt" else "."
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{sep}{sub:03d}"


def _move(start: int, end: int, cut: int, length: int | None) -> tuple[int, int] | None:
    """A cue's times on the cut's timeline, None when it is not on screen in the kept span.

    A cue that is still showing at the cut starts at 0; one that starts at or after the end of the span is dropped
    (as the stream copy drops packets from there on), and its own end is kept."""
    start, end = start - cut, end - cut
    if end <= 0 or (length is not None and start >= length):
        return None
    return max(start, 0), end


def cut_cues(text: str, form: str, cut: Fraction, length: Fraction | None) -> str:
    """Move the cues of a subtitle file onto the timeline of a cut.

    Args:
        text: the file, as ffmpeg's ``srt``, ``webvtt`` or ``ass`` muxer writes it.
        form: ``srt``, ``webvtt`` or ``ass``.
        cut: where the kept span starts, in seconds on the file's timeline.
        length: how long the kept span is, None for up to the end.

    Returns:
        The file with every cue shown in the span, moved by ``-cut``; SubRip cues are numbered anew.
    """
    units = 100 if form == "ass" else 1000
    cut_units = round(cut * units)
    length_units = None if length is None else round(length * units)
    if form == "ass":
        lines = []
        for line in text.splitlines(keepends=True):
            body = line.rstrip("\r\n")
            m = _ASS_EVENT.match(body)
            if m is None:
                lines.append(line)
                continue
            moved = _move(_parse_clock(m["a"], units), _parse_clock(m["b"], units), cut_units, length_units)
            if moved is not None:
                a, b = (_format_clock(v, units, "ass") for v in moved)
                lines.append(f"{m['head']}{a},{b},{m['tail']}{line[len(body):]}")
        return "".join(lines)
    newline = "\r\n" if "\r\n" in text else "\n"
    blocks = _BLANK.split(text.strip("\r\n"))
    kept: list[str] = []
    number = 0
    for block in blocks:
        lines = block.splitlines()
        at = next((i for i, line in enumerate(lines) if _ARROW.match(line)), None)
        if at is None:
            kept.append(block)  # the WebVTT header, NOTE and STYLE blocks
            continue
        m = _ARROW.match(lines[at])
        assert m is not None
        moved = _move(_parse_clock(m["a"], units), _parse_clock(m["b"], units), cut_units, length_units)
        if moved is None:
            continue
        a, b = (_format_clock(v, units, form) for v in moved)
        lines[at] = f"{a} --> {b}{m['rest']}"
        if form == "srt":
            number += 1
            lines = [str(number), *lines[at:]]
        kept.append(newline.join(lines))
    return (newline * 2).join(kept) + newline


def cut_text_subtitles(
    source: str, streams: Sequence[tuple[int, str]], *, cut: Fraction, length: Fraction | None, folder: Path
) -> dict[int, list[str]]:
    """Extract text subtitle streams and cut them (see :func:`cut_cues`).

    All streams come out of one pass over the file, which reads no further than the end of the span: a remux
    with a dozen subtitle tracks is read once, not a dozen times.

    Args:
        source: the media file.
        streams: ``(index, codec)`` of each subtitle stream to cut (codecs from :data:`TEXT_CODECS`).
        cut: where the kept span starts, in seconds from the container's start (what ``-ss`` takes).
        length: how long the kept span is, None for up to the end.
        folder: where to write the cut files; the caller removes it.

    Returns:
        For each stream index, the ffmpeg input options that read its cut file (the format named: a span without
        cues leaves a file that could not be recognised otherwise).

    Raises:
        MediaError: ffmpeg could not extract a stream.
    """
    if not streams:
        return {}
    args = ["-v", "error"]
    if length is not None:
        args += ["-t", f"{float(cut + length) + 1:.6f}"]  # a second to spare: cues from there on are dropped
    args += ["-i", file_arg(source)]
    raws = {}
    for index, codec in streams:
        form = _FORMS[codec]
        raws[index] = (form, folder / f"stream{index}.raw{form.suffix}")
        args += ["-map", f"0:{index}", "-c:s", form.encoder, "-f", form.muxer, "-y", file_arg(raws[index][1])]
    proc = run_ffmpeg(args, check=False)
    missing = [index for index, (_, raw) in raws.items() if not raw.exists()]
    if proc.returncode != 0 or missing:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"ffmpeg exit {proc.returncode}"
        which = ", ".join(str(index) for index in missing or raws)
        raise MediaError(f"{source}: cannot extract subtitle stream {which} to cut it: {reason}")
    inputs = {}
    for index, (form, raw) in raws.items():
        # ffmpeg writes text subtitles as UTF-8; anything else passes through byte for byte
        text = raw.read_text(encoding="utf-8", errors="surrogateescape")
        out = folder / f"stream{index}{form.suffix}"
        out.write_text(cut_cues(text, form.muxer, cut, length), encoding="utf-8", errors="surrogateescape")
        inputs[index] = ["-f", form.muxer, "-i", file_arg(out)]
    return inputs
