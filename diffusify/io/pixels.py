"""Pixel packing: float RGB tensors to and from the packed planar sample bytes that ffmpeg reads and writes.

ffmpeg's planar RGB formats (``gbrp``, or native-endian ``gbrp16`` above 8 bits) store the G, B and R planes one
after another. Decoders (:class:`~diffusify.io.reader.VideoReader`, the image sequence reader) read a frame's bytes
into a :class:`FrameBuffer` and widen them with :func:`planes_to_tensor`; the video writer narrows its frames with a
:class:`PlanePacker`, by the rule of :func:`diffusify.ops.samples.narrow` (which a producer on a GPU applies
before the download, so the writer gets the very samples it would have made). Nothing here starts ffmpeg.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import torch

from diffusify.ops.samples import narrow

__all__ = ["FrameBuffer", "PlanePacker", "planes_to_samples", "planes_to_tensor"]


class FrameBuffer:
    """Fixed-size frames of bytes read from a decoder's pipe, looping over short reads.

    On the CPU one buffer serves every frame, since :func:`planes_to_tensor` copies out of it: a fresh 6 MB block
    per 1080p frame would otherwise be faulted in page by page each time. For a CUDA device each frame gets its own
    page-locked block, so the copy to the device can run asynchronously (torch's host allocator keeps the block
    until that copy has finished and then recycles it).

    Args:
        size: bytes in one frame.
        pin: use page-locked memory (only where CUDA is available).
    """

    def __init__(self, size: int, *, pin: bool = False) -> None:
        self.size = size
        self.pin = pin
        self._shared: torch.Tensor | None = None

    def read(self, stream: BinaryIO) -> tuple[torch.Tensor, int]:
        """Read one frame; the buffer is not zero-filled first.

        Args:
            stream: an unbuffered binary stream.

        Returns:
            The 1-D uint8 buffer (valid until the next read) and how many bytes were read (less than the frame
            size only at end of stream).
        """
        if self.pin:
            buf = torch.empty(self.size, dtype=torch.uint8, pin_memory=True)
        else:
            if self._shared is None:
                self._shared = torch.empty(self.size, dtype=torch.uint8)
            buf = self._shared
        view = memoryview(buf.numpy())
        got = 0
        while got < self.size:
            n = stream.readinto(view[got:])
            if not n:
                break
            got += n
        return buf, got


def planes_to_tensor(
    buf: torch.Tensor, height: int, width: int, high_bit_depth: bool, device: torch.device
) -> torch.Tensor:
    """Planar GBR bytes (``gbrp`` or native-endian ``gbrp16``) to a float32 RGB ``(3, H, W)`` tensor in [0, 1].

    Args:
        buf: one frame as a 1-D uint8 tensor (from :class:`FrameBuffer`); the result shares no memory with it.
        height: frame height.
        width: frame width.
        high_bit_depth: the buffer holds 16-bit samples.
        device: target device; the bytes are copied there and widened to float there.

    Returns:
        The frame tensor.
    """
    planes = _gbr_planes(buf, height, width, high_bit_depth, device)
    return _rgb_from_gbr(planes, torch.float32).div_(65535.0 if high_bit_depth else 255.0)


def planes_to_samples(
    buf: torch.Tensor, height: int, width: int, high_bit_depth: bool, device: torch.device
) -> torch.Tensor:
    """Planar GBR bytes to an RGB ``(3, H, W)`` tensor of native samples: ``uint8``, or ``uint16`` for 16-bit
    buffers, on ``device`` (nothing is widened). The result shares no memory with ``buf``."""
    planes = _gbr_planes(buf, height, width, high_bit_depth, device)
    return _rgb_from_gbr(planes, planes.dtype)


def _gbr_planes(buf: torch.Tensor, height: int, width: int, high_bit_depth: bool,
                device: torch.device) -> torch.Tensor:
    planes = buf.view(torch.uint16 if high_bit_depth else torch.uint8).view(3, height, width)
    if device.type != "cpu":
        # Ship the compact integer frame and widen it (if at all) on the device.
        planes = planes.to(device, non_blocking=buf.is_pinned())
    return planes


def _rgb_from_gbr(planes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    out = torch.empty(planes.shape, dtype=dtype, device=planes.device)
    # ffmpeg's planar RGB stores G, B, R.
    out[0].copy_(planes[2])
    out[1].copy_(planes[0])
    out[2].copy_(planes[1])
    return out


class PlanePacker:
    """Float RGB ``(3, H, W)`` frames in [0, 1] to planar GBR bytes: clamped, scaled, rounded (NaN becomes 0).

    On the CPU the packer keeps its float scratch and its byte planes from frame to frame (fresh ones would cost a
    1080p frame 31 MB of page faults); the bytes it returns are valid until the next call. Frames on a GPU are
    converted there and only the bytes come back.

    Args:
        high_bit_depth: produce native-endian 16-bit samples (``gbrp16``) instead of 8-bit ones (``gbrp``).
        gray: pack one plane (``gray``/``gray16``) from 1-channel frames, for gray outputs: an exact path, where
            a gray frame spread over three planes would be converted back to luma with rounding losses.
    """

    def __init__(self, high_bit_depth: bool, *, gray: bool = False) -> None:
        self.high_bit_depth = high_bit_depth
        self.gray = gray
        self._scratch: torch.Tensor | None = None
        self._planes: Any = None

    def pack(self, data: torch.Tensor) -> memoryview:
        """Pack one frame (1, 3 or 4 channels, any float dtype or native ``uint8``/``uint16`` samples, any device).

        Args:
            data: the frame; a fourth channel is alpha.

        Returns:
            The bytes of one ``gbrp``/``gbrp16`` frame (``gbrap``/``gbrap16`` for 4 channels).
        """
        peak = 65535.0 if self.high_bit_depth else 255.0
        channels, h, w = data.shape
        order = ((0, 0),) if self.gray else {3: ((0, 1), (1, 2), (2, 0)), 4: ((0, 1), (1, 2), (2, 0), (3, 3))}.get(
            channels, ((0, 0), (1, 0), (2, 0)))
        if not data.is_floating_point():  # native samples: at most a change of depth, then reordered
            return self._pack_samples(self._native(data), order)
        if data.device.type != "cpu":
            return self._pack_samples(narrow(data, 16 if self.high_bit_depth else 8), order)
        import numpy as np

        if self._scratch is None or self._scratch.shape != data.shape:
            self._scratch = torch.empty(data.shape, dtype=torch.float32)
            self._planes = np.empty((len(order), h, w), dtype=np.uint16 if self.high_bit_depth else np.uint8)
        # narrow()'s rule with reused buffers: one pass that scales into the scratch (half precision is widened
        # first), then in-place passes
        if data.dtype == torch.float32:
            scaled = torch.mul(data, peak, out=self._scratch)
        else:
            scaled = self._scratch.copy_(data).mul_(peak)
        scaled = scaled.nan_to_num_(nan=0.0).clamp_(0.0, peak).round_()
        src = scaled.numpy()
        # numpy narrows float32 to integers about 3x faster than torch's CPU cast (1.0 vs 3.5 ms for a 1080p
        # frame on one thread); the values are whole numbers in range already, so the unsafe cast is exact
        for dst, channel in order:
            np.copyto(self._planes[dst], src[channel], casting="unsafe")
        return memoryview(self._planes).cast("B")

    def _native(self, data: torch.Tensor) -> torch.Tensor:
        """Native samples at this packer's depth: 8 -> 16 bits is x * 257 (exact: 255 -> 65535), 16 -> 8 bits is
        round(x * 255 / 65535), which is what the float path gives (x * 255 / 65535 never ends in .5)."""
        source16 = data.dtype == torch.uint16
        if source16 == self.high_bit_depth:
            return data
        wide = data.to(torch.int32)
        if self.high_bit_depth:
            return (wide * 257).to(torch.uint16)
        return ((wide * 255 + 32767) // 65535).to(torch.uint8)

    def _pack_samples(self, data: torch.Tensor, order: tuple[tuple[int, int], ...]) -> memoryview:
        import numpy as np

        _, h, w = data.shape
        if data.device.type != "cpu":
            packed = torch.empty((len(order), h, w), dtype=data.dtype, device=data.device)
            for dst, channel in order:
                packed[dst].copy_(data[channel])
            return memoryview(packed.cpu().numpy()).cast("B")
        if self._planes is None or self._planes.shape != (len(order), h, w):
            self._scratch = None
            self._planes = np.empty((len(order), h, w), dtype=np.uint16 if self.high_bit_depth else np.uint8)
        src = data.numpy()
        for dst, channel in order:
            np.copyto(self._planes[dst], src[channel])
        return memoryview(self._planes).cast("B")
