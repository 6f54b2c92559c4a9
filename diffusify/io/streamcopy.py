"""Stream-copy policy: which of a source's other streams go into an encoded output, and how.

Beside the video it encodes, a :class:`~diffusify.io.writer.VideoWriter` can carry over the audio, subtitle and
attachment streams, chapters and metadata of a source. :class:`StreamCopy` decides, for the output's container,
which streams are copied, which are re-encoded (audio a muxer rejects, text subtitles mp4/mov/webm store in their
own format) and which are dropped with a warning, and cuts them to the written range of the source: an input seek
for the copied streams, and text subtitles cut to files of their own (:mod:`diffusify.io.subtitles`). It only
builds ffmpeg arguments; the writer puts them into its command.
"""

from __future__ import annotations

import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

from diffusify.io.codecs import CONTAINERS
from diffusify.io.errors import MediaError
from diffusify.io.ffmpeg import file_arg
from diffusify.io.probe import MediaInfo, MediaStream
from diffusify.io.subtitles import TEXT_CODECS, cut_text_subtitles

__all__ = ["StreamCopy"]


# Audio codecs a muxer rejects in stream copy, and what to re-encode them to.
# Lossless audio stays lossless (FLAC in mp4, ALAC in mov, PCM in avi).
_AUDIO_REJECTED: dict[str, dict[str, str]] = {
    "mp4": {"truehd": "flac"},
    "mov": {"flac": "alac", "truehd": "alac", "opus": "aac"},
    "avi": {"truehd": "pcm_s24le", "alac": "pcm_s24le", "opus": "aac", "vorbis": "aac"},
}
_WEBM_AUDIO = frozenset({"opus", "vorbis"})


class StreamCopy:
    """The ffmpeg arguments that copy a source's audio, subtitle and attachment streams, chapters and metadata.

    The source is ffmpeg input 1 (input 0 is the encoded video); cut subtitle files follow as inputs 2, 3...

    Args:
        source: probe result of the source.
        path: the output file, for messages.
        suffix: the output's extension (a key of :data:`~diffusify.io.codecs.CONTAINERS`).
        copy_range: ``(start, end)`` in seconds of the source's video timeline (relative to its first frame) to
            which the copied streams are trimmed; ``end`` None for the rest; None for the whole source.

    Attributes:
        input_args: options and ``-i`` of the source input.
        video_delay: the video's start after the copied streams' (for ``-itsoffset`` on the video input).
        warnings: one line per stream re-encoded or dropped, filled by :meth:`maps`.

    Raises:
        MediaError: an empty copy range.
    """

    def __init__(
        self, source: MediaInfo, path: Path, suffix: str, copy_range: tuple[Fraction, Fraction | None] | None
    ) -> None:
        self.source = source
        self.path = path
        self._suffix = suffix
        self._muxer = CONTAINERS[suffix]
        self.warnings: list[str] = []
        self._copy_seeks = False
        self._copy_cut = Fraction(0)
        self._copy_length: Fraction | None = None
        self.video_delay = Fraction(0)  # the video's start after the copied streams' (-itsoffset)
        self._scratch: Path | None = None  # cut subtitle files, removed when the encoder has finished
        self.input_args = self._copy_input(source, copy_range)

    def _copy_input(
        self, source: MediaInfo, copy_range: tuple[Fraction, Fraction | None] | None
    ) -> list[str]:
        args: list[str] = []
        # Where the video starts in the container (whose other streams may start before it, at 0).
        offset = max(Fraction(0), source.video_start - Fraction(source.start_time).limit_denominator(1000000))
        begin, end = (Fraction(copy_range[0]), copy_range[1]) if copy_range is not None else (Fraction(0), None)
        if begin > 0:
            # Cut: the copied streams start at the first kept frame, as the video does.
            self._copy_seeks = True
            # -ss counts from the container start; the range is on the video's timeline.
            self._copy_cut = begin + offset
            args += ["-ss", f"{float(self._copy_cut):.6f}"]
        else:
            # Whole from the start: the video keeps its place after the other streams' lead-in.
            self.video_delay = offset
        if end is not None:
            length = Fraction(end) - begin
            if length <= 0:
                raise MediaError(f"{self.path}: empty copy range {float(begin)}..{float(end)} s")
            self._copy_length = length
            args += ["-t", f"{float(length + self.video_delay):.6f}"]
        return [*args, "-i", file_arg(source.path)]

    def maps(self) -> tuple[list[str], list[str]]:
        """Inputs, maps and codec options for the source's audio, subtitle and attachment streams.

        Text subtitles behind a cut come from files of their own (see :mod:`diffusify.io.subtitles`), so that the
        line on screen at the cut is kept; they take their tags and flags from the source's stream. Those files
        stay until :meth:`remove_scratch`.

        Returns:
            ``(extra inputs, output options)``.
        """
        source = self.source
        inputs: list[str] = []
        maps: list[str] = []
        codecs: list[str] = []
        metadata: list[str] = []
        out_index = 1
        muxer = self._muxer
        name = source.path

        cut: dict[int, list[str]] = {}
        text = [(st.index, st.codec) for st in source.streams if st.kind == "subtitle" and st.codec in TEXT_CODECS]
        if self._copy_seeks and text and muxer in ("matroska", "mp4", "mov", "webm"):
            self._scratch = Path(tempfile.mkdtemp(prefix="diffusify-subtitles-"))
            cut = cut_text_subtitles(name, text, cut=self._copy_cut, length=self._copy_length, folder=self._scratch)

        def add(stream: MediaStream, codec: str) -> None:
            nonlocal out_index
            # Output stream 0 is the video from the pipe; the copied streams follow in mapping order.
            if stream.index in cut:
                inputs.extend(cut[stream.index])
                maps.extend(["-map", f"{1 + inputs.count('-i')}:0"])
                metadata.extend([f"-disposition:{out_index}", "+".join(stream.disposition) or "0"])
            else:
                maps.extend(["-map", f"1:{stream.index}"])
            codecs.extend([f"-c:{out_index}", codec])
            # Stream tags (language, title, an attachment's file name) from the source's stream. Once one stream
            # is mapped by hand ffmpeg copies none by itself, so every copied stream gets its mapping.
            metadata.extend([f"-map_metadata:s:{out_index}", f"1:s:{stream.index}"])
            out_index += 1

        for st in source.streams:
            if st.kind == "audio":
                target = "copy"
                if muxer == "webm" and st.codec not in _WEBM_AUDIO:
                    target = "libopus"
                elif st.codec in _AUDIO_REJECTED.get(muxer, {}):
                    target = _AUDIO_REJECTED[muxer][st.codec]
                if target != "copy":
                    self.warnings.append(
                        f"{self.path}: {name} audio stream {st.index} ({st.codec}) cannot be stored in "
                        f"{self._suffix}; re-encoded to {target}"
                    )
                add(st, target)
            elif st.kind == "subtitle":
                if muxer == "matroska":
                    add(st, "copy")
                elif muxer in ("mp4", "mov") and st.codec in TEXT_CODECS:
                    add(st, "mov_text")
                elif muxer == "webm" and st.codec in TEXT_CODECS:
                    add(st, "webvtt")
                else:
                    self.warnings.append(
                        f"{self.path}: {name} subtitle stream {st.index} ({st.codec}) cannot be stored in "
                        f"{self._suffix}; dropped (use .mkv to keep it)"
                    )
            elif st.kind == "attachment":
                if muxer == "matroska":
                    add(st, "copy")
                else:
                    self.warnings.append(
                        f"{self.path}: {name} attachment stream {st.index} ({st.codec}) cannot be stored in "
                        f"{self._suffix}; dropped (use .mkv to keep it)"
                    )
        args = maps + codecs + metadata + ["-map_metadata", "1", "-map_chapters", "1"]
        if self._copy_seeks:
            # The seek lands on a keyframe before the cut; without this the copied packets from before it are
            # kept, and the muxer shifts every stream, video included, to make their times non-negative.
            args += ["-copypriorss", "0"]
        video = next((st for st in source.streams if st.index == source.video_index), None)
        if video is not None and video.language:
            args += ["-metadata:s:v:0", f"language={video.language}"]
        return inputs, args

    def remove_scratch(self) -> None:
        """Remove the cut subtitle files, once the encoder has finished with them. Safe to call more than once."""
        scratch, self._scratch = self._scratch, None
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
