"""Decoding: colour conversion by the probed tags, frame-exact ranges, high bit depth, errors and cleanup."""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusify.core.frame import Frame
from diffusify.core.stream import StreamInfo
from diffusify.io import MediaError, MediaInfo, VideoReader, VideoWriter, probe
from diffusify.io.ffmpeg import run_ffmpeg
from diffusify.io.formats import to_rgb_filter
from tests._media import count_decodable_frames, decode_planes, decode_rgb, ffmpeg, make_clip

SCALE_NAME = {"smpte170m": "smpte170m", "bt709": "bt709"}


def as_rgb255(frames: list) -> np.ndarray:
    return np.stack([f.data.permute(1, 2, 0).numpy().astype(np.float64) * 255 for f in frames])


def truth_rgb(tmp: Path, source: str, size: str, frames: int) -> np.ndarray:
    """The RGB picture the YUV test clips were made from, losslessly stored."""
    path = tmp / "truth.mkv"
    graph = f"{source}=size={size}:rate=25,format=rgb24"
    ffmpeg("-f", "lavfi", "-i", graph, "-frames:v", str(frames), "-c:v", "ffv1", "-pix_fmt", "rgb24", path)
    return decode_rgb(path)


def with_color(info: MediaInfo, **changes: str | None) -> MediaInfo:
    assert info.video is not None
    color = dataclasses.replace(info.video.color, **changes)
    return dataclasses.replace(info, video=info.video.replace(color=color))


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])
@pytest.mark.parametrize("rng", ["tv", "pc"])
@pytest.mark.parametrize("matrix", ["smpte170m", "bt709"])
def test_color_round_trip(tmp_path: Path, matrix: str, rng: str, pix_fmt: str) -> None:
    color_round_trip(tmp_path, matrix, rng, pix_fmt, "128x96")


@pytest.mark.parametrize(("matrix", "rng"), [("bt709", "tv"), ("smpte170m", "pc")])
def test_color_round_trip_of_sizes_that_are_not_whole_chroma_blocks(tmp_path: Path, matrix: str, rng: str) -> None:
    # 853x480 4:2:0 (16:9 at 480 lines) is common; zimg refuses such sizes, so another converter takes them
    color_round_trip(tmp_path, matrix, rng, "yuv420p", "127x95")


def color_round_trip(tmp_path: Path, matrix: str, rng: str, pix_fmt: str, size: str) -> None:
    n = 2
    width, height = (int(v) for v in size.split("x"))
    truth = truth_rgb(tmp_path, "colorspectrum", size, n)
    src = make_clip(
        tmp_path / "src.mkv", source="colorspectrum", size=size, frames=n, codec="ffv1", pix_fmt=pix_fmt,
        color=(matrix, rng),
    )  # fmt: skip
    info = probe(src)
    assert info.video is not None and info.video.color.matrix == matrix and info.video.color.range == rng

    frames = list(VideoReader(str(src), info))
    assert len(frames) == n
    assert frames[0].data.dtype == torch.float32 and frames[0].data.shape == (3, height, width)
    correct = np.abs(as_rgb255(frames) - truth).mean()
    assert correct <= 1.5

    # The test can fail: decoding with the other matrix, or the other range, is clearly off.
    other = "bt709" if matrix == "smpte170m" else "smpte170m"
    wrong_matrix = np.abs(
        as_rgb255(list(VideoReader(str(src), with_color(info, matrix=other)))) - truth
    ).mean()
    wrong_range = np.abs(
        as_rgb255(list(VideoReader(str(src), with_color(info, range="pc" if rng == "tv" else "tv")))) - truth
    ).mean()
    assert wrong_matrix > 3 * max(correct, 1.0)
    assert wrong_range > 3 * max(correct, 1.0)

    out = tmp_path / "out.mkv"
    with VideoWriter(out, info.video, codec="ffv1", pix_fmt=pix_fmt) as writer:
        for frame in frames:
            writer.write(frame)
    out_info = probe(out)
    assert out_info.video is not None
    assert out_info.video.color.matrix == matrix and out_info.video.color.range == rng
    assert out_info.pix_fmt == pix_fmt
    a = decode_rgb(src, matrix=SCALE_NAME[matrix], rng=rng)
    b = decode_rgb(out, matrix=SCALE_NAME[matrix], rng=rng)
    assert np.abs(a - b).mean() <= 1.5


@pytest.mark.parametrize(("size", "matrix"), [("160x120", "smpte170m"), ("1280x720", "bt709")])
def test_untagged_source_uses_resolution_default(tmp_path: Path, size: str, matrix: str) -> None:
    truth = truth_rgb(tmp_path, "colorspectrum", size, 1)
    src = tmp_path / "untagged.mkv"
    # Converted with the matrix a player would assume, but not tagged with it.
    vf = (
        f"scale=out_color_matrix={matrix}:out_range=tv:flags=accurate_rnd+full_chroma_int,format=yuv444p,"
        "setparams=colorspace=unknown"
    )
    ffmpeg("-f", "lavfi", "-i", f"colorspectrum=size={size},format=rgb24", "-frames:v", "1", "-vf", vf,
           "-c:v", "ffv1", src)  # fmt: skip
    info = probe(src)
    assert info.video is not None and info.video.color.matrix is None
    assert np.abs(as_rgb255(list(VideoReader(str(src), info))) - truth).mean() <= 1.5


def test_writer_tags_untagged_streams_bt709_limited(tmp_path: Path) -> None:
    truth = truth_rgb(tmp_path, "colorspectrum", "64x48", 1)
    frame_data = torch.from_numpy(truth[0] / 255).permute(2, 0, 1).float()
    out = tmp_path / "tagged.mp4"
    # crf 0 is lossless in x264.
    with VideoWriter(
        out, StreamInfo(64, 48, fps=Fraction(25)), codec="libx264", pix_fmt="yuv444p", crf=0
    ) as writer:
        writer.write(Frame(0, Fraction(0), frame_data))
    info = probe(out)
    assert info.video is not None and info.video.color.matrix == "bt709" and info.video.color.range == "tv"
    assert np.abs(decode_rgb(out, matrix="bt709", rng="tv") - truth).mean() <= 1.5


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_phone_video_comes_out_upright(tmp_path: Path, degrees: int) -> None:
    # Phones store portrait video as landscape frames plus a display rotation (counter-clockwise).
    plain = make_clip(tmp_path / "plain.mp4", size="64x48", frames=3, pix_fmt="yuv444p", extra=("-crf", "0"))
    turned = tmp_path / "turned.mp4"
    ffmpeg("-display_rotation", str(degrees), "-i", plain, "-c", "copy", turned)
    info = probe(turned)
    assert round(info.rotation) % 360 == degrees  # ffmpeg prints 270 as -90
    assert info.video is not None
    assert (info.video.width, info.video.height) == ((48, 64) if degrees != 180 else (64, 48))
    got = as_rgb255(full_read(turned))
    upright = np.stack([np.rot90(frame, k=degrees // 90) for frame in as_rgb255(full_read(plain))])
    assert got.shape == upright.shape
    assert np.abs(got - upright).max() == 0


def full_read(path: Path) -> list:
    return list(VideoReader(str(path), probe(path)))


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("bframes.mp4", ("-bf", "3", "-g", "6")),
        ("gop.mkv", ("-g", "7")),
        # MPEG-TS has no index: the seek can land after the needed keyframe and must fall back.
        ("stream.ts", ("-g", "40", "-bf", "2")),
        # A broadcast capture whose 33-bit 90 kHz clock wraps to 0 half a second in (after 95443.7 s).
        ("wraps.ts", ("-g", "40", "-bf", "2", "-output_ts_offset", "95441.8")),
    ],
)
def test_start_end_are_frame_exact(tmp_path: Path, name: str, extra: tuple[str, ...]) -> None:
    clip = make_clip(tmp_path / name, size="64x48", frames=36, extra=extra)
    info = probe(clip)
    assert info.video is not None and info.video.frames == 36
    every = full_read(clip)
    assert len(every) == 36
    for start, end in [(1, 4), (13, 17), (20, 21), (33, None)]:
        with VideoReader(str(clip), info, start=start, end=end) as reader:
            got = list(reader)
        stop = 36 if end is None else end
        assert len(got) == stop - start == len(reader)
        for k, frame in enumerate(got):
            assert frame.index == k
            assert frame.meta["source_index"] == start + k
            assert torch.equal(frame.data, every[start + k].data), (start, k)
            assert frame.pts == info.timestamps[start + k] - info.timestamps[start]


@pytest.mark.parametrize("codec", ["libx265", "libx264"])
def test_open_gop_cut_counts_the_frames_the_decoder_gives(tmp_path: Path, codec: str) -> None:
    # `ffmpeg -ss 1.5 -i in -c copy out.mkv` on an open-GOP encode (x265's default) keeps the pictures before
    # the keyframe that refer to the GOP before it: the decoder drops them, and their stored times are missing or
    # repeated. The reader must give every frame the decoder gives, each once, in order.
    params = ("-x265-params", "open-gop=1:keyint=25:bframes=4:log-level=error") if codec == "libx265" else (
        "-x264-params", "open-gop=1:keyint=25:log-level=error")  # fmt: skip
    full = make_clip(tmp_path / "full.mkv", size="64x48", frames=100, codec=codec, extra=params)
    cut = tmp_path / "cut.mkv"
    ffmpeg("-ss", "1.5", "-i", full, "-c", "copy", cut)
    info = probe(cut)
    assert info.video is not None
    decodable = count_decodable_frames(cut)
    assert info.video.frames == decodable == len(info.timestamps)
    assert list(info.timestamps) == sorted(set(info.timestamps))
    every = full_read(cut)
    assert len(every) == decodable
    # frame for frame what a plain ffmpeg decode gives with the same conversion to RGB
    convert = to_rgb_filter(info.pix_fmt, info.video.color, 64, 48, "gbrp")
    plain = run_ffmpeg(["-v", "error", "-i", str(cut), "-vf", convert, "-f", "rawvideo", "-pix_fmt", "gbrp", "-"])
    planes = torch.frombuffer(bytearray(plain.stdout), dtype=torch.uint8).view(-1, 3, 48, 64)
    assert planes.shape[0] == decodable
    for frame, gbr in zip(every, planes, strict=True):
        assert torch.equal(frame.data, gbr[[2, 0, 1]].float() / 255)
    for start, end in [(3, 9), (40, None)]:
        got = list(VideoReader(str(cut), info, start=start, end=end))
        assert len(got) == (end or decodable) - start
        assert all(torch.equal(g.data, every[start + k].data) for k, g in enumerate(got))


def test_interlaced_source_is_deinterlaced_frame_for_frame(tmp_path: Path) -> None:
    # 50 fields a second woven into 25 frames, stored interlaced (top field first)
    src = make_clip(
        tmp_path / "tv.mpg", size="64x48", rate="50", frames=20, codec="mpeg2video",
        vf="tinterlace=mode=interleave_top,setfield=tff", extra=("-flags", "+ildct+ilme", "-field_order", "tt"),
    )  # fmt: skip
    info = probe(src)
    assert info.field_order == "tt" and info.video is not None and info.video.frames == 20
    convert = to_rgb_filter(info.pix_fmt, info.video.color, 64, 48, "gbrp")
    for mode, vf in [("auto", f"bwdif=mode=send_frame:parity=auto:deint=interlaced,{convert}"), ("off", convert)]:
        got = list(VideoReader(str(src), info, start=3, deinterlace=mode))
        assert [f.pts for f in got] == [t - info.timestamps[3] for t in info.timestamps[3:]]
        # what ffmpeg alone gives with the same filters, frame for frame (a cut keeps each frame's neighbours)
        plain = run_ffmpeg(["-v", "error", "-i", str(src), "-vf", vf, "-f", "rawvideo", "-pix_fmt", "gbrp", "-"])
        planes = torch.frombuffer(bytearray(plain.stdout), dtype=torch.uint8).view(-1, 3, 48, 64)[3:]
        assert len(got) == len(planes) == 17
        for frame, gbr in zip(got, planes, strict=True):
            assert torch.equal(frame.data, gbr[[2, 0, 1]].float() / 255), mode
    woven, smooth = (as_rgb255(list(VideoReader(str(src), info, deinterlace=m))) for m in ("off", "auto"))
    assert not np.array_equal(woven, smooth)


def test_vfr_reader_keeps_source_times(tmp_path: Path) -> None:
    vf = "settb=1/1000,setpts='(N + 2*gte(N,5))/(25*TB)'"
    clip = make_clip(
        tmp_path / "vfr.mkv", frames=12, vf=vf, extra=("-fps_mode", "vfr", "-enc_time_base", "1/1000")
    )
    info = probe(clip)
    assert info.video is not None and info.video.vfr
    frames = list(VideoReader(str(clip), info, start=3))
    assert [f.pts for f in frames] == [t - info.timestamps[3] for t in info.timestamps[3:]]
    assert frames[2].pts == Fraction(4, 25)  # frames 3, 4, then 5 which comes 2 frame durations late
    every = full_read(clip)
    assert all(torch.equal(a.data, b.data) for a, b in zip(frames, every[3:], strict=True))


def test_ten_bit_source_keeps_its_precision(tmp_path: Path) -> None:
    src = tmp_path / "ramp10.mkv"
    # Full-range 10-bit luma ramp 0..1023 with neutral chroma: R = G = B = Y / 1023 exactly.
    graph = "nullsrc=size=1024x4:rate=25,format=yuv444p10le,geq=lum='X':cb=512:cr=512"
    ffmpeg("-f", "lavfi", "-i", graph, "-frames:v", "2", "-vf", "setparams=colorspace=bt709:range=pc",
           "-c:v", "ffv1", "-color_range", "pc", "-colorspace", "bt709", src)  # fmt: skip
    info = probe(src)
    assert info.video is not None and info.video.bit_depth == 10 and info.video.color.range == "pc"
    frames = list(VideoReader(str(src), info))
    green = frames[0].data[1]
    ramp = torch.arange(1024, dtype=torch.float32) / 1023
    assert torch.unique(torch.round(green * 65535)).numel() > 256
    assert (green - ramp[None, :]).abs().max() < 0.6 / 1023

    out = tmp_path / "out10.mkv"
    with VideoWriter(out, info.video, codec="ffv1", pix_fmt="yuv444p10le") as writer:
        for frame in frames:
            writer.write(frame)
    luma = decode_planes(out, "yuv444p10le")[0][: 1024 * 4].reshape(4, 1024).astype(np.int64)
    assert np.unique(luma).size > 256
    assert np.abs(luma - np.arange(1024)[None, :]).max() <= 1

    # Forcing the 8-bit path on the same file quantises, which is what the 16-bit path avoids.
    eight = next(iter(VideoReader(str(src), info, high_bit_depth=False))).data[1]
    assert torch.unique(torch.round(eight * 65535)).numel() <= 256


def test_range_errors_and_no_video(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mkv", frames=5, codec="ffv1")
    info = probe(clip)
    with pytest.raises(MediaError, match="past the end"):
        VideoReader(str(clip), info, start=5)
    with pytest.raises(MediaError, match="greater than start"):
        VideoReader(str(clip), info, start=3, end=3)
    with pytest.raises(MediaError, match=">= 0"):
        VideoReader(str(clip), info, start=-1)
    wav = tmp_path / "a.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.1", wav)
    with pytest.raises(MediaError, match="no video stream"):
        VideoReader(str(wav), probe(wav))


def test_close_reaps_the_decoder_and_errors_name_the_frame(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "long.mkv", size="160x120", frames=60, codec="ffv1")
    info = probe(clip)
    reader = VideoReader(str(clip), info)
    next(reader)
    assert reader._proc is not None
    pid = reader._proc.pid
    reader.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped, not a zombie
    with pytest.raises(StopIteration):
        next(reader)

    reader = VideoReader(str(clip), info)
    next(reader)
    assert reader._proc is not None
    reader._proc.proc.kill()  # the decoder dies mid-stream
    with pytest.raises(MediaError, match=r"long\.mkv.*frame \d+"):
        for _ in reader:
            pass
    reader.close()
