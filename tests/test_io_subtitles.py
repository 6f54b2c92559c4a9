"""Text subtitles behind a cut: the line on screen at the cut stays, every other cue moves exactly."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from diffusify.io import VideoReader, VideoWriter, probe
from diffusify.io.ffmpeg import run_ffmpeg
from diffusify.io.subtitles import cut_cues
from tests._media import SRT, ffmpeg

SUBRIP = """1
00:00:01,000 --> 00:00:02,500
gone before the cut

2
00:00:02,900 --> 00:00:03,400
on screen at the cut
second line

3
00:00:03,200 --> 00:00:04,000
after the cut

4
00:00:09,999 --> 00:00:12,000
starts at the end of the span
"""


def test_subrip_cues_move_to_the_cut_and_are_numbered_anew() -> None:
    got = cut_cues(SUBRIP, "srt", Fraction(3), Fraction(6999, 1000))
    assert got == (
        "1\n00:00:00,000 --> 00:00:00,400\non screen at the cut\nsecond line\n\n"
        "2\n00:00:00,200 --> 00:00:01,000\nafter the cut\n"
    )
    # a span reaching past the last cue keeps it whole, hours and all
    assert "3\n00:00:06,999 --> 00:00:09,000\nstarts" in cut_cues(SUBRIP, "srt", Fraction(3), None)
    late = SUBRIP.replace("00:00:09,999 --> 00:00:12,000", "01:00:09,999 --> 01:00:12,000")
    assert "01:00:06,999 --> 01:00:09,000" in cut_cues(late, "srt", Fraction(3), None)


def test_ass_keeps_its_header_line_endings_and_centiseconds() -> None:
    ass = (
        "[Script Info]\r\nScriptType: v4.00+\r\n\r\n[V4+ Styles]\r\nStyle: Default,Arial,20\r\n\r\n[Events]\r\n"
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\r\n"
        "Dialogue: 0,0:00:01.00,0:00:02.50,Default,,0,0,0,,gone\r\n"
        "Dialogue: 1,0:00:02.90,0:00:03.40,Default,,0,0,0,,{\\i1}on screen, with a comma{\\i0}\r\n"
        "Comment: 0,0:00:03.20,0:00:04.00,Default,,0,0,0,,a note\r\n"
    )
    got = cut_cues(ass, "ass", Fraction(3), None)
    assert got == ass.replace("Dialogue: 0,0:00:01.00,0:00:02.50,Default,,0,0,0,,gone\r\n", "").replace(
        "0:00:02.90,0:00:03.40", "0:00:00.00,0:00:00.40"
    ).replace("0:00:03.20,0:00:04.00", "0:00:00.20,0:00:01.00")


def test_webvtt_keeps_header_notes_identifiers_and_settings() -> None:
    vtt = (
        "WEBVTT\n\nNOTE made by hand\n\nfirst\n00:02.900 --> 00:03.400 align:start line:10%\nhello\n\n"
        "00:00:03.200 --> 00:00:04.000\nworld\n"
    )
    assert cut_cues(vtt, "webvtt", Fraction(3), None) == (
        "WEBVTT\n\nNOTE made by hand\n\nfirst\n00:00:00.000 --> 00:00:00.400 align:start line:10%\nhello\n\n"
        "00:00:00.200 --> 00:00:01.000\nworld\n"
    )


@pytest.mark.parametrize(
    ("codec", "container", "kept_as"),
    [("ass", ".mkv", "ass"), ("webvtt", ".mkv", "webvtt"), ("mov_text", ".mp4", "subrip")],
)
def test_a_cut_keeps_the_line_on_screen_for_each_text_format(
    tmp_path: Path, codec: str, container: str, kept_as: str
) -> None:
    srt = tmp_path / "subs.srt"
    srt.write_text(SRT)  # 0-0.4 s "Hello", 0.4-0.9 s "World"
    src = tmp_path / f"src{container}"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-i", srt, "-map", "0:v", "-map", "1:s",
        "-frames:v", "25", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:s", codec,
        "-metadata:s:s:0", "language=fre", "-disposition:s:0", "default+forced", src,
    )  # fmt: skip
    info = probe(src)
    assert info.video is not None
    out = tmp_path / "cut.mkv"
    start = 5  # 0.2 s
    with (
        VideoReader(str(src), info, start=start) as reader,
        VideoWriter(out, info.video, copy_from=info, copy_range=(info.timestamps[start], None)) as writer,
    ):
        for frame in reader:
            writer.write(frame)
    cues = run_ffmpeg(["-v", "error", "-i", str(out), "-map", "0:s:0", "-c:s", "srt", "-f", "srt", "-"])
    assert cues.stdout.decode().replace("\r\n", "\n") == (
        "1\n00:00:00,000 --> 00:00:00,200\nHello\n\n2\n00:00:00,200 --> 00:00:00,700\nWorld\n\n"
    )
    subtitle = probe(out).streams_of("subtitle")[0]
    assert subtitle.codec == kept_as
    assert subtitle.language == "fre"
    assert "forced" in subtitle.disposition


def test_a_cut_past_every_cue_keeps_an_empty_subtitle_stream(tmp_path: Path) -> None:
    srt = tmp_path / "subs.srt"
    srt.write_text(SRT)  # every cue is over by 0.9 s
    src = tmp_path / "src.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-i", srt, "-map", "0:v", "-map", "1:s",
        "-frames:v", "50", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:s", "srt", src,
    )  # fmt: skip
    info = probe(src)
    assert info.video is not None
    out = tmp_path / "cut.mkv"
    with (
        VideoReader(str(src), info, start=30) as reader,
        VideoWriter(out, info.video, copy_from=info, copy_range=(info.timestamps[30], None)) as writer,
    ):
        for frame in reader:
            writer.write(frame)
    got = probe(out)
    assert got.video is not None and got.video.frames == 20
    assert [s.codec for s in got.streams_of("subtitle")] == ["subrip"]


def test_several_tracks_are_cut_in_one_pass_and_keep_their_order(tmp_path: Path) -> None:
    srt = tmp_path / "subs.srt"
    srt.write_text(SRT + "\n3\n00:00:01,500 --> 00:00:01,800\nLater\n")
    src = tmp_path / "src.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000",
        "-i", srt, "-i", srt, "-map", "0:v", "-map", "1:a", "-map", "2:s", "-map", "3:s", "-frames:v", "50",
        "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-c:s:0", "srt", "-c:s:1", "ass",
        "-metadata:s:s:0", "language=fre", "-metadata:s:s:1", "language=eng", src,
    )  # fmt: skip
    info = probe(src)
    assert info.video is not None
    out = tmp_path / "cut.mkv"
    start, end = 5, 30  # 0.2 s to 1.2 s: the third cue (1.5 s) is past the end
    copy_range = (info.timestamps[start], info.timestamps[end])
    with (
        VideoReader(str(src), info, start=start, end=end) as reader,
        VideoWriter(out, info.video, copy_from=info, copy_range=copy_range) as writer,
    ):
        for frame in reader:
            writer.write(frame)
    got = probe(out)
    assert [(s.kind, s.codec, s.language) for s in got.streams[1:]] == [
        ("audio", "aac", None), ("subtitle", "subrip", "fre"), ("subtitle", "ass", "eng"),
    ]  # fmt: skip
    for track in ("0:s:0", "0:s:1"):
        cues = run_ffmpeg(["-v", "error", "-i", str(out), "-map", track, "-c:s", "srt", "-f", "srt", "-"])
        assert cues.stdout.decode().replace("\r\n", "\n") == (
            "1\n00:00:00,000 --> 00:00:00,200\nHello\n\n2\n00:00:00,200 --> 00:00:00,700\nWorld\n\n"
        )
