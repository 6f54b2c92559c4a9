"""Joining video files written segment by segment into one, without re-encoding.

The pieces (each starting at time 0, the same codec and settings) go through ffmpeg's concat demuxer with
``-c copy``, which lays them end to end; the source's audio, subtitles, chapters, attachments and metadata are
copied once for the whole span, by the same :class:`~diffusify.io.streamcopy.StreamCopy` a whole run's writer
uses, so a joined file holds what an uninterrupted run would have written. The result appears under its name only
when it is complete (a temporary name, then a rename).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from diffusify.io.codecs import CONTAINERS
from diffusify.io.errors import MediaError
from diffusify.io.ffmpeg import FFmpegProcess, file_arg, prepare_output

__all__ = ["join_segments"]


def _concat_line(path: Path) -> str:
    # the concat list's quoting: a single-quoted string, where a quote is written '\''
    return "file '" + str(path.resolve()).replace("'", "'\\''") + "'"


def join_segments(parts: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
                  copy_from: str | None = None, copy_range: tuple[Fraction, Fraction | None] | None = None,
                  overwrite: bool = False) -> list[str]:
    """Join ``parts`` into ``output`` by stream copy.

    Args:
        parts: the segment files, in order.
        output: the joined file; its extension picks the container.
        copy_from: a source whose audio, subtitles, chapters and attachments are copied (None: none).
        copy_range: the span of the source's video timeline to copy them for (``end`` None: to the end).
        overwrite: replace an existing output.

    Returns:
        Warnings (streams re-encoded or dropped because the container cannot hold them).

    Raises:
        MediaError: no parts, an output that exists, or ffmpeg failed.
    """
    from diffusify.io.probe import probe
    from diffusify.io.streamcopy import StreamCopy

    out = Path(output)
    suffix = out.suffix.lower()
    if not parts:
        raise MediaError(f"{out}: nothing to join")
    if suffix not in CONTAINERS:
        raise MediaError(f"{out}: unsupported output extension '{suffix}'")
    if out.exists() and not overwrite:
        raise MediaError(f"{out}: exists; pass --overwrite to replace it")
    prepare_output(out)
    tmp = out.with_name(f".{out.stem}.joining{suffix}")
    listing = out.with_name(f".{out.stem}.joining.ffconcat")
    listing.write_text("ffconcat version 1.0\n" + "".join(_concat_line(Path(p)) + "\n" for p in parts),
                       encoding="utf-8")
    copy = StreamCopy(probe(copy_from), tmp, suffix, copy_range) if copy_from else None
    args = ["-v", "warning", "-nostats", "-y"]
    if copy is not None and copy.video_delay > 0:
        args += ["-itsoffset", f"{float(copy.video_delay):.6f}"]
    args += ["-f", "concat", "-safe", "0", "-i", file_arg(listing)]
    copy_args: list[str] = []
    if copy is not None:
        args += copy.input_args
        cut_inputs, copy_args = copy.maps()
        args += cut_inputs
    args += ["-map", "0:v:0", "-c:v", "copy", *copy_args]
    if suffix in (".mp4", ".m4v", ".mov"):
        args += ["-movflags", "+faststart"]
    args += ["-f", CONTAINERS[suffix], file_arg(tmp)]
    proc = FFmpegProcess(args)
    try:
        rc = proc.finish()
        if rc != 0:
            raise MediaError(f"{out}: joining {len(parts)} segments failed (ffmpeg exit {rc}): {proc.tail()}")
        os.replace(tmp, out)
    finally:
        proc.close_log()
        if copy is not None:
            copy.remove_scratch()
        for p in (tmp, listing):
            if p.exists():
                p.unlink()
    return list(copy.warnings) if copy is not None else []
