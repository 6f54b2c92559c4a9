"""Encoding: exact rates and timestamps, stream copy, refusals, failures, and files that survive a SIGKILL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from diffusify.core.frame import Frame
from diffusify.core.stream import StreamInfo
from diffusify.io import ImageSequenceWriter, MediaError, VideoReader, VideoWriter, probe
from diffusify.io.ffmpeg import run_ffmpeg
from diffusify.io.pixels import PlanePacker
from tests._media import count_decodable_frames, make_av_clip, make_clip, stream_span

ROOT = Path(__file__).resolve().parents[1]


def noise_frames(n: int, width: int = 64, height: int = 48, fps: Fraction = Fraction(25)) -> list[Frame]:
    gen = torch.Generator().manual_seed(0)
    return [Frame(i, i / fps, torch.rand(3, height, width, generator=gen)) for i in range(n)]


def write_all(writer: VideoWriter, frames: list[Frame]) -> None:
    for frame in frames:
        writer.write(frame)


def _gbr_reference(data: torch.Tensor, peak: float) -> bytes:
    """Planar G, B, R bytes of a frame by the book: NaN -> 0, scale in float32, clamp, round half to even."""
    x = torch.nan_to_num(data.float(), nan=0.0).mul(peak).clamp(0, peak).round()
    x = x.expand(3, -1, -1) if x.shape[0] == 1 else x
    planes = torch.stack([x[1], x[2], x[0]])
    return planes.to(torch.uint16 if peak > 255 else torch.uint8).numpy().tobytes()


@pytest.mark.parametrize("high", [False, True])
def test_plane_packer_matches_the_reference_frame_after_frame(high: bool) -> None:
    gen = torch.Generator().manual_seed(3)
    peak = 65535.0 if high else 255.0
    wide = torch.rand(3, 40, 70, generator=gen) * 1.4 - 0.2  # values outside [0, 1] are clamped
    wide[0, 0, :5] = float("nan")
    frames = [
        wide[:, 4:36, 3:67],  # a strided view, as a crop hands over
        torch.rand(3, 32, 64, generator=gen).half(),
        torch.rand(1, 32, 64, generator=gen),  # gray goes out as three equal planes
        torch.full((3, 32, 64), 0.5 / peak),  # exactly half a level: rounds to even (0)
    ]
    packer = PlanePacker(high)
    # each pack reuses the packer's buffers, so keep a copy before packing the next frame
    packed = [bytes(packer.pack(f)) for f in frames]
    for frame, got in zip(frames, packed, strict=True):
        assert got == _gbr_reference(frame, peak)
    assert packed[3] == bytes(len(packed[3]))


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_vfr_timestamps_survive_within_a_millisecond(tmp_path: Path, ext: str) -> None:
    vf = "settb=1/1000,setpts='(N + 0.37*gte(N,3) + 2*gte(N,7) + 0.5*gte(N,11))/(25*TB)'"
    src = make_clip(
        tmp_path / "vfr.mkv", frames=16, vf=vf, extra=("-fps_mode", "vfr", "-enc_time_base", "1/1000")
    )
    info = probe(src)
    assert info.video is not None and info.video.vfr
    out = tmp_path / f"out{ext}"
    with VideoReader(str(src), info) as reader, VideoWriter(out, info.video, use_timestamps=True) as writer:
        write_all(writer, list(reader))
    result = writer.close()
    assert result.frames == 16 and result.warnings == []
    got = probe(out)
    assert got.video is not None and got.video.vfr and got.video.frames == 16
    for a, b in zip(info.timestamps, got.timestamps, strict=True):
        assert abs(a - b) <= Fraction(1, 1000), (float(a), float(b))


def test_constant_rate_is_exact(tmp_path: Path) -> None:
    fps = Fraction(30000, 1001)
    out = tmp_path / "deep" / "folder" / "ntsc.mp4"
    with VideoWriter(out, StreamInfo(64, 48, fps=fps)) as writer:
        write_all(writer, noise_frames(15, fps=fps))
    result = writer.close()
    assert result.frames == 15 and result.warnings == []
    assert result.duration == pytest.approx(float(15 / fps), abs=1e-3)
    info = probe(out)
    assert info.video is not None and info.video.fps == fps and not info.video.vfr
    assert info.timestamps == tuple(i / fps for i in range(15))


def test_mask_and_rgba_frames_and_wrong_sizes(tmp_path: Path) -> None:
    out = tmp_path / "mask.mkv"
    mask = torch.linspace(0, 1, 64).repeat(1, 48, 1)
    with VideoWriter(
        out, StreamInfo(64, 48, channels=1, kind="mask"), codec="ffv1", pix_fmt="yuv444p"
    ) as writer:
        writer.write(Frame(0, Fraction(0), mask))
        writer.write(Frame(1, Fraction(1, 25), torch.cat([mask.expand(3, -1, -1), torch.ones(1, 48, 64)])))
        with pytest.raises(MediaError, match="32x48, the output was opened for 64x48"):
            writer.write(Frame(2, Fraction(2, 25), torch.zeros(3, 48, 32)))
    back = list(VideoReader(str(out), probe(out)))
    assert len(back) == 2
    for frame in back:
        assert (frame.data - mask).abs().max() < 2 / 255


def test_stream_copy_into_mkv(tmp_path: Path) -> None:
    src = make_av_clip(tmp_path / "av.mkv", tmp_path)
    info = probe(src)
    assert info.video is not None
    out = tmp_path / "out.mkv"
    with VideoReader(str(src), info) as reader, VideoWriter(out, info.video, copy_from=info) as writer:
        write_all(writer, list(reader))
    result = writer.close()
    assert result.warnings == []
    got = probe(out)
    kinds = {(s.kind, s.codec, s.language, s.title) for s in got.streams if s.kind != "attachment"}
    assert ("audio", "aac", "eng", None) in kinds
    assert ("subtitle", "subrip", "fre", "French subs") in kinds
    assert [s.kind for s in got.streams].count("attachment") == 1
    assert got.chapters == 2
    log = run_ffmpeg(["-i", str(out)], check=False).stderr.decode()
    assert "Test clip" in log  # global metadata
    frame = 1 / info.video.fps
    assert got.duration is not None and info.duration is not None
    assert abs(got.duration - info.duration) <= frame


def test_stream_copy_into_mp4_converts_subtitles_and_drops_attachments(tmp_path: Path) -> None:
    src = make_av_clip(tmp_path / "av.mkv", tmp_path)
    info = probe(src)
    assert info.video is not None
    out = tmp_path / "out.mp4"
    with VideoReader(str(src), info) as reader, VideoWriter(out, info.video, copy_from=info) as writer:
        write_all(writer, list(reader))
    result = writer.close()
    assert any("attachment" in w and "dropped" in w for w in result.warnings)
    got = probe(out)
    # (ffmpeg stores mp4 chapters in an extra data track too.)
    media = [(s.kind, s.codec) for s in got.streams if s.kind != "data"]
    assert media == [("video", "h264"), ("audio", "aac"), ("subtitle", "mov_text")]
    assert got.chapters == 2
    assert got.streams_of("audio")[0].language == "eng"
    assert got.duration is not None and info.duration is not None
    assert abs(got.duration - info.duration) <= float(1 / info.video.fps)


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_copy_range_trims_the_copied_streams(tmp_path: Path, ext: str) -> None:
    src = make_av_clip(tmp_path / "av.mkv", tmp_path, frames=30)
    info = probe(src)
    assert info.video is not None
    start, end = 6, 18
    out = tmp_path / f"part{ext}"
    copy_range = (info.timestamps[start], info.timestamps[end])
    with (
        VideoReader(str(src), info, start=start, end=end) as reader,
        VideoWriter(out, info.video, copy_from=info, copy_range=copy_range) as writer,
    ):
        write_all(writer, list(reader))
    got = probe(out)
    assert got.video is not None and got.video.frames == 12
    frame = float(1 / info.video.fps)
    audio = got.streams_of("audio")
    assert audio and audio[0].codec == "aac"
    # Copied audio is cut at packet boundaries: within a frame of the video's span.
    first, last = stream_span(out, "a:0")
    assert abs(first) <= frame and abs(last - float(12 / info.video.fps)) <= frame
    # The cut is at 0.2002 s: the first cue (0-0.4 s) is on screen there and stays, from the cut on; the second
    # (0.4-0.9 s) moves with the cut, to the millisecond.
    cues = run_ffmpeg(["-v", "error", "-i", str(out), "-map", "0:s:0", "-c:s", "srt", "-f", "srt", "-"])
    assert cues.stdout.decode().replace("\r\n", "\n") == (
        "1\n00:00:00,000 --> 00:00:00,200\nHello\n\n2\n00:00:00,200 --> 00:00:00,700\nWorld\n\n"
    )
    subtitle = got.streams_of("subtitle")[0]
    assert subtitle.codec == ("subrip" if ext == ".mkv" else "mov_text")
    assert (subtitle.language, subtitle.title) == ("fre", "French subs")
    assert audio[0].language == "eng"
    if ext == ".mkv":  # the attachment keeps its file name and type
        listing = run_ffmpeg(["-i", str(out)], check=False).stderr.decode()
        assert re.search(r"Attachment:.*\n.*Metadata:\n\s+filename\s+: notes.txt\n\s+mimetype\s+: text/plain", listing)


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_video_that_starts_after_its_audio_keeps_its_place(tmp_path: Path, ext: str) -> None:
    src = tmp_path / "late.mkv"
    run_ffmpeg([
        "-v", "error", "-itsoffset", "0.5", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-f", "lavfi",
        "-i", "sine=sample_rate=48000", "-t", "2", "-c:v", "libx264", "-c:a", "aac", str(src),
    ])  # fmt: skip
    info = probe(src)
    assert info.video is not None
    source_video, _ = stream_span(src, "v:0")
    assert source_video >= 0.5  # the picture comes half a second after the sound starts
    out = tmp_path / f"out{ext}"
    with VideoReader(str(src), info) as reader, VideoWriter(out, info.video, copy_from=info) as writer:
        write_all(writer, list(reader))
    assert writer.close().warnings == []
    got = probe(out)
    assert got.video is not None and got.video.frames == info.video.frames
    video, _ = stream_span(out, "v:0")
    audio, _ = stream_span(out, "a:0")
    source_audio, _ = stream_span(src, "a:0")
    assert video - audio == pytest.approx(source_video - source_audio, abs=0.001)


@pytest.mark.parametrize(
    ("audio", "ext", "video_codec", "stored"),
    [
        ("truehd", ".mp4", "libx264", "flac"),  # Blu-ray remux audio: lossless stays lossless
        ("flac", ".mov", "libx264", "alac"),
        ("alac", ".avi", "libx264", "pcm_s24le"),
        ("pcm_s16le", ".mp4", "libx264", "pcm_s16le"),  # stored as it is
        ("aac", ".webm", "libsvtav1", "opus"),
    ],
)
def test_audio_a_container_cannot_hold_is_re_encoded(
    tmp_path: Path, audio: str, ext: str, video_codec: str, stored: str
) -> None:
    src = tmp_path / "src.mkv"
    run_ffmpeg([
        "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-f", "lavfi", "-i",
        "sine=sample_rate=48000", "-t", "1", "-c:v", "libx264", "-c:a", audio, "-strict", "-2", "-ac", "2", str(src),
    ])  # fmt: skip
    info = probe(src)
    assert info.video is not None
    out = tmp_path / f"out{ext}"
    with (
        VideoReader(str(src), info) as reader,
        VideoWriter(out, info.video, codec=video_codec, copy_from=info) as writer,
    ):
        write_all(writer, list(reader))
    result = writer.close()
    assert [s.codec for s in probe(out).streams_of("audio")] == [stored]
    warned = [w for w in result.warnings if "re-encoded" in w]
    assert len(warned) == (stored != audio)
    assert all(f"({audio}) cannot be stored in {ext}; re-encoded to" in w and stored in w for w in warned)
    first, last = stream_span(out, "a:0")
    assert abs(first) <= 0.05 and abs(last - 1.0) <= 0.05


def test_copy_range_across_an_mpegts_clock_wrap(tmp_path: Path) -> None:
    # A capture whose 33-bit 90 kHz clock wraps to 0 one second in: the cut after the wrap keeps its audio.
    src = tmp_path / "capture.ts"
    run_ffmpeg([
        "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25", "-f", "lavfi", "-i",
        "sine=frequency=440:sample_rate=48000", "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-output_ts_offset", "95441.3", "-f", "mpegts", str(src),
    ])  # fmt: skip
    info = probe(src)
    assert info.video is not None and info.video.frames == 75
    assert info.start_time < 0  # ffmpeg unwraps the clock: the times before the wrap come out negative
    start, end = 30, 60
    out = tmp_path / "cut.mkv"
    with (
        VideoReader(str(src), info, start=start, end=end) as reader,
        VideoWriter(out, info.video, copy_from=info, copy_range=(info.timestamps[start], info.timestamps[end])) as writer,
    ):
        write_all(writer, list(reader))
    got = probe(out)
    assert got.video is not None and got.video.frames == 30
    first, last = stream_span(out, "a:0")
    assert abs(first) <= 0.04 and abs(last - 1.2) <= 0.04


HDR10 = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"


@pytest.mark.parametrize(
    ("codec", "extra"), [("libx265", ("-x265-params", "aq-mode=3")), ("libsvtav1", ()), ("ffv1", ())]
)
def test_hdr10_metadata_survives(tmp_path: Path, codec: str, extra: tuple[str, ...]) -> None:
    src = tmp_path / "hdr.mkv"
    # tagged in the bitstream only, as some remuxes are: the container says nothing of primaries and transfer
    run_ffmpeg([
        "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25,format=yuv420p10le", "-frames:v", "5",
        "-c:v", "libx265", "-x265-params",
        f"log-level=error:master-display={HDR10}:max-cll=1000,400:colorprim=bt2020:transfer=smpte2084:"
        "colormatrix=bt2020nc", str(src),
    ])  # fmt: skip
    info = probe(src)
    assert info.video is not None
    color = info.video.color
    assert (color.matrix, color.range, color.primaries, color.transfer) == ("bt2020nc", "tv", "bt2020", "smpte2084")
    assert color.mastering == (0.68, 0.32, 0.265, 0.69, 0.15, 0.06, 0.3127, 0.329, 1000.0, 0.005)
    assert color.light == (1000, 400)
    out = tmp_path / "out.mkv"
    with VideoReader(str(src), info) as reader, VideoWriter(out, info.video, codec=codec, extra_args=extra) as writer:
        write_all(writer, list(reader))
    result = writer.close()
    back = probe(out).video
    assert back is not None and back.bit_depth == 10
    assert (back.color.primaries, back.color.transfer) == ("bt2020", "smpte2084")
    if codec == "ffv1":
        assert back.color.mastering is None
        assert any("HDR10 mastering metadata is not written by ffv1" in w for w in result.warnings)
    else:  # AV1 stores luminances in fixed point: 0.005 comes back as 0.005005
        assert back.color.mastering == pytest.approx(color.mastering, abs=1e-4)
        assert back.color.light == color.light


def test_ten_bit_default_pix_fmt_and_precision(tmp_path: Path) -> None:
    ramp = torch.linspace(0, 1, 256).repeat(3, 16, 1)  # 256 columns of distinct levels per 1/255 step...
    fine = ramp * (200 / 255)  # ...squeezed so that 8 bits would merge neighbours
    out = tmp_path / "ten.mkv"
    with VideoWriter(
        out, StreamInfo(256, 16, fps=Fraction(25), bit_depth=10), codec="libx264", crf=0
    ) as writer:
        writer.write(Frame(0, Fraction(0), fine))
    info = probe(out)
    assert info.pix_fmt == "yuv420p10le"
    back = next(iter(VideoReader(str(out), info))).data
    assert torch.unique(torch.round(back[1] * 65535)).numel() > 210
    assert (back - fine).abs().mean() < 1 / 1023


def test_odd_sizes_are_refused_only_by_encoders_that_need_whole_chroma(tmp_path: Path) -> None:
    stream = StreamInfo(65, 37)
    with pytest.raises(MediaError, match=r"libx264 cannot store 65x37 frames as yuv420p .* resize to 64x36"):
        VideoWriter(tmp_path / "x264.mkv", stream)
    assert not (tmp_path / "x264.mkv").exists()
    # 4:4:4 has no chroma blocks, and ffv1 pads odd 4:2:0 frames itself
    for name, codec, pix_fmt in [("444.mkv", "libx264", "yuv444p"), ("ffv1.mkv", "ffv1", "yuv420p")]:
        with VideoWriter(tmp_path / name, stream, codec=codec, pix_fmt=pix_fmt) as writer:
            write_all(writer, noise_frames(3, width=65, height=37))
        info = probe(tmp_path / name)
        assert info.video is not None and (info.video.width, info.video.height, info.video.frames) == (65, 37, 3)


def test_an_output_folder_that_cannot_be_made_fails_before_any_frame(tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(MediaError, match=r"taken/sub/x.mkv: cannot write here \(.*\); choose a folder"):
        VideoWriter(blocker / "sub" / "x.mkv", StreamInfo(64, 48))
    with pytest.raises(MediaError, match=r"taken/frames: cannot write here"):
        ImageSequenceWriter(blocker / "frames" / "f_%04d.png")


def test_file_names_ffmpeg_would_misread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # relative names that start with '-' (an option to ffmpeg) or look like a protocol ('concat:')
    monkeypatch.chdir(tmp_path)
    for name in ("-out.mkv", "concat:out.mkv"):
        with VideoWriter(name, StreamInfo(64, 48)) as writer:
            write_all(writer, noise_frames(3))
        info = probe(name)
        assert info.video is not None and info.video.frames == 3
        assert len(list(VideoReader(name, info))) == 3
    with ImageSequenceWriter("-frames/-f_%02d.png") as images:
        for frame in noise_frames(2):
            images.write(frame)
    assert sorted(p.name for p in (tmp_path / "-frames").iterdir()) == ["-f_00.png", "-f_01.png"]


def test_avi_refuses_variable_frame_rate(tmp_path: Path) -> None:
    # AVI has a rate, not per-frame times: it would move the frames silently
    with pytest.raises(MediaError, match=r"AVI stores a constant frame rate only.*use .mkv or .mp4"):
        VideoWriter(tmp_path / "v.avi", StreamInfo(64, 48, vfr=True), use_timestamps=True)
    with VideoWriter(tmp_path / "c.avi", StreamInfo(64, 48)) as writer:
        write_all(writer, noise_frames(3))
    assert count_decodable_frames(tmp_path / "c.avi") == 3


def test_overwrite_and_same_path_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "exists.mkv"
    out.write_bytes(b"precious")
    stream = StreamInfo(64, 48)
    with pytest.raises(MediaError, match="--overwrite"):
        VideoWriter(out, stream)
    assert out.read_bytes() == b"precious"
    with VideoWriter(out, stream, overwrite=True) as writer:
        write_all(writer, noise_frames(2))
    assert probe(out).video is not None

    src = make_clip(tmp_path / "src.mkv", frames=3)
    with pytest.raises(MediaError, match="its own source"):
        VideoWriter(src, stream, copy_from=probe(src), overwrite=True)
    with pytest.raises(MediaError, match="extension"):
        VideoWriter(tmp_path / "out.xyz", stream)


def test_bad_encoder_and_bad_container(tmp_path: Path) -> None:
    stream = StreamInfo(64, 48)
    with pytest.raises(MediaError, match="libx26") as err:
        VideoWriter(tmp_path / "a.mkv", stream, codec="libx246")
    assert "not available" in str(err.value)
    with pytest.raises(MediaError, match="ffv1 cannot be stored in a .mp4"):
        VideoWriter(tmp_path / "a.mp4", stream, codec="ffv1")
    with pytest.raises(MediaError, match="either crf or bitrate"):
        VideoWriter(tmp_path / "a.mkv", stream, crf=20, bitrate="2M")
    assert not (tmp_path / "a.mkv").exists()


def test_ffmpeg_dying_early_is_a_media_error(tmp_path: Path) -> None:
    frames = noise_frames(40, 320, 240)
    with pytest.raises(MediaError, match=r"bad\.mkv: ffmpeg failed .*not_an_option"):
        writer = VideoWriter(tmp_path / "bad.mkv", StreamInfo(320, 240), extra_args=["-not_an_option", "1"])
        write_all(writer, frames)
        writer.close()


def test_nvenc_without_encoder_hardware_fails_before_the_first_frame(tmp_path: Path) -> None:
    from diffusify.io.ffmpeg import encoder_failure

    if encoder_failure("h264_nvenc") is None:
        pytest.skip("this machine has NVENC")
    # one line that says what is missing and what to use instead, before anything is decoded or written
    with pytest.raises(MediaError, match=r"h264_nvenc cannot open on this machine \(NVENC needs an NVIDIA GPU.*libx264"):
        VideoWriter(tmp_path / "gpu.mp4", StreamInfo(320, 240), codec="h264_nvenc")
    assert not (tmp_path / "gpu.mp4").exists()


def test_duration_drift_is_reported(tmp_path: Path) -> None:
    out = tmp_path / "drift.mkv"
    # Doubling the stored times behind the writer's back makes the file twice as long as its frames say.
    with VideoWriter(
        out, StreamInfo(64, 48), codec="ffv1", extra_args=["-bsf:v", "setts=ts=2*PTS"]
    ) as writer:
        write_all(writer, noise_frames(10))
    assert any("drift" in w for w in writer.close().warnings)


def test_abort_keeps_what_was_written(tmp_path: Path) -> None:
    out = tmp_path / "aborted.mp4"
    writer = VideoWriter(out, StreamInfo(64, 48))
    write_all(writer, noise_frames(6))
    result = writer.abort()
    assert result.frames == 6
    assert count_decodable_frames(out) == 6


KILLED_WRITER = """
import sys, time
from fractions import Fraction
import torch
from diffusify.core.stream import StreamInfo
from diffusify.io.writer import VideoWriter
from diffusify.core.frame import Frame

path, use_ts = sys.argv[1], sys.argv[2] == "1"
writer = VideoWriter(path, StreamInfo(64, 48, fps=Fraction(25)), preset="ultrafast", use_timestamps=use_ts)
gen = torch.Generator().manual_seed(0)
for i in range(100000):
    writer.write(Frame(i, Fraction(i, 25), torch.rand(3, 48, 64, generator=gen)))
    if i == 25:
        print(writer._proc.pid, flush=True)
    time.sleep(0.002)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"  # exited, waiting to be reaped by init
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and SIGKILL")
@pytest.mark.parametrize(("ext", "use_ts"), [(".mkv", False), (".mp4", False), (".mp4", True)])
def test_output_stays_playable_after_sigkill(tmp_path: Path, ext: str, use_ts: bool) -> None:
    out = tmp_path / f"killed{ext}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(out), "1" if use_ts else "0"],
        stdout=subprocess.PIPE, cwd=ROOT, env=env,
    )  # fmt: skip
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line, "the writing process did not start"
    ffmpeg_pid = int(line)
    time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    deadline = time.monotonic() + 30
    while not _gone(ffmpeg_pid):
        assert time.monotonic() < deadline, "ffmpeg did not finish after its producer died"
        time.sleep(0.05)
    decoded = count_decodable_frames(out)
    assert decoded > 25
    info = probe(out)
    assert info.video is not None and info.video.frames == decoded


def test_send_writes_every_byte_when_the_pipe_takes_them_in_part(tmp_path):
    """A raw pipe may accept a write only in part (a signal arriving mid-write); the rest must follow, or every
    later byte of the stream shifts."""
    import numpy as np

    from diffusify.io.ffmpeg import FFmpegProcess

    class Trickle:  # the child's stdin, taking at most 1000 bytes a call
        def __init__(self, raw):
            self.raw, self.calls = raw, 0

        def write(self, view):
            self.calls += 1
            return self.raw.write(view[:1000])

        def __getattr__(self, name):
            return getattr(self.raw, name)

    out = tmp_path / "copy.raw"
    proc = FFmpegProcess(["-f", "rawvideo", "-pix_fmt", "gray", "-s", "64x48", "-i", "pipe:0", "-f", "rawvideo",
                          "-y", str(out)], stdin_pipe=True)
    trickle = proc.proc.stdin = Trickle(proc.proc.stdin)
    frames = np.random.default_rng(0).integers(0, 256, (5, 48, 64), dtype=np.uint8)
    for f in frames:
        proc.send(memoryview(f[:24]), f[24:].tobytes())  # two parts a frame, as a prefix and its payload
    assert proc.finish(timeout=30) == 0
    assert out.read_bytes() == frames.tobytes()
    assert trickle.calls >= 5 * 64 * 48 // 1000  # it did take them in part
