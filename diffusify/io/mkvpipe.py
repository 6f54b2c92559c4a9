"""A minimal streaming Matroska muxer for raw RGB frames with exact timestamps.

A raw video pipe carries no timestamps, so a variable frame rate could not survive the trip to the encoder.
This writes just enough Matroska for ffmpeg's demuxer: the EBML header, a Segment of unknown size, Info with a
1 microsecond timestamp scale, one ``V_UNCOMPRESSED`` track, and one Cluster per frame holding a single
SimpleBlock. ffmpeg's own Matroska muxer refuses to store raw RGB, but its demuxer maps the ``ColourSpace``
FourCC through the same raw pixel format table as AVI/NUT, where ``G3`` 0 8 is planar gbrp, ``G3`` 0 16 is
gbrp16le, ``RGB`` 24 is rgb24 and ``RGB`` 48 is rgb48le.

Every cluster is complete before the next begins, so when the producer dies mid-frame the demuxer just sees a
truncated last cluster and ffmpeg still finalises the output with the frames before it.
"""

from __future__ import annotations

from fractions import Fraction

__all__ = ["TIMESTAMP_SCALE_NS", "MatroskaRawPipe"]

TIMESTAMP_SCALE_NS = 1000

_EBML = b"\x1a\x45\xdf\xa3"
_SEGMENT = b"\x18\x53\x80\x67"
_INFO = b"\x15\x49\xa9\x66"
_TRACKS = b"\x16\x54\xae\x6b"
_TRACK_ENTRY = b"\xae"
_VIDEO = b"\xe0"
_CLUSTER = b"\x1f\x43\xb6\x75"
_CLUSTER_TIMESTAMP = b"\xe7"
_SIMPLE_BLOCK = b"\xa3"
_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
_FOURCC = {"rgb24": b"RGB\x18", "rgb48le": b"RGB\x30", "gbrp": b"G3\x00\x08", "gbrp16le": b"G3\x00\x10",
           "gbrap": b"G4\x00\x08", "gbrap16le": b"G4\x00\x10"}


def _vint(value: int) -> bytes:
    """EBML variable-length size; the all-ones pattern of each length is reserved for "unknown"."""
    for length in range(1, 9):
        if value < (1 << (7 * length)) - 1:
            return ((1 << (7 * length)) | value).to_bytes(length, "big")
    raise ValueError(f"EBML size too large: {value}")


def _uint(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _element(element_id: bytes, payload: bytes) -> bytes:
    return element_id + _vint(len(payload)) + payload


class MatroskaRawPipe:
    """Builds the byte stream; the caller writes it to ffmpeg's stdin.

    Args:
        width: frame width.
        height: frame height.
        pix_fmt: ``gbrp``, ``gbrp16le``, ``rgb24`` or ``rgb48le``.
        fps: nominal rate, stored as the track's default frame duration (ffmpeg derives its rate guess and the
            last frame's duration from it).
    """

    def __init__(self, width: int, height: int, pix_fmt: str, fps: Fraction) -> None:
        if pix_fmt not in _FOURCC:
            raise ValueError(f"unsupported pixel format for the Matroska pipe: {pix_fmt}")
        self.width, self.height, self.pix_fmt, self.fps = width, height, pix_fmt, fps

    def header(self) -> bytes:
        """EBML header, the open-ended Segment, Info and Tracks."""
        ebml = _element(
            _EBML,
            _element(b"\x42\x86", _uint(1))  # EBMLVersion
            + _element(b"\x42\xf7", _uint(1))  # EBMLReadVersion
            + _element(b"\x42\xf2", _uint(4))  # EBMLMaxIDLength
            + _element(b"\x42\xf3", _uint(8))  # EBMLMaxSizeLength
            + _element(b"\x42\x82", b"matroska")  # DocType
            + _element(b"\x42\x87", _uint(4))  # DocTypeVersion
            + _element(b"\x42\x85", _uint(2)),  # DocTypeReadVersion
        )
        info = _element(
            _INFO,
            _element(b"\x2a\xd7\xb1", _uint(TIMESTAMP_SCALE_NS))  # TimestampScale
            + _element(b"\x4d\x80", b"diffusify")  # MuxingApp
            + _element(b"\x57\x41", b"diffusify"),  # WritingApp
        )
        video = _element(
            _VIDEO,
            _element(b"\xb0", _uint(self.width))  # PixelWidth
            + _element(b"\xba", _uint(self.height))  # PixelHeight
            + _element(b"\x2e\xb5\x24", _FOURCC[self.pix_fmt]),  # ColourSpace (FourCC)
        )
        default_duration_ns = round(Fraction(10**9) / self.fps) if self.fps else 0
        entry = (
            _element(b"\xd7", _uint(1))  # TrackNumber
            + _element(b"\x73\xc5", _uint(1))  # TrackUID
            + _element(b"\x83", _uint(1))  # TrackType: video
            + _element(b"\x9c", _uint(0))  # FlagLacing
            + _element(b"\x86", b"V_UNCOMPRESSED")  # CodecID
        )
        if default_duration_ns:
            entry += _element(b"\x23\xe3\x83", _uint(default_duration_ns))  # DefaultDuration
        tracks = _element(_TRACKS, _element(_TRACK_ENTRY, entry + video))
        return ebml + _SEGMENT + _UNKNOWN_SIZE + info + tracks

    def frame_prefix(self, timestamp: int, payload_size: int) -> bytes:
        """Cluster and SimpleBlock headers for one frame; the raw frame bytes follow them.

        Args:
            timestamp: presentation time in units of :data:`TIMESTAMP_SCALE_NS` nanoseconds, >= 0.
            payload_size: size of the raw frame in bytes.

        Returns:
            The bytes to write just before the frame.
        """
        # Track number 1 as a 1-byte vint, relative timestamp 0, flags: keyframe.
        block_header = b"\x81\x00\x00\x80"
        block_size = len(block_header) + payload_size
        cluster_timestamp = _element(_CLUSTER_TIMESTAMP, _uint(timestamp))
        block_head = _SIMPLE_BLOCK + _vint(block_size) + block_header
        cluster_size = len(cluster_timestamp) + len(block_head) + payload_size
        return _CLUSTER + _vint(cluster_size) + cluster_timestamp + block_head
