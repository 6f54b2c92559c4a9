"""Pixel packing: float RGB tensors to and from the packed planar sample bytes that ffmpeg reads and writes.

ffmpeg's planar RGB formats (``gbrp``, or native-endian ``gbrp16`` above 8 bits) store the G, B and R planes one
after another. Decoders (:class:`~diffusify.io.reader.VideoReader`, the image sequence reader) read a frame's bytes
into a :class:`FrameBuffer` and widen them with :func:`planes_to_tensor`; the video writer narrows its frames with a
:class:`PlanePacker`, by the rule of :func:`diffusify.ops.samples.narrow` (which a producer on a GPU applies
before the download, so the writer gets the very samples it would have made). Nothing here starts ffmpeg.

Native samples on the CPU stay numpy arrays from the pipe to the packer (:meth:`FrameBuffer.read_samples`,
:meth:`PlanePacker.views`), so decoding and encoding alone never import torch, and the planes are neither copied
after the read nor before the write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from diffusify.io.errors import MediaError
from diffusify.ops.samples import as_tensor, is_array, is_native, narrow

if TYPE_CHECKING:
    import torch

    from diffusify.core.frame import Frame

__all__ = ["FrameBuffer", "PlanePacker", "PlaneReader", "frame_samples", "planes_to_samples", "planes_to_tensor",
           "samples_at_depth"]


class FrameBuffer:
    """Fixed-size frames of bytes read from a decoder's pipe, looping over short reads.

    On the CPU one numpy buffer serves every frame, since :func:`planes_to_tensor` and :func:`planes_to_samples`
    copy out of it: a fresh 6 MB block per 1080p frame would otherwise be faulted in page by page each time. For a
    CUDA device each frame gets its own page-locked torch block, so the copy to the device can run asynchronously
    (torch's host allocator keeps the block until that copy has finished and then recycles it).

    Args:
        size: bytes in one frame.
        pin: use page-locked memory (only where CUDA is available).
    """

    def __init__(self, size: int, *, pin: bool = False) -> None:
        self.size = size
        self.pin = pin
        self._shared: Any = None

    def read(self, stream: BinaryIO) -> tuple[Any, int]:
        """Read one frame; the buffer is not zero-filled first.

        Args:
            stream: an unbuffered binary stream.

        Returns:
            The 1-D uint8 buffer (a numpy array, a page-locked tensor when pinned; valid until the next read) and
            how many bytes were read (less than the frame size only at end of stream).
        """
        if self.pin:
            import torch

            buf = torch.empty(self.size, dtype=torch.uint8, pin_memory=True)
            view = memoryview(buf.numpy())
        else:
            if self._shared is None:
                self._shared = np.empty(self.size, dtype=np.uint8)
            buf = self._shared
            view = memoryview(buf)
        return buf, _read_into(stream, view)

    def read_samples(self, stream: BinaryIO, height: int, width: int, high_bit_depth: bool) -> tuple[Any, int]:
        """Read one frame of planar GBR samples straight into a fresh RGB ``(3, H, W)`` numpy array: each plane
        lands where it belongs, with no copy after the read (what :func:`planes_to_samples` gives, one pass
        fewer). Returns the array and how many bytes were read, as :meth:`read`."""
        out = np.empty((3, height, width), dtype=np.uint16 if high_bit_depth else np.uint8)
        got = 0
        for rgb in _RGB_OF_PLANES:
            view = memoryview(out[rgb]).cast("B")
            n = _read_into(stream, view)
            got += n
            if n < len(view):
                break
        return out, got


class PlaneReader:
    """A decoder's frames of planar GBR samples (``gbrp``, or ``gbrp16`` with ``high_bit_depth``) read from its
    pipe as frame data: float32 RGB in [0, 1] on ``device``, or with ``native`` the samples as they are, read
    straight into a numpy array for the CPU (no torch) and a tensor on ``device`` elsewhere.

    Attributes:
        frame_bytes: the bytes of one frame on the pipe.
    """

    def __init__(self, width: int, height: int, *, high_bit_depth: bool, device: str, native: bool) -> None:
        self.width, self.height, self.high_bit_depth = width, height, high_bit_depth
        self.device, self.native = device, native
        self.frame_bytes = width * height * 3 * (2 if high_bit_depth else 1)
        self._direct = native and device == "cpu"
        self._buffer = FrameBuffer(self.frame_bytes, pin=device.startswith("cuda"))

    def read(self, stream: BinaryIO) -> tuple[Any, int]:
        """One frame as read (valid until the next read, for :meth:`data`) and how many bytes were read (fewer
        than :attr:`frame_bytes` only at the end of the stream)."""
        if self._direct:
            return self._buffer.read_samples(stream, self.height, self.width, self.high_bit_depth)
        return self._buffer.read(stream)

    def data(self, read: Any) -> Any:
        """The frame's data from what :meth:`read` returned."""
        if self._direct:
            return read
        convert = planes_to_samples if self.native else planes_to_tensor
        return convert(read, self.height, self.width, self.high_bit_depth, self.device)


def _read_into(stream: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``stream``, looping over short reads; the bytes read (fewer only at end of stream)."""
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def planes_to_tensor(
    buf: Any, height: int, width: int, high_bit_depth: bool, device: str | torch.device
) -> torch.Tensor:
    """Planar GBR bytes (``gbrp`` or native-endian ``gbrp16``) to a float32 RGB ``(3, H, W)`` tensor in [0, 1].

    Args:
        buf: one frame as a 1-D uint8 array or tensor (from :class:`FrameBuffer`); the result shares no memory
            with it.
        height: frame height.
        width: frame width.
        high_bit_depth: the buffer holds 16-bit samples.
        device: target device; the bytes are copied there and widened to float there.

    Returns:
        The frame tensor.
    """
    import torch

    planes = _gbr_planes(as_tensor(buf), height, width, high_bit_depth, torch.device(device))
    return _rgb_from_gbr(planes, torch.float32).div_(65535.0 if high_bit_depth else 255.0)


def planes_to_samples(
    buf: Any, height: int, width: int, high_bit_depth: bool, device: str | torch.device
) -> torch.Tensor:
    """Planar GBR bytes to an RGB ``(3, H, W)`` tensor of native samples: ``uint8``, or ``uint16`` for 16-bit
    buffers, on ``device`` (nothing is widened). The result shares no memory with ``buf``. (For the CPU,
    :meth:`FrameBuffer.read_samples` reads the samples into a numpy array in this layout directly.)"""
    import torch

    planes = _gbr_planes(as_tensor(buf), height, width, high_bit_depth, torch.device(device))
    return _rgb_from_gbr(planes, planes.dtype)


_RGB_FROM_GBR = ((0, 2), (1, 0), (2, 1))  # (RGB channel, GBR plane): ffmpeg's planar RGB stores G, B, R
_RGB_OF_PLANES = (1, 2, 0)  # the RGB channel of each plane, in the order the planes come


def _gbr_planes(buf: torch.Tensor, height: int, width: int, high_bit_depth: bool,
                device: torch.device) -> torch.Tensor:
    import torch

    planes = buf.view(torch.uint16 if high_bit_depth else torch.uint8).view(3, height, width)
    if device.type != "cpu":
        # Ship the compact integer frame and widen it (if at all) on the device.
        planes = planes.to(device, non_blocking=buf.is_pinned())
    return planes


def _rgb_from_gbr(planes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    import torch

    out = torch.empty(planes.shape, dtype=dtype, device=planes.device)
    for dst, src in _RGB_FROM_GBR:
        out[dst].copy_(planes[src])
    return out


def frame_samples(frame: Frame, where: str, channels: tuple[int, ...] | None = None) -> Any:
    """A frame's data as a writer takes it: ``(C, H, W)`` (a batch of one unwrapped; a tensor detached, a decoder's
    numpy array as it is).

    Raises:
        MediaError: another shape, or a channel count not in ``channels``; the message starts with ``where``.
    """
    data = frame.data
    if hasattr(data, "detach"):
        data = data.detach()
    if data.ndim == 4 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 3 or (channels is not None and data.shape[0] not in channels):
        raise MediaError(f"{where}: frame {frame.index} has shape {tuple(data.shape)}, expected (C, H, W)")
    return data


def samples_at_depth(data: Any, high_bit_depth: bool) -> Any:
    """Native samples (a tensor or a numpy array) at 8 bits, or 16 with ``high_bit_depth``: 8 -> 16 bits is
    x * 257 (exact: 255 -> 65535), 16 -> 8 bits is round(x * 255 / 65535), which is what widening and a writer's
    rounding give (x * 255 / 65535 never ends in .5). Samples at that depth already come back as they are."""
    source16 = data.dtype.itemsize == 2 if is_array(data) else data.element_size() == 2
    if source16 == high_bit_depth:
        return data
    if is_array(data):
        wide = data.astype(np.int32)
        if high_bit_depth:
            return (wide * 257).astype(np.uint16)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    import torch

    wide = data.to(torch.int32)
    if high_bit_depth:
        return (wide * 257).to(torch.uint16)
    return ((wide * 255 + 32767) // 65535).to(torch.uint8)


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

    def pack(self, data: Any) -> memoryview:
        """Pack one frame (1, 3 or 4 channels, any float dtype or native ``uint8``/``uint16`` samples, any device;
        native samples may be a decoder's numpy array).

        Args:
            data: the frame; a fourth channel is alpha.

        Returns:
            The bytes of one ``gbrp``/``gbrp16`` frame (``gbrap``/``gbrap16`` for 4 channels).
        """
        peak = 65535.0 if self.high_bit_depth else 255.0
        channels, h, w = data.shape
        order = self._order(channels)
        if is_native(data):  # native samples: at most a change of depth, then reordered
            return self._pack_samples(samples_at_depth(data, self.high_bit_depth), order)
        if data.device.type != "cpu":
            return self._pack_samples(narrow(data, 16 if self.high_bit_depth else 8), order)
        import torch

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

    def views(self, data: Any) -> list[memoryview]:
        """The frame's bytes as buffers to write one after another: for native samples on the CPU at this
        packer's depth, its planes themselves, in the file's order (no copy: a 1080p frame is 6 MB a pass);
        otherwise :meth:`pack`'s one buffer (valid until the next call)."""
        if is_native(data) and not self.gray:
            arr = data if is_array(data) else (data.numpy() if data.device.type == "cpu" else None)
            if arr is not None and (arr.dtype.itemsize == 2) == self.high_bit_depth:
                planes = [arr[channel] for _dst, channel in self._order(arr.shape[0])]
                if all(p.flags.c_contiguous for p in planes):
                    return [memoryview(p).cast("B") for p in planes]
        return [self.pack(data)]

    def _order(self, channels: int) -> tuple[tuple[int, int], ...]:
        """(plane, channel) pairs: the file's planes (G, B, R, alpha) and the frame's channel each comes from."""
        if self.gray:
            return ((0, 0),)
        return {3: ((0, 1), (1, 2), (2, 0)), 4: ((0, 1), (1, 2), (2, 0), (3, 3))}.get(channels, ((0, 0), (1, 0), (2, 0)))

    def _pack_samples(self, data: Any, order: tuple[tuple[int, int], ...]) -> memoryview:
        _, h, w = data.shape
        if not is_array(data) and data.device.type != "cpu":
            import torch

            packed = torch.empty((len(order), h, w), dtype=data.dtype, device=data.device)
            for dst, channel in order:
                packed[dst].copy_(data[channel])
            return memoryview(packed.cpu().numpy()).cast("B")
        if self._planes is None or self._planes.shape != (len(order), h, w):
            self._scratch = None
            self._planes = np.empty((len(order), h, w), dtype=np.uint16 if self.high_bit_depth else np.uint8)
        src = data if is_array(data) else data.numpy()
        for dst, channel in order:
            np.copyto(self._planes[dst], src[channel])
        return memoryview(self._planes).cast("B")
