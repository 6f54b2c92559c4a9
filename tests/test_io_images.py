"""Image sequences (PNG/TIFF, and JPEG/WebP/BMP to read): 8 and 16 bits, gray/RGB/RGBA, ordering, patterns and refusals."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import torch

from diffusify.core.frame import Frame
from diffusify.io import ImageSequenceReader, ImageSequenceWriter, MediaError, list_images, probe_images
from tests._media import ffmpeg


def ramp16(n: int, height: int = 8, width: int = 96) -> list[Frame]:
    """Frames whose samples are distinct 16-bit levels, so any 8-bit step would show."""
    base = torch.arange(3 * height * width, dtype=torch.float32).reshape(3, height, width) * 7
    return [Frame(i, Fraction(i, 25), ((base + 1000 * i) % 65536) / 65535) for i in range(n)]


@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_sixteen_bit_round_trip_is_exact(tmp_path: Path, fmt: str) -> None:
    frames = ramp16(3)
    with ImageSequenceWriter(tmp_path / "seq", bit_depth=16, format=fmt) as writer:
        for frame in frames:
            writer.write(frame)
    result = writer.close()
    assert result.frames == 3
    ext = "png" if fmt == "png" else "tif"
    assert [p.name for p in list_images(tmp_path / "seq")] == [f"frame_{i:06d}.{ext}" for i in range(3)]
    stream = probe_images(tmp_path / "seq", fps=Fraction(24))
    assert (stream.width, stream.height, stream.frames, stream.bit_depth, stream.fps) == (96, 8, 3, 16, 24)
    with ImageSequenceReader(tmp_path / "seq", fps=Fraction(24)) as reader:
        got = list(reader)
    assert len(got) == 3
    for a, b in zip(frames, got, strict=True):
        assert b.pts == Fraction(a.index, 24)
        assert torch.equal(torch.round(b.data * 65535), torch.round(a.data * 65535))


def test_eight_bit_tiff_and_range(tmp_path: Path) -> None:
    frames = ramp16(4)
    with ImageSequenceWriter(tmp_path / "t" / "img_%04d.tif", bit_depth=8) as writer:
        for frame in frames:
            writer.write(frame)
    files = list_images(tmp_path / "t" / "img_%04d.tif")
    assert [p.name for p in files] == [f"img_{i:04d}.tif" for i in range(4)]
    reader = ImageSequenceReader(tmp_path / "t", start=1, end=3)
    got = list(reader)
    assert [f.meta["source_index"] for f in got] == [1, 2]
    assert [f.index for f in got] == [0, 1]
    assert reader.stream.bit_depth == 8 and reader.stream.frames == 2
    for a, b in zip(frames[1:3], got, strict=True):
        assert (a.data - b.data).abs().max() <= 0.5 / 255 + 1e-6


def test_gray_and_rgba_become_rgb(tmp_path: Path) -> None:
    mask = torch.linspace(0, 1, 64 * 16).reshape(1, 16, 64)
    with ImageSequenceWriter(tmp_path / "mask", bit_depth=16) as writer:
        writer.write(Frame(0, Fraction(0), mask))
    got = next(iter(ImageSequenceReader(tmp_path / "mask"))).data
    assert got.shape == (3, 16, 64)
    assert torch.equal(got[0], got[1]) and torch.equal(got[1], got[2])
    assert (got[0] - mask[0]).abs().max() <= 0.5 / 65535 + 1e-6

    rgba = tmp_path / "rgba"
    rgba.mkdir()
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x16,format=rgba", "-frames:v", "1", rgba / "a.png")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x16,format=rgb24", "-frames:v", "1", rgba / "b.png")
    frames = list(ImageSequenceReader(rgba))
    assert [f.data.shape for f in frames] == [(3, 16, 32)] * 2
    assert torch.allclose(frames[0].data, frames[1].data, atol=1.5 / 255)


def test_natural_order_and_glob(tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    for n in (10, 2, 1):
        ffmpeg(
            "-f", "lavfi", "-i", "color=c=gray:size=8x8,format=rgb24", "-frames:v", "1", folder / f"s{n}.png"
        )
    (folder / "notes.txt").write_text("not an image")
    assert [p.name for p in list_images(folder)] == ["s1.png", "s2.png", "s10.png"]
    assert [p.name for p in list_images(folder / "s1*.png")] == ["s1.png", "s10.png"]
    with pytest.raises(MediaError, match="no PNG or TIFF"):
        list_images(folder / "*.jpg")
    with pytest.raises(MediaError, match="no such folder"):
        list_images(tmp_path / "missing")


def test_refusals(tmp_path: Path) -> None:
    frames = ramp16(1)
    with ImageSequenceWriter(tmp_path / "out") as writer:
        writer.write(frames[0])
    with pytest.raises(MediaError, match="--overwrite"):
        ImageSequenceWriter(tmp_path / "out")
    ImageSequenceWriter(tmp_path / "out", overwrite=True).close()
    with pytest.raises(MediaError, match="png or tiff"):
        ImageSequenceWriter(tmp_path / "x", format="jpeg")
    with pytest.raises(MediaError, match="8 or 16"):
        ImageSequenceWriter(tmp_path / "x", bit_depth=12)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    ffmpeg("-f", "lavfi", "-i", "color=size=8x8,format=rgb24", "-frames:v", "1", mixed / "a.png")
    ffmpeg("-f", "lavfi", "-i", "color=size=16x8,format=rgb24", "-frames:v", "1", mixed / "b.png")
    with pytest.raises(MediaError, match=r"b\.png: is 16x8"):
        ImageSequenceReader(mixed)


@pytest.mark.parametrize("ext", ["jpg", "webp", "bmp"])
def test_jpeg_webp_and_bmp_sequences_read_like_ffmpeg_decodes_them(tmp_path: Path, ext: str) -> None:
    from tests._media import decode_rgb

    folder = tmp_path / "shots"
    folder.mkdir()
    # an odd size, which JPEG's 4:2:0 does not fill with whole chroma blocks
    for k in range(3):  # one file each (ffmpeg's WebP encoder would pack a sequence into one animated file)
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=64x36:rate=25,trim=start_frame={k},scale=65:37",
               "-frames:v", "1", folder / f"img_{k:02d}.{ext}")  # fmt: skip
    with ImageSequenceReader(folder) as reader:
        got = list(reader)
    assert len(got) == 3 and got[0].data.shape == (3, 37, 65)
    for frame, path in zip(got, list_images(folder), strict=True):
        ours = frame.data.permute(1, 2, 0).double().numpy() * 255
        assert abs(ours - decode_rgb(path)[0]).mean() <= 1.5, path.name
