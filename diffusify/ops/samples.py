"""Frames at their native depth: 8- or 16-bit samples (``uint8``/``uint16`` tensors) as decoded, and their widening
to float32 in [0, 1] where a processor computes.

Edges carry what the decoder produced until a node needs float (see ``Processor.native``); the widening happens
once, on the consumer's device, and is exact (``x / 255`` or ``x / 65535`` in float32, as a float-producing
reader would have made). Writers pack native samples straight into their bytes.

A decoder on the CPU hands its samples on as a numpy array, and so do the cheap nodes that say they run without
torch (see ``Processor.torch_free``): a graph of such nodes (a transcode, a crop, a colour grade, a blend) never
imports torch (its import is most of a short run's start-up). :func:`as_tensor` makes a torch tensor of such an
array without a copy, where a processor computes with torch; the functions here take either and give back the kind
they got.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the processor base imports this module at validation time, which must not import torch
    import torch

__all__ = ["LevelTables", "affine_table", "as_tensor", "depth", "difference", "is_array", "is_native", "level_table",
           "lookup", "mix", "mix_table", "narrow", "pair_lookup", "pair_table", "peak", "widen"]


def is_array(data: Any) -> bool:
    """``data`` is a numpy array (samples straight from a CPU decoder), not a torch tensor; numpy is not imported
    to find out."""
    return type(data).__module__ == "numpy"


def as_tensor(data: Any) -> torch.Tensor:
    """A frame's data as a torch tensor: a numpy array of samples is wrapped, sharing its memory; a tensor comes
    back as it is."""
    if not is_array(data):
        return data
    import torch

    return torch.from_numpy(data)


def is_native(data: Any) -> bool:
    """The frame's data (a tensor, or a decoder's numpy array) holds integer samples (native depth), not float
    values in [0, 1]."""
    if is_array(data):
        return data.dtype.kind == "u"
    return not data.is_floating_point()


def depth(data: Any) -> int:
    """The bits of native samples (a tensor or a numpy array): 8 for ``uint8``, 16 for ``uint16``."""
    return 8 if (data.itemsize if is_array(data) else data.element_size()) == 1 else 16


def peak(data: Any) -> float:
    """The largest sample value of native samples: 255 for ``uint8``, 65535 for ``uint16``."""
    return 255.0 if depth(data) == 8 else 65535.0


def widen(data: Any) -> torch.Tensor:
    """Float32 values in [0, 1] for native samples, a tensor or a decoder's numpy array (a float tensor comes back
    as it is)."""
    data = as_tensor(data)
    if data.is_floating_point():
        return data
    return data.float().div_(peak(data))


def narrow(data: torch.Tensor, depth: int) -> torch.Tensor:
    """Float values in [0, 1] to native samples of ``depth`` bits, on the tensor's device: the rule by which
    writers narrow float frames (:class:`PlanePacker`), so narrowing first changes no output byte.

    Scaled in float32 (half and bfloat16 are widened first: scaled in half, values would move by up to a sixteenth
    of a level), NaN becomes 0, clamped to the range, rounded half to even.

    Args:
        data: a float tensor of any shape (native ``uint8``/``uint16`` samples come back as they are).
        depth: 8 (``uint8``) or 16 (``uint16``).

    Returns:
        A contiguous tensor of samples, the shape of ``data``.
    """
    import torch

    if depth not in (8, 16):
        raise ValueError(f"depth must be 8 or 16 (got {depth})")
    if not data.is_floating_point():
        return data
    peak = 65535.0 if depth == 16 else 255.0
    scaled = data.float().mul(peak).nan_to_num_(nan=0.0).clamp_(0.0, peak).round_()
    return scaled.to(torch.uint16 if depth == 16 else torch.uint8, memory_format=torch.contiguous_format)


def level_table(fn: Callable[[torch.Tensor], torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """The table of a point operation at ``like``'s depth: entry ``i`` is what the float path gives for level ``i``
    (widened, ``fn`` applied in float32, narrowed as a writer does), so a lookup is bit-identical to that path
    followed by a writer. ``fn`` maps a ``(C, 1, L)`` float tensor of every level per channel."""
    import torch

    levels = torch.arange(int(peak(like)) + 1, dtype=torch.int32, device=like.device).to(like.dtype)
    channels = like.shape[0]
    grid = widen(levels.expand(channels, 1, -1).contiguous())
    return narrow(fn(grid), depth(like)).reshape(channels, -1)


def affine_table(scale: float, offset: float, bits: int) -> Any:
    """:func:`level_table` of ``clamp(x * scale + offset, 0, 1)`` at ``bits`` (8 or 16), without torch: a ``(1, L)``
    numpy array. The float path's arithmetic, step by step in float32 (``x = level / peak``, one rounding for the
    product, one for the sum, clamp, narrowing by :func:`narrow`'s rule), so its entries are that path's: a
    scale of 1 or an offset of 0 changes nothing in it (``x * 1`` and ``y + 0`` are exact)."""
    import numpy as np

    top = 255 if bits == 8 else 65535
    y = np.arange(top + 1, dtype=np.float32) / np.float32(top)
    np.multiply(y, np.float32(scale), out=y)
    np.add(y, np.float32(offset), out=y)
    np.clip(y, 0.0, 1.0, out=y)
    np.multiply(y, np.float32(top), out=y)
    np.rint(y, out=y)  # half to even, as torch's round
    return y.astype(np.uint8 if bits == 8 else np.uint16).reshape(1, -1)


_CHUNK = 1 << 16  # samples gathered at a time: their int64 indices (512 KiB) stay in the CPU's cache


def lookup(data: Any, table: Any) -> Any:
    """``table[c, data[c]]`` for every sample: a point operation on native samples in one gather.

    Args:
        data: ``(C, H, W)`` ``uint8``/``uint16`` samples: a tensor (the result is one, on its device) or a numpy
            array (the result is one).
        table: ``(C, L)`` of the same dtype, or ``(1, L)`` for every channel: a tensor or a numpy array (moved to
            a GPU tensor's device).
    """
    if not is_array(data) and data.device.type != "cpu":
        return _lookup_torch(data, table)
    import numpy as np

    src, tab = _host_array(data), _host_array(table)
    out = np.empty_like(src)
    # one table for every channel: the whole frame in one pass; else channel by channel
    parts = [(tab[0], src.reshape(-1), out.reshape(-1))] if tab.shape[0] == 1 else \
        [(tab[min(c, tab.shape[0] - 1)], src[c].reshape(-1), out[c].reshape(-1)) for c in range(src.shape[0])]
    for row, first, into in parts:
        if src.dtype == np.uint8 and first.size % 2 == 0:
            # two samples a gather: a table of every pair of bytes (128 KiB), read as 16-bit words (1.8x faster)
            row, first, into = _word_table(row.tobytes()), first.view(np.uint16), into.view(np.uint16)
        _gather(row, into, first)
    return _like(out, data)


def _lookup_torch(data: torch.Tensor, table: Any) -> torch.Tensor:
    """:func:`lookup` in torch, on the tensor's device (a GPU's path; it runs on any device)."""
    import torch

    tab = as_tensor(table).to(data.device)
    index = data.to(torch.int64)
    if tab.shape[0] == 1:
        return tab[0][index]
    return torch.stack([tab[min(c, tab.shape[0] - 1)][index[c]] for c in range(data.shape[0])])


def _host_array(data: Any) -> Any:
    """A CPU tensor's or a numpy array's samples as a C-contiguous numpy array (a copy only where a view, a
    crop's, is not contiguous)."""
    import numpy as np

    return np.ascontiguousarray(data if is_array(data) else data.contiguous().numpy())


def _like(result: Any, given: Any) -> Any:
    """A numpy result as the kind of data it was made from: a numpy array for an array, a tensor (sharing its
    memory) for a tensor."""
    if is_array(given):
        return result
    import torch

    return torch.from_numpy(result)


@functools.lru_cache(maxsize=64)
def _word_table(row: bytes) -> Any:
    """The table of a 256-entry byte table for every pair of bytes, as 16-bit words (read-only), kept for the
    tables in use: making it is 0.4 ms, a tenth of a 1080p frame's gather."""
    import numpy as np

    words = np.frombuffer(row, dtype=np.uint8)[_byte_pairs()].reshape(-1).view(np.uint16)
    words.flags.writeable = False
    return words


@functools.cache
def _byte_pairs() -> Any:
    """Every pair of bytes, ``(65536, 2)``, in the order a 16-bit word of this machine holds them."""
    import numpy as np

    return np.arange(65536, dtype=np.uint16).view(np.uint8).reshape(-1, 2)


def pair_lookup(a: Any, b: Any, table: Any) -> Any:
    """``table[a * 256 + b]`` for every pair of 8-bit samples: any function of two samples in one gather.

    Args:
        a, b: ``(C, H, W)`` ``uint8`` samples of one shape, both tensors or both numpy arrays (the result is of
            their kind).
        table: ``(65536,)`` ``uint8``, from :func:`pair_table` (a numpy array, or a tensor).
    """
    if not is_array(a) and a.device.type != "cpu":
        return _pair_lookup_torch(a, b, table)
    import numpy as np

    first, second = _host_array(a), _host_array(b)
    out = np.empty_like(first)
    _gather(_host_array(table), out.reshape(-1), first.reshape(-1), second.reshape(-1))
    return _like(out, a)


def _pair_lookup_torch(a: torch.Tensor, b: torch.Tensor, table: Any) -> torch.Tensor:
    """:func:`pair_lookup` in torch, on the tensors' device (a GPU's path; it runs on any device)."""
    import torch

    return as_tensor(table).to(a.device)[(a.to(torch.int64) << 8) | b.to(torch.int64)]


def _gather(table: Any, out: Any, first: Any, second: Any = None) -> None:
    """``out = table[first]`` (or ``table[first * 256 + second]``) on flat numpy arrays, a cache-sized chunk at a
    time: numpy widens a gather's indices to int64 first, which for a whole 1080p frame is a 50 MB array and
    more time than the gather itself."""
    import numpy as np

    index = np.empty(min(_CHUNK, first.size), dtype=np.intp)
    for start in range(0, first.size, _CHUNK):
        stop = min(first.size, start + _CHUNK)
        k = index[:stop - start]
        np.copyto(k, first[start:stop], casting="unsafe")
        if second is not None:
            np.left_shift(k, 8, out=k)
            np.bitwise_or(k, second[start:stop], out=k, casting="unsafe")
        np.take(table, k, out=out[start:stop], mode="clip")


_MIX_CHUNK = 1 << 17  # samples a step: two 16-bit scratch rows of 256 KiB stay in the core's L2 cache


def _mix128(a: Any, b: Any, w: int) -> Any:
    """:func:`mix` of 8-bit numpy samples with a weight of ``w`` 128ths: ``a + ((b - a) * w + 64 >> 7)`` in 16 bits
    (the same as ``(a * (128 - w) + b * w + 64) >> 7``; ``|(b - a) * w| + 64`` fits), a cache-sized chunk at a
    time: seven passes over a whole 1080p frame in 16 bits would go to memory and back each time (3.2 vs 6.3 ms
    a frame on one thread, measured)."""
    import numpy as np

    out = np.empty_like(a)
    flat_a, flat_b, flat_out = a.reshape(-1), b.reshape(-1), out.reshape(-1)
    if w == 64:
        _average(flat_a, flat_b, flat_out)
        return out
    rows = np.empty((2, min(_MIX_CHUNK, flat_a.size)), dtype=np.int16)
    for start in range(0, flat_a.size, _MIX_CHUNK):
        stop = min(flat_a.size, start + _MIX_CHUNK)
        x, d = rows[0, :stop - start], rows[1, :stop - start]
        np.copyto(x, flat_a[start:stop])
        np.copyto(d, flat_b[start:stop])
        np.subtract(d, x, out=d)
        np.multiply(d, w, out=d)
        np.add(d, 64, out=d)
        np.right_shift(d, 7, out=d)
        np.add(x, d, out=x)
        np.copyto(flat_out[start:stop], x, casting="unsafe")
    return out


def _average(a: Any, b: Any, out: Any) -> None:
    """``out = (a + b + 1) >> 1`` on flat 8-bit numpy samples, as ``(a | b) - ((a ^ b) >> 1)``: the 128ths
    arithmetic at a weight of 64 (``a + ((b - a) * 64 + 64 >> 7)`` is the same level), in 8 bits, so four passes
    over a cache-sized chunk and no widening (about 2 ms a 1080p frame on one thread against 3 ms or more)."""
    import numpy as np

    odd = np.empty(min(_MIX_CHUNK, a.size), dtype=np.uint8)
    for start in range(0, a.size, _MIX_CHUNK):
        stop = min(a.size, start + _MIX_CHUNK)
        half, into = odd[:stop - start], out[start:stop]
        np.bitwise_xor(a[start:stop], b[start:stop], out=half)
        np.right_shift(half, 1, out=half)
        np.bitwise_or(a[start:stop], b[start:stop], out=into)
        np.subtract(into, half, out=into)


def pair_table(fn: Callable[[Any, Any], Any]) -> Any:
    """The table of a function of two 8-bit samples for :func:`pair_lookup`, a ``(65536,)`` ``uint8`` numpy
    array: ``fn`` gets every pair as float64 numpy levels (``a``, ``b`` in 0..255) and returns exact levels,
    rounded here to the nearest (halves up) and clamped."""
    import numpy as np

    levels = np.arange(256, dtype=np.float64)
    values = np.asarray(fn(np.repeat(levels, 256), np.tile(levels, 256)), dtype=np.float64)
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def mix_table(weight: float) -> Any:
    """The :func:`pair_table` of :func:`mix` for 8-bit samples (the same levels)."""
    return pair_table(lambda a, b: a + (b - a) * weight)


def mix(a: Any, b: Any, weight: float) -> Any:
    """``(1 - weight) * a + weight * b`` on native samples of one dtype (both tensors or both numpy arrays; the
    result is of their kind), rounded to the nearest level, halves up (``floor(a + weight * (b - a) + 1/2)``: what
    the float path and a writer's rounding give, but at a half level). A weight in 128ths (0.25, 0.5...) is 16-bit
    integer arithmetic on 8-bit samples, exact; otherwise 8-bit samples take :func:`pair_lookup` with a
    :func:`mix_table` where speed matters: this is the arithmetic at any depth."""
    import numpy as np

    if not is_array(a) and a.device.type != "cpu":
        return _mix_torch(a, b, weight)
    if depth(a) == 8 and (weight * 128).is_integer():
        return _like(_mix128(_host_array(a), _host_array(b), int(weight * 128)), a)
    top = int(peak(a))
    steps = _mix_steps(top, weight)
    first, second = _host_array(a), _host_array(b)
    sa = first.astype(steps.dtype)
    d = second.astype(steps.dtype)
    d -= sa
    d += top
    sa += np.take(steps, d)
    return _like(sa.astype(first.dtype), a)


@functools.lru_cache(maxsize=64)
def _mix_steps(top: int, weight: float) -> Any:
    """``floor(d * weight + 1/2)`` for every difference ``d`` of two samples (``-top..top``), computed in float64,
    as integers wide enough for the sum with a sample (16 bits for 8-bit samples, 32 for 16-bit ones); read-only,
    kept per depth and weight (at 16 bits it is 131,071 entries, made once instead of every frame)."""
    import numpy as np

    steps = np.floor(np.arange(-top, top + 1, dtype=np.float64) * weight + 0.5)
    steps = steps.astype(np.int16 if top == 255 else np.int32)
    steps.flags.writeable = False
    return steps


def _mix_torch(a: torch.Tensor, b: torch.Tensor, weight: float) -> torch.Tensor:
    """:func:`mix` in torch, on the tensors' device (a GPU's path; it runs on any device)."""
    import torch

    if depth(a) == 8 and (weight * 128).is_integer():
        w = int(weight * 128)
        return a.to(torch.int16).mul_(128 - w).add_(b.to(torch.int16).mul_(w)).add_(64).bitwise_right_shift_(7) \
            .to(torch.uint8)
    top = int(peak(a))
    table = _mix_steps_on(top, weight, str(a.device))
    wide = a.to(torch.int32)
    return wide.add_(table[(b.to(torch.int32) - wide + top).to(torch.int64)]).to(a.dtype)


@functools.lru_cache(maxsize=16)
def _mix_steps_on(top: int, weight: float, device: str) -> torch.Tensor:
    """:func:`_mix_steps` as int32 on ``device``, kept: made and uploaded once, not every frame (at 16 bits it is
    512 KiB)."""
    import torch

    return torch.from_numpy(_mix_steps(top, weight).astype("int32")).to(device)  # a copy: the kept one is read-only


def difference(a: Any, b: Any) -> Any:
    """``|a - b|`` of native samples of one dtype, exact, at their depth (both tensors or both numpy arrays; the
    result is of their kind)."""
    if not is_array(a):
        import torch

        return (a.to(torch.int32) - b.to(torch.int32)).abs_().to(a.dtype)
    import numpy as np

    return np.abs(a.astype(np.int32) - b).astype(a.dtype)


class LevelTables:
    """The table of one point operation, made once per sample depth and device and kept: by the float path
    itself (``fn``, with torch), or, for ``clamp(x * scale + offset, 0, 1)``, by :func:`affine_table` (given as
    ``affine=(scale, offset)``; no torch: numpy samples stay numpy)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor] | None = None, *,
                 affine: tuple[float, float] | None = None) -> None:
        if (fn is None) == (affine is None):
            raise ValueError("give the float path (fn) or the affine map (affine), one of them")
        self.fn = fn
        self.affine = affine
        self._tables: dict[tuple[int, str], Any] = {}

    def lookup(self, data: Any) -> Any:
        """:func:`lookup` of ``data`` (a tensor or a numpy array) in the operation's table at its depth (one table
        for every channel)."""
        on = "cpu" if is_array(data) else str(data.device)
        key = (depth(data), on)
        if key not in self._tables:
            if self.affine is not None:
                table = affine_table(*self.affine, depth(data))
                self._tables[key] = table if on == "cpu" else as_tensor(table).to(data.device)
            else:
                assert self.fn is not None
                self._tables[key] = level_table(self.fn, as_tensor(data)[:1])
        return lookup(data, self._tables[key])
