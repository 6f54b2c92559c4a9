"""Probing media files with ffmpeg alone: streams, exact rates and timestamps, colour tags, errors."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from diffusify.core.stream import ColorInfo
from diffusify.io import MediaError, available_encoders, probe
from diffusify.io.formats import pix_fmt_bit_depth
from tests._media import ffmpeg, make_av_clip, make_clip

VFR_SETPTS = "settb=1/1000,setpts='(N + 0.5*gte(N,4) + 1.5*gte(N,9) + 0.25*gte(N,14))/(25*TB)'"
# A millisecond encoder time base, or the half-frame offsets would be rounded to the 1/25 grid.
VFR_ARGS = ("-fps_mode", "vfr", "-enc_time_base", "1/1000")


def test_ntsc_rate_counts_and_tags_in_mkv(tmp_path: Path) -> None:
    clip = make_clip(
        tmp_path / "ntsc.mkv",
        rate="30000/1001",
        frames=30,
        vf="setsar=4/3",
        extra=(
            "-colorspace",
            "bt709",
            "-color_primaries",
            "bt709",
            "-color_trc",
            "bt709",
            "-color_range",
            "tv",
        ),
    )
    info = probe(clip)
    v = info.video
    assert v is not None
    # Matroska stores milliseconds: the 1-tick jitter must not read as a variable rate.
    assert v.fps == Fraction(30000, 1001)
    assert not v.vfr
    assert v.frames == 30
    assert (v.width, v.height) == (64, 48)
    assert v.sar == Fraction(4, 3)
    assert v.bit_depth == 8
    assert v.color.matrix == "bt709" and v.color.range == "tv"
    assert info.video_codec == "h264" and info.pix_fmt == "yuv420p"
    assert "matroska" in info.format
    assert info.time_base == Fraction(1, 1000)
    assert len(info.timestamps) == 30
    assert info.timestamps[0] == 0
    # Each stored time is the exact one rounded to the millisecond.
    for i, t in enumerate(info.timestamps):
        assert abs(t - i * Fraction(1001, 30000)) <= Fraction(1, 1000)
    assert info.duration == pytest.approx(1.0, abs=0.02)


def test_pal_mp4_with_bframes(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "pal.mp4", rate="25", frames=20, extra=("-bf", "3", "-g", "8"))
    info = probe(clip)
    assert info.video is not None
    assert info.video.fps == 25 and not info.video.vfr and info.video.frames == 20
    assert info.timestamps == tuple(Fraction(i, 25) for i in range(20))
    assert info.video_duration == Fraction(20, 25)
    # Untagged: the probe reports what the file says, the reader decides the defaults.
    assert info.video.color == ColorInfo()


def test_ten_bit_hdr_tags(tmp_path: Path) -> None:
    clip = make_clip(
        tmp_path / "hdr.mkv",
        codec="ffv1",
        pix_fmt="yuv420p10le",
        color=("bt2020nc", "tv"),
        tags={"color_primaries": "bt2020", "color_trc": "smpte2084"},
    )
    info = probe(clip)
    assert info.video is not None
    assert info.video.bit_depth == 10
    assert info.video.color == ColorInfo("bt2020nc", "tv", "bt2020", "smpte2084")


@pytest.mark.parametrize(
    ("name", "codec", "extra", "expected", "first"),
    [
        ("tv.mpg", "mpeg2video", ("-flags", "+ildct+ilme", "-field_order", "bb"), "bb", "bottom"),
        # x264 codes the bottom field first and has the top one shown first
        ("tv.mkv", "libx264", ("-flags", "+ildct+ilme", "-x264-params", "tff=1"), "bt", "top"),
        ("film.mkv", "libx264", (), None, None),
    ],
)
def test_field_order_and_the_woven_fields_warning(
    tmp_path: Path, name: str, codec: str, extra: tuple[str, ...], expected: str | None, first: str | None
) -> None:
    from diffusify.graph.validate import validate_text

    clip = make_clip(tmp_path / name, size="64x48", frames=4, codec=codec, extra=extra)
    assert probe(clip).field_order == expected
    for mode in ("auto", "off"):
        text = f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{clip}", deinterlace: {mode}}}}}
  out: {{type: video.write, input: src, with: {{path: "{tmp_path / 'out.mkv'}"}}}}
"""
        warnings = [p.message for p in validate_text(text).warnings]
        # deinterlaced by default; keeping the fields of an interlaced source is worth a word
        assert warnings == ([f"{clip} is interlaced ({first} field first) and deinterlace is off: its frames go "
                             "through as woven fields, which resizing and models smear"]
                            if expected and mode == "off" else [])


def test_full_range_bt601(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "pc.mkv", codec="ffv1", color=("smpte170m", "pc"))
    info = probe(clip)
    assert info.video is not None
    assert info.video.color.matrix == "smpte170m" and info.video.color.range == "pc"


def test_stream_listing_and_chapters(tmp_path: Path) -> None:
    info = probe(make_av_clip(tmp_path / "av.mkv", tmp_path))
    kinds = [(s.kind, s.codec, s.language) for s in info.streams]
    assert kinds[0][0] == "video"
    assert ("audio", "aac", "eng") in kinds
    assert ("subtitle", "subrip", "fre") in kinds
    assert [s.kind for s in info.streams].count("attachment") == 1
    sub = info.streams_of("subtitle")[0]
    assert sub.title == "French subs"
    assert info.chapters == 2
    assert info.video_index == 0


def test_vfr_detected_with_exact_timestamps(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "vfr.mkv", frames=20, vf=VFR_SETPTS, extra=VFR_ARGS)
    info = probe(clip)
    assert info.video is not None and info.video.vfr
    expected = [
        Fraction(i) + Fraction(1, 2) * (i >= 4) + Fraction(3, 2) * (i >= 9) + Fraction(1, 4) * (i >= 14)
        for i in range(20)
    ]
    assert len(info.timestamps) == 20
    for got, want in zip(info.timestamps, expected, strict=True):
        assert abs(got - want / 25) <= Fraction(1, 1000)
    # The average rate over the clip (last frame's own duration included) keeps frames / fps == duration.
    assert info.video.fps < 25


def test_single_image_and_audio_only(tmp_path: Path) -> None:
    png = make_clip(tmp_path / "one.png", codec="png", pix_fmt="rgb24", frames=1)
    info = probe(png)
    assert info.video is not None and info.video.frames == 1
    # RGB carries no YUV matrix or range, so writers will not encode full-range YUV from it.
    assert info.video.color.matrix is None and info.video.color.range is None
    wav = tmp_path / "tone.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.2", wav)
    audio = probe(wav)
    assert audio.video is None and audio.streams[0].kind == "audio"


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="nope.mkv: no such file"):
        probe(tmp_path / "nope.mkv")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(MediaError, match="junk.mp4"):
        probe(junk)
    with pytest.raises(MediaError, match="folder"):
        probe(tmp_path)


def test_cache_follows_file_changes(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mkv", frames=5, codec="ffv1")
    first = probe(clip)
    assert probe(clip) is first
    make_clip(clip, frames=7, codec="ffv1")
    assert probe(clip).video.frames == 7  # type: ignore[union-attr]


def test_pix_fmt_depths() -> None:
    cases = {
        "yuv420p": 8, "yuvj420p": 8, "nv12": 8, "rgb24": 8, "gbrp": 8, "yuv420p10le": 10, "p010le": 10,
        "yuv444p12le": 12, "gray16le": 16, "rgb48le": 16, "yuv420p9le": 10, "gbrp16le": 16,
    }  # fmt: skip
    for name, depth in cases.items():
        assert pix_fmt_bit_depth(name) == depth, name


def test_encoders_listed() -> None:
    enc = available_encoders()
    assert {"libx264", "ffv1", "png"} <= enc
    assert "=" not in enc


def test_import_is_light() -> None:
    code = (
        "import sys, diffusify.io, diffusify.io.probe, diffusify.io.images; "
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, "
        "[m for m in ('torch', 'numpy') if m in sys.modules]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
