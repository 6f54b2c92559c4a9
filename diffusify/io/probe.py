"""Media probing with the ffmpeg binary alone (there is no ffprobe).

Two things come out of a single ffmpeg run: the stream description that ffmpeg prints for its input on stderr,
and, on stdout, one ``framecrc`` line per packet of the first video stream. The packets are demuxed but not
decoded, so probing a long file is fast, and their timestamps give the exact frame count, the exact frame rate
and the per-frame presentation times.

No torch or numpy here: validation probes every source before anything heavy is imported.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from diffusify.core.stream import ColorInfo, StreamInfo
from diffusify.io.errors import MediaError
from diffusify.io.ffmpeg import file_arg, last_lines, run_ffmpeg
from diffusify.io.formats import is_gray_pix_fmt, is_rgb_pix_fmt, pix_fmt_bit_depth
from diffusify.io.paths import require_regular

__all__ = ["MediaInfo", "MediaStream", "probe", "clear_probe_cache"]

# Rates worth snapping to, so that 29.97 comes out as exactly 30000/1001.
COMMON_RATES: tuple[Fraction, ...] = tuple(
    sorted(
        {
            Fraction(n)
            for n in (1, 2, 5, 6, 8, 10, 12, 15, 16, 18, 20, 24, 25, 30, 48, 50, 60, 72, 90, 96, 100, 120)
        }
        | {Fraction(n) for n in (144, 150, 180, 200, 240, 300)}
        | {Fraction(25, 2)}
        | {Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120, 240)}
    )
)

_NOPTS = -(2**63)
# How ffmpeg prints a stream's flags at the end of its line, and the names -disposition takes.
_DISPOSITIONS = {
    name.replace("_", " ").replace("non diegetic", "non-diegetic"): name
    for name in (
        "default", "dub", "original", "comment", "lyrics", "karaoke", "forced", "hearing_impaired",
        "visual_impaired", "clean_effects", "captions", "descriptions", "metadata", "dependent", "non_diegetic",
    )
}  # fmt: skip
_PARENS = re.compile(r"\(([^()]*)\)")
_STREAM = re.compile(
    r"^\s*Stream #\d+:(?P<index>\d+)(?:\[[^\]]*\])?(?:\((?P<lang>[^)]*)\))?: "
    r"(?P<kind>Video|Audio|Subtitle|Attachment|Data): (?P<rest>.*)$"
)
_INPUT = re.compile(r"^Input #0, (?P<format>.+?), from '")
_DURATION = re.compile(r"^\s*Duration: (?P<duration>[\d:.]+|N/A)(?:, start: (?P<start>-?[\d.]+))?")
_CHAPTER = re.compile(r"^\s*Chapter #\d+:\d+: ")
_ROTATION = re.compile(r"^\s+(?:Display Matrix|displaymatrix): rotation of (?P<degrees>-?[\d.]+) degrees", re.I)
_METADATA_ENTRY = re.compile(r"^(?P<indent>\s+)(?P<key>\w[\w ]*?)\s*: (?P<value>.*)$")
_TB = re.compile(r"^#tb (\d+): (\d+)/(\d+)")
# The showinfo filter's line for a frame, with its pts in the stream's time base (with -copyts); the first match
# in a log is the first frame's.
SHOWINFO_PTS = re.compile(r"Parsed_showinfo_\d+ @ [^\]]*\] n:\s*\d+\s+pts:\s*(-?\d+)")
# How ffmpeg prints interlaced field order, and its -field_order names.
_FIELD_ORDERS = (("top first", "tt"), ("bottom first", "bb"), ("top coded first", "tb"), ("bottom coded first", "bt"))
_FIELD_WORDS = ("progressive", "top first", "bottom first", "top coded first", "bottom coded first")
_CHROMA_WORDS = ("left", "center", "topleft", "top", "bottomleft", "bottom", "unspecified")


@dataclass(frozen=True)
class MediaStream:
    """One stream of a media file, as listed by ffmpeg.

    Attributes:
        index: stream index in the file (what ``-map 0:INDEX`` selects).
        kind: ``video``, ``audio``, ``subtitle``, ``attachment`` or ``data``.
        codec: codec name (``h264``, ``aac``, ``subrip``, ``ttf``...).
        language: ISO 639 language tag, None when absent or ``und``.
        title: the stream's title tag, None when absent.
        attached_pic: a video stream that is cover art rather than footage.
        disposition: the stream's flags as ffmpeg's ``-disposition`` names them (``default``, ``forced``,
            ``hearing_impaired``...).
    """

    index: int
    kind: str
    codec: str
    language: str | None = None
    title: str | None = None
    attached_pic: bool = False
    disposition: tuple[str, ...] = ()


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learns about a media file.

    Attributes:
        path: the probed path, as given.
        format: container format name(s) as ffmpeg reports them (``matroska,webm``, ``mov,mp4,m4a,3gp,3g2,mj2``).
        duration: container duration in seconds, None when unknown.
        start_time: container start time in seconds (timestamps of all streams are relative to it).
        video: description of the first video stream, None when the file has none.
        video_codec: codec of that stream.
        pix_fmt: its pixel format.
        timestamps: exact presentation time of every video frame in seconds, relative to the first frame, in
            presentation order. Empty when the packets carry no usable timestamps.
        streams: every stream of the file.
        chapters: number of chapters.
        video_index: index of the video stream in the file, None without video.
        video_start: presentation time of the first video frame on the file's own timeline (as stored, not
            relative to ``start_time``), in seconds; ``-seek_timestamp 1 -ss`` positions use this timeline.
        time_base: time base of the video timestamps.
        video_duration: first video frame to the end of the last one (its own duration included), in seconds.
        rotation: the video's display rotation in degrees (phones store portrait video as landscape frames plus
            this tag). ffmpeg turns the decoded frames upright, and ``video`` describes them upright: a quarter
            turn swaps its width and height.
        field_order: ``tt``/``bb`` (top or bottom field first) or ``tb``/``bt`` for interlaced video, None for
            progressive or unknown.
    """

    path: str
    format: str
    duration: float | None
    start_time: float
    video: StreamInfo | None
    video_codec: str | None
    pix_fmt: str | None
    timestamps: tuple[Fraction, ...]
    streams: tuple[MediaStream, ...]
    chapters: int
    video_index: int | None = None
    video_start: Fraction = Fraction(0)
    time_base: Fraction | None = None
    video_duration: Fraction | None = None
    rotation: float = 0.0
    field_order: str | None = None

    def streams_of(self, kind: str) -> tuple[MediaStream, ...]:
        """The streams of one kind (``audio``, ``subtitle``...)."""
        return tuple(s for s in self.streams if s.kind == kind)

    def frame_time(self, index: int) -> Fraction:
        """Presentation time of a frame relative to the first one, extrapolated past the known timestamps.

        Args:
            index: 0-based frame index in the file.

        Returns:
            Time in seconds.
        """
        fps = self.video.fps if self.video is not None and self.video.fps else Fraction(25)
        if not self.timestamps:
            return index / fps
        if index < len(self.timestamps):
            return self.timestamps[index]
        return self.timestamps[-1] + (index - len(self.timestamps) + 1) / fps


_cache: dict[tuple[str, int, int], MediaInfo] = {}
_cache_lock = threading.Lock()


def clear_probe_cache() -> None:
    """Forget every cached probe result."""
    with _cache_lock:
        _cache.clear()


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe a media file: container, streams, and the exact timing of its first video stream.

    Results are cached per (path, modification time, size), so probing the same file again is free until it
    changes.

    Args:
        path: the file to probe.

    Returns:
        The file's :class:`MediaInfo`.

    Raises:
        MediaError: the file is missing or ffmpeg cannot read it; the message carries ffmpeg's reason.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise MediaError(f"{p}: no such file") from None
    except OSError as exc:
        raise MediaError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if p.is_dir():
        raise MediaError(f"{p}: is a folder, not a media file")
    require_regular(p, "a media input")
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and cached.path == str(path):
        return cached
    info = _probe_uncached(p, str(path))
    with _cache_lock:
        _cache[key] = info
    return info


def _probe_uncached(p: Path, shown: str) -> MediaInfo:
    # "V" (capital) skips cover art; "?" keeps audio-only files from failing the mapping.
    # -copyts keeps the stored timestamps, so frame times can be matched to absolute seek positions.
    args = ["-copyts", "-i", file_arg(p), "-map", "0:V:0?", "-c", "copy", "-f", "framecrc", "-"]
    proc = run_ffmpeg(args, check=False)
    log = proc.stderr.decode("utf-8", "replace")
    header = _input_section(log)
    if not header:
        raise MediaError(f"{shown}: not a readable media file ({last_lines(log, 1)})")
    fmt, duration, start, streams, chapters, video_line, rotation = _parse_header(header)
    if proc.returncode != 0 and video_line is not None:
        raise MediaError(f"{shown}: ffmpeg cannot demux the video ({last_lines(log, 1)})")

    video: StreamInfo | None = None
    video_codec = pix_fmt = None
    timestamps: tuple[Fraction, ...] = ()
    video_index = None
    video_start = Fraction(0)
    time_base = None
    video_duration = None
    field_order = None
    if video_line is not None:
        video_index, rest = video_line
        parsed = _parse_video(rest)
        video_codec, pix_fmt, field_order = parsed.codec, parsed.pix_fmt, parsed.field_order
        time_base, packets = _parse_framecrc(proc.stdout.decode("ascii", "replace"))
        ticks, last_duration = _presentation_ticks(packets)
        # High bit depth may be HDR: its mastering metadata travels with the frames, and some files tag primaries
        # and transfer only in the bitstream.
        deep = bool(pix_fmt) and pix_fmt_bit_depth(pix_fmt) > 8 and not (is_rgb_pix_fmt(pix_fmt) or is_gray_pix_fmt(pix_fmt))
        # A cut made at an open-GOP keyframe (x265's default; `ffmpeg -ss -c copy` makes them) starts with pictures
        # that refer to the GOP before: decoders drop them, and the demuxer's times for them are missing, repeated
        # or earlier than the keyframe's. The decoder knows which frames come out.
        suspect = _suspect_head(packets) if ticks else 0
        decoded = _decode_head(p, suspect + 32 if suspect else 1) if suspect or deep else ""
        color = _frame_color(decoded, parsed.color) if deep else parsed.color
        head = [int(m.group(1)) for m in SHOWINFO_PTS.finditer(decoded)] if suspect else []
        if head:
            # the head's times from the decode, the rest from the packets
            ticks = head + [t for t in ticks if t > head[-1]]
        if ticks and time_base:
            video_start = ticks[0] * time_base
            timestamps = tuple(
                Fraction((t - ticks[0]) * time_base.numerator, time_base.denominator) for t in ticks
            )
        frames = len(ticks) if ticks else (len(packets) or None)
        fps, vfr = _frame_rate(ticks, last_duration, time_base, parsed.fps)
        if timestamps and time_base:
            last = last_duration * time_base if last_duration else 1 / fps
            video_duration = timestamps[-1] + last
        width, height, sar = parsed.width, parsed.height, parsed.sar
        if round(rotation) % 180 == 90:
            # ffmpeg's autorotation transposes quarter-turned video (within a degree, as ffmpeg decides)
            width, height, sar = height, width, 1 / sar
        video = StreamInfo(
            width=width,
            height=height,
            fps=fps,
            frames=frames,
            channels=3,
            bit_depth=pix_fmt_bit_depth(pix_fmt) if pix_fmt else 8,
            sar=sar,
            color=color,
            vfr=vfr,
        )

    return MediaInfo(
        path=shown,
        format=fmt,
        duration=duration,
        start_time=start,
        video=video,
        video_codec=video_codec,
        pix_fmt=pix_fmt,
        timestamps=timestamps,
        streams=streams,
        chapters=chapters,
        video_index=video_index,
        video_start=video_start,
        time_base=time_base,
        video_duration=video_duration,
        rotation=rotation,
        field_order=field_order,
    )


def _input_section(log: str) -> list[str]:
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if _INPUT.match(line):
            section = [line]
            for follow in lines[i + 1 :]:
                # The input dump is indented; the output dump and mapping that follow are not.
                if follow and not follow[0].isspace():
                    break
                section.append(follow)
            return section
    return []


def _parse_header(
    lines: list[str],
) -> tuple[str, float | None, float, tuple[MediaStream, ...], int, tuple[int, str] | None, float]:
    fmt = _INPUT.match(lines[0]).group("format")  # type: ignore[union-attr]
    duration: float | None = None
    start = 0.0
    chapters = 0
    entries: list[dict[str, object]] = []
    video_line: tuple[int, str] | None = None
    rotation = 0.0
    last_stream: dict[str, object] | None = None  # side data follows its stream line, after the metadata
    current: dict[str, object] | None = None
    current_indent = 0
    for line in lines[1:]:
        if (m := _ROTATION.match(line)) and last_stream is not None and video_line is not None:
            if last_stream["index"] == video_line[0]:
                rotation = float(m.group("degrees"))
            continue
        if m := _DURATION.match(line):
            if m.group("duration") != "N/A":
                h, mnt, s = m.group("duration").split(":")
                duration = int(h) * 3600 + int(mnt) * 60 + float(s)
            if m.group("start"):
                start = float(m.group("start"))
            continue
        if _CHAPTER.match(line):
            chapters += 1
            current = last_stream = None
            continue
        if m := _STREAM.match(line):
            kind = m.group("kind").lower()
            rest = m.group("rest")
            lang = m.group("lang")
            attached = "(attached pic)" in rest
            current = {
                "index": int(m.group("index")),
                "kind": kind,
                "codec": rest.split(",")[0].split(" ")[0].strip(),
                "language": None if lang in (None, "und") else lang,
                "title": None,
                "attached_pic": attached,
                "disposition": tuple(
                    _DISPOSITIONS[flag] for flag in _PARENS.findall(rest) if flag in _DISPOSITIONS
                ),
            }
            current_indent = len(line) - len(line.lstrip())
            entries.append(current)
            last_stream = current
            if kind == "video" and not attached and video_line is None:
                video_line = (int(m.group("index")), rest)
            continue
        if current is not None and (m := _METADATA_ENTRY.match(line)):
            # Only the metadata block nested under the stream line belongs to it.
            if len(m.group("indent")) <= current_indent:
                current = None
            elif m.group("key").strip().lower() == "title":
                current["title"] = m.group("value").strip()
            elif m.group("key").strip().lower() == "name" and current["title"] is None:
                current["title"] = m.group("value").strip()  # mp4/mov keep a track's title as its name
    streams = tuple(MediaStream(**e) for e in entries)  # type: ignore[arg-type]
    return fmt, duration, start, streams, chapters, video_line, rotation


@dataclass(frozen=True)
class _VideoLine:
    codec: str
    pix_fmt: str | None
    width: int
    height: int
    sar: Fraction
    fps: Fraction | None
    color: ColorInfo
    field_order: str | None = None


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return parts


def _parse_video(rest: str) -> _VideoLine:
    parts = _split_top_level(rest)
    codec = parts[0].split(" ")[0]
    pix_fmt = None
    width = height = 0
    sar = Fraction(1)
    fps = tbr = None
    color = ColorInfo()
    field_order = None
    for part in parts[1:]:
        if width == 0 and (m := re.match(r"^(\d+)x(\d+)", part)):
            width, height = int(m.group(1)), int(m.group(2))
            if s := re.search(r"SAR (\d+):(\d+)", part):
                num, den = int(s.group(1)), int(s.group(2))
                if num > 0 and den > 0:
                    sar = Fraction(num, den)
        elif pix_fmt is None and width == 0 and (m := re.match(r"^([a-z][a-z0-9_]*)(?:\((.*)\))?$", part)):
            pix_fmt = m.group(1)
            color = _parse_color(m.group(2) or "", pix_fmt)
            tokens = [t.strip() for t in (m.group(2) or "").split(",")]
            field_order = next((order for words, order in _FIELD_ORDERS if any(t.startswith(words) for t in tokens)), None)
        elif m := re.match(r"^([\d.]+)(k?) fps$", part):
            fps = _printed_rate(m.group(1), m.group(2))
        elif m := re.match(r"^([\d.]+)(k?) tbr$", part):
            tbr = _printed_rate(m.group(1), m.group(2))
    # A separate "SAR a:b DAR c:d" part appears for codecs that print it outside brackets.
    for part in parts[1:]:
        if s := re.match(r"^SAR (\d+):(\d+)", part):
            num, den = int(s.group(1)), int(s.group(2))
            if num > 0 and den > 0:
                sar = Fraction(num, den)
    return _VideoLine(codec, pix_fmt, width, height, sar, fps or tbr, color, field_order)


def _known(value: str | None) -> str | None:
    """A colour tag, None for ffmpeg's words for no tag."""
    return None if value in (None, "unknown", "reserved", "unspecified") else value


def _parse_color(inside: str, pix_fmt: str) -> ColorInfo:
    rng = matrix = primaries = transfer = None
    for token in (t.strip() for t in inside.split(",")):
        if not token:
            continue
        if token in ("tv", "pc"):
            rng = token
        elif "/" in token:
            matrix, primaries, transfer = token.split("/", 2)
        elif token.startswith(_FIELD_WORDS) or token in _CHROMA_WORDS:
            continue
        else:
            # ffmpeg prints one name when matrix, primaries and transfer agree.
            matrix = primaries = transfer = token
    if pix_fmt.startswith("yuvj") and rng is None:
        rng = "pc"

    if is_rgb_pix_fmt(pix_fmt) or is_gray_pix_fmt(pix_fmt):
        # An RGB source has no YUV matrix or range; carrying "gbr"/"pc" would make writers encode full-range YUV.
        return ColorInfo(None, None, _known(primaries), _known(transfer))
    return ColorInfo(_known(matrix), rng, _known(primaries), _known(transfer))


_FRAME_COLOR = re.compile(
    r"Parsed_showinfo_\d+ @ [^\]]*\] color_range:(\w+) color_space:(\w+) color_primaries:(\w+) color_trc:(\w+)"
)
_F = r"(-?[\d.]+)"
_PAIR = rf"\(\s*{_F}[,\s]\s*{_F}\)"  # ffmpeg prints "b(0.1500 0.0600)" without the comma
_MASTERING = re.compile(
    rf"side data - Mastering display metadata: has_primaries:(\d) has_luminance:(\d) "
    rf"r{_PAIR} g{_PAIR} b{_PAIR} wp{_PAIR} min_luminance={_F}, max_luminance={_F}"
)
_LIGHT = re.compile(r"side data - Content light level metadata: MaxCLL=(\d+), MaxFALL=(\d+)")


def _frame_color(log: str, color: ColorInfo) -> ColorInfo:
    """Fill in what the first decoded frame says about colour (from :func:`_decode_head`'s log): tags the
    container lacks, HDR10 metadata."""
    if m := _FRAME_COLOR.search(log):
        rng, matrix, primaries, transfer = (_known(v) for v in m.groups())
        color = dataclasses.replace(
            color,
            matrix=color.matrix or matrix,
            range=color.range or rng,
            primaries=color.primaries or primaries,
            transfer=color.transfer or transfer,
        )
    if (m := _MASTERING.search(log)) and m.group(1) == "1" and m.group(2) == "1":
        rx, ry, gx, gy, bx, by, wx, wy, low, high = (float(v) for v in m.groups()[2:])
        color = dataclasses.replace(color, mastering=(rx, ry, gx, gy, bx, by, wx, wy, high, low))
    if m := _LIGHT.search(log):
        color = dataclasses.replace(color, light=(int(m.group(1)), int(m.group(2))))
    return color


def _printed_rate(value: str, kilo: str) -> Fraction:
    rate = Fraction(value) * (1000 if kilo else 1)
    for common in COMMON_RATES:
        # ffmpeg prints two decimals: 29.97, 23.98, 59.94.
        if abs(common - rate) <= Fraction(1, 100) * (1000 if kilo else 1):
            return common
    return rate.limit_denominator(1001)


def _parse_framecrc(text: str) -> tuple[Fraction | None, list[tuple[int, int, int]]]:
    """Time base and (pts, dts, duration) of every packet that is not flagged as discarded."""
    time_base = None
    packets: list[tuple[int, int, int]] = []
    for line in text.splitlines():
        if line.startswith("#"):
            if m := _TB.match(line):
                time_base = Fraction(int(m.group(2)), int(m.group(3)))
            continue
        fields = line.split(",")
        if len(fields) < 6:
            continue
        try:
            dts, pts, dur = int(fields[1]), int(fields[2]), int(fields[3])
        except ValueError:
            continue
        flags = 1
        for extra in fields[6:]:
            extra = extra.strip()
            if extra.startswith("F="):
                flags = int(extra[2:], 16)
        # Packets before an edit list's start are demuxed but never shown.
        if flags & 4:
            continue
        packets.append((pts, dts, dur))
    return time_base, packets


def _packet_time(packet: tuple[int, int, int]) -> int:
    pts, dts, _ = packet
    return pts if pts != _NOPTS else dts


def _suspect_head(packets: list[tuple[int, int, int]]) -> int:
    """How many packets from the start, in decode order, the demuxer's timestamps may misdescribe (0 for none):
    up to the last one without a pts among ones that have it, with a repeated pts, or shown before the first."""
    first = _packet_time(packets[0])
    mixed = any(pts == _NOPTS for pts, _, _ in packets) and any(pts != _NOPTS for pts, _, _ in packets)
    seen: set[int] = set()
    end = 0
    for i, (pts, _, _) in enumerate(packets):
        if pts == _NOPTS:
            if mixed:
                end = i + 1
            continue
        if pts in seen or pts < first:
            end = i + 1
        seen.add(pts)
    return end


def _decode_head(path: Path, frames: int) -> str:
    """ffmpeg's showinfo log of the first ``frames`` frames the decoder outputs (stored timestamps kept)."""
    args = ["-v", "info", "-copyts", "-i", file_arg(path), "-map", "0:V:0", "-vf", "showinfo", "-frames:v", str(frames)]
    return run_ffmpeg([*args, "-f", "null", "-"], check=False).stderr.decode("utf-8", "replace")


def _presentation_ticks(packets: list[tuple[int, int, int]]) -> tuple[list[int], int | None]:
    """Sorted presentation times in time-base ticks, and the duration of the last shown frame."""
    ticks: list[int] = []
    durations: dict[int, int] = {}
    for pts, dts, dur in packets:
        t = pts if pts != _NOPTS else dts
        if t == _NOPTS:
            return [], None
        ticks.append(t)
        durations[t] = dur
    ticks.sort()
    last = durations.get(ticks[-1]) if ticks else None
    return ticks, (last if last and last > 0 else None)


def _frame_rate(
    ticks: list[int], last_duration: int | None, time_base: Fraction | None, printed: Fraction | None
) -> tuple[Fraction, bool]:
    """Exact frame rate and whether the timestamps are variable.

    A constant-rate clip in a container with coarse timestamps (Matroska stores milliseconds) has deltas that
    jitter by one tick; it is constant when one rate reproduces every timestamp to within the container's
    rounding plus an eighth of a frame. Anything else (dropped frames, setpts-made clips, mixed cadences) is
    variable.
    """
    fallback = printed or Fraction(25)
    if len(ticks) < 2 or time_base is None or ticks[-1] <= ticks[0]:
        return fallback, False
    span = (ticks[-1] - ticks[0]) * time_base
    n = len(ticks)
    average = (n - 1) / span
    # The median step covers uncommon constant rates that neither list has.
    steps = sorted(b - a for a, b in zip(ticks, ticks[1:], strict=False))
    median_step = steps[len(steps) // 2]
    groups: list[list[Fraction]] = [list(COMMON_RATES) + ([printed] if printed else [])]
    if median_step > 0:
        groups.append([1 / (median_step * time_base)])
    groups.append([average.limit_denominator(1001)])

    def fits(rate: Fraction) -> bool:
        frame = 1 / rate
        tolerance = min(time_base, frame / 2) + frame / 8
        # Residuals scaled to integers: Fraction arithmetic per frame is too slow for feature-length files.
        scale = time_base.denominator * rate.numerator
        a, b = time_base.numerator * rate.numerator, rate.denominator * time_base.denominator
        first = ticks[0]
        residuals = [(t - first) * a - i * b for i, t in enumerate(ticks)]
        return max(residuals) - min(residuals) <= tolerance * scale

    for group in groups:
        # Closest first, so 30000/1001 wins over 30 for a 29.97 clip.
        for rate in sorted(set(group), key=lambda r: abs(r - average)):
            if abs(rate - average) > average / 50:
                break
            if fits(rate):
                return rate, False
    # Variable: the average rate over the whole clip, counting the last frame's own duration.
    total = span + (last_duration * time_base if last_duration else span / (n - 1))
    return (n / total).limit_denominator(100000), True
