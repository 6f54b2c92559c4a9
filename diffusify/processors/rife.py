"""Frame interpolation with RIFE: ``interpolate.rife``.

The networks are written here from the published architectures and load the released checkpoints as they are
(``.pkl``/``.pth`` state dicts, read weights-only) or converted to safetensors; the version is told by the keys:

* RIFE 4.25/4.26 (IFNet: a feature head, five flow blocks refining a bidirectional flow from 1/16 to full scale,
  the timestep as an input, so any t in (0, 1) in one pass). The bundled model, in fp16 (``weights/PROVENANCE.md``).
* RIFE HDv3 (v3.x: three symmetric flow blocks, the midpoint only). Other dyadic times (1/4, 3/4...) are made by
  halving; a rate it cannot reach exactly is refused at validation, never approximated.

Times: output frame k is at ``k / fps_out`` on the source's timeline (sources start at 0). Between source frames i
and i+1 (times p_i and p_{i+1}) every grid time T gets ``t = (T - p_i) / (p_{i+1} - p_i)``; a grid time that is a
source time passes that frame through unchanged. After the last source frame the grid goes on until one source
frame later (the last frame repeats there), so a constant-rate input of N frames gives exactly
``ceil(N * fps_out / fps_in)`` frames and lasts exactly as long: audio stays in sync. Constant-rate inputs use the
ideal times ``i / fps_in`` for the grid (a container's millisecond rounding cannot shift a frame across a grid
point); variable-rate inputs use their real times.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from diffusify.core.stream import StreamInfo
from diffusify.processors.base import (
    FrameRate,
    ModelRef,
    Params,
    PlanContext,
    Processor,
    Resources,
    SegmentRule,
    StreamError,
    Temporal,
    parse_fps,
)
from diffusify.processors.temporal import retimed_stream

if TYPE_CHECKING:
    import torch

    from diffusify.core.frame import Frame, Window

BUNDLED = "rife-4.25"


# ---- the network ------------------------------------------------------------------------------------------------
def _network() -> Any:
    """The IFNet class (torch is imported only when a node sets up)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        n, _, h, w = flow.shape
        ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype).view(1, h, 1).expand(n, h, w)
        xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype).view(1, 1, w).expand(n, h, w)
        gx = xs + flow[:, 0] / ((img.shape[3] - 1.0) / 2.0)
        gy = ys + flow[:, 1] / ((img.shape[2] - 1.0) / 2.0)
        grid = torch.stack((gx, gy), dim=3)
        return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)

    def conv(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True))

    class ResConv(nn.Module):
        def __init__(self, c: int):
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, 1, 1)
            self.beta = nn.Parameter(torch.ones(1, c, 1, 1))
            self.relu = nn.LeakyReLU(0.2, inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.relu(self.conv(x) * self.beta + x)

    class Head(nn.Module):
        """Four feature channels at full resolution for each image."""

        def __init__(self) -> None:
            super().__init__()
            self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
            self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
            self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
            self.cnn3 = nn.ConvTranspose2d(16, 4, 4, 2, 1)
            self.relu = nn.LeakyReLU(0.2, inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.relu(self.cnn0(x))
            x = self.relu(self.cnn1(x))
            x = self.relu(self.cnn2(x))
            return self.cnn3(x)

    class FlowBlock(nn.Module):
        """Estimates (or refines) the flow at 1/scale: 4 flow channels, 1 mask, 8 features out."""

        def __init__(self, cin: int, c: int):
            super().__init__()
            self.conv0 = nn.Sequential(conv(cin, c // 2, 2), conv(c // 2, c, 2))
            self.convblock = nn.Sequential(*[ResConv(c) for _ in range(8)])
            self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * 13, 4, 2, 1), nn.PixelShuffle(2))

        def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float) -> tuple[torch.Tensor, ...]:
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
            if flow is not None:
                flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
                x = torch.cat((x, flow), 1)
            out = self.lastconv(self.convblock(self.conv0(x)))
            out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
            return out[:, :4] * scale, out[:, 4:5], out[:, 5:]

    class IFNet(nn.Module):
        """RIFE 4.25/4.26. ``forward(img0, img1, t, scales)``: ``(N, 3, H, W)`` images in [0, 1] with H and W
        multiples of 64 / ``scale``, ``t`` a ``(N, 1, 1, 1)`` tensor of timesteps in (0, 1); returns the frame at
        each t, ``(N, 3, H, W)``."""

        def __init__(self) -> None:
            super().__init__()
            self.block0 = FlowBlock(7 + 8, 192)
            self.block1 = FlowBlock(8 + 4 + 8 + 8, 128)
            self.block2 = FlowBlock(8 + 4 + 8 + 8, 96)
            self.block3 = FlowBlock(8 + 4 + 8 + 8, 64)
            self.block4 = FlowBlock(8 + 4 + 8 + 8, 32)
            self.encode = Head()

        def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: torch.Tensor,
                    scales: tuple[float, ...]) -> torch.Tensor:
            t = t.expand(img0.shape[0], 1, img0.shape[2], img0.shape[3]).to(img0.dtype)
            f0, f1 = self.encode(img0), self.encode(img1)
            blocks = (self.block0, self.block1, self.block2, self.block3, self.block4)
            flow = mask = feat = None
            w0, w1 = img0, img1
            for block, scale in zip(blocks, scales, strict=True):
                if flow is None:
                    flow, mask, feat = block(torch.cat((img0, img1, f0, f1, t), 1), None, scale)
                else:
                    x = torch.cat((w0, w1, warp(f0, flow[:, :2]), warp(f1, flow[:, 2:4]), t, mask, feat), 1)
                    delta, mask, feat = block(x, flow, scale)
                    flow = flow + delta
                w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
            m = torch.sigmoid(mask)
            return w0 * m + w1 * (1 - m)

    def prelu_conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.PReLU(cout))

    class HDv3Block(nn.Module):
        """One HDv3 flow block: the residual flow and mask at 1/scale."""

        def __init__(self, cin: int, c: int):
            super().__init__()
            self.conv0 = nn.Sequential(prelu_conv(cin, c // 2, 2), prelu_conv(c // 2, c, 2))
            for i in range(4):
                setattr(self, f"convblock{i}", nn.Sequential(prelu_conv(c, c), prelu_conv(c, c)))
            self.conv1 = nn.Sequential(nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.PReLU(c // 2),
                                       nn.ConvTranspose2d(c // 2, 4, 4, 2, 1))
            self.conv2 = nn.Sequential(nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.PReLU(c // 2),
                                       nn.ConvTranspose2d(c // 2, 1, 4, 2, 1))

        def forward(self, x: torch.Tensor, flow: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            feat = self.conv0(torch.cat((x, flow), 1))
            for i in range(4):
                feat = getattr(self, f"convblock{i}")(feat) + feat
            f = F.interpolate(self.conv1(feat), scale_factor=scale, mode="bilinear", align_corners=False) * scale
            m = F.interpolate(self.conv2(feat), scale_factor=scale, mode="bilinear", align_corners=False)
            return f, m

    class IFNetHDv3(nn.Module):
        """RIFE HDv3 (v3.x): the midpoint only. ``forward(img0, img1, t, scales)`` with every t = 0.5 (the
        caller makes other dyadic times by halving recursively); H and W multiples of 32 / scale."""

        def __init__(self) -> None:
            super().__init__()
            self.block0 = HDv3Block(7 + 4, 90)
            self.block1 = HDv3Block(7 + 4, 90)
            self.block2 = HDv3Block(7 + 4, 90)

        def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: torch.Tensor,
                    scales: tuple[float, ...]) -> torch.Tensor:
            n, _, h, w = img0.shape
            flow = img0.new_zeros(n, 4, h, w)
            mask = img0.new_zeros(n, 1, h, w)
            w0, w1 = img0, img1
            for block, scale in zip((self.block0, self.block1, self.block2), scales[-3:], strict=True):
                f0, m0 = block(torch.cat((w0, w1, mask), 1), flow, scale)
                f1, m1 = block(torch.cat((w1, w0, -mask), 1), torch.cat((flow[:, 2:4], flow[:, :2]), 1), scale)
                flow = flow + (f0 + torch.cat((f1[:, 2:4], f1[:, :2]), 1)) / 2
                mask = mask + (m0 - m1) / 2
                w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
            m = torch.sigmoid(mask)
            return w0 * m + w1 * (1 - m)

    return {"4.25": IFNet, "hdv3": IFNetHDv3}


_NET_LOCK = threading.Lock()
_NET_CLASS: Any = None
ALIGN = {"4.25": 64, "hdv3": 32}


def _version_of(keys: set[str]) -> str | None:
    if "block4.convblock.0.beta" in keys and "encode.cnn0.weight" in keys:
        return "4.25"
    if "block0.convblock0.0.0.weight" in keys and "block2.conv2.2.weight" in keys:
        return "hdv3"
    return None


def rife_version(path: str) -> str:
    """``4.25`` (RIFE 4.25/4.26) or ``hdv3`` (RIFE HDv3), read from the file's keys; a safetensors file is read
    without torch. Raises StreamError for other files."""
    keys: set[str]
    if path.endswith(".safetensors"):
        import json
        import struct

        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            keys = set(json.loads(fh.read(size))) - {"__metadata__"}
    else:
        keys = set(_read_state(path))
    version = _version_of({k.removeprefix("module.") for k in keys})
    if version is None:
        raise StreamError(f"{path}: not a RIFE 4.25/4.26 or HDv3 model (its keys match neither)", param="model")
    return version


def _read_state(path: str) -> Mapping[str, Any]:
    import torch

    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            import warnings

            with warnings.catch_warnings():  # torch's notes on odd pickle protocols are not the user's concern
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a refused pickle, a damaged file
        from diffusify.core.errors import one_line

        raise StreamError(f"{path}: cannot read it as a RIFE state dict ({one_line(str(e), 200)}); use the released "
                          ".pkl/.pth or a .safetensors", param="model") from None
    if not isinstance(state, Mapping):
        raise StreamError(f"{path}: holds a {type(state).__name__}, not a state dict", param="model")
    return state


def load_rife(path: str, device: str = "cpu") -> Any:
    """A RIFE network with the weights of ``path``: a released ``.pkl``/``.pth`` state dict (read weights-only, so
    no pickled code runs) or a ``.safetensors``; RIFE 4.25/4.26 or HDv3, told apart by the keys. Training-only
    keys (``teacher.*``, ``caltime.*``, ``block_tea.*``) and a ``module.`` prefix are ignored. Raises StreamError
    for anything else. The network has ``.version`` (``4.25`` or ``hdv3``)."""
    global _NET_CLASS
    with _NET_LOCK:
        if _NET_CLASS is None:
            _NET_CLASS = _network()
    state = {k.removeprefix("module."): v for k, v in _read_state(path).items()}
    state = {k: v for k, v in state.items() if not k.startswith(("teacher.", "caltime.", "block_tea."))}
    version = _version_of(set(state))
    if version is None:
        raise StreamError(f"{path}: not a RIFE 4.25/4.26 or HDv3 model (its keys match neither)", param="model")
    net = _NET_CLASS[version]()
    expected = net.state_dict()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
        missing = sorted(set(expected) - set(state))[:3]
        raise StreamError(f"{path}: a RIFE {version} model with other layers or shapes (it lacks "
                          f"{missing or 'the expected shapes'})", param="model")
    net.load_state_dict({k: v.float() for k, v in state.items()})
    net.version = version
    return net.eval().to(device)


def resolve_rife(name: str | None) -> str:
    """A model file for ``name``: the path itself, a manifest entry, or (None) the bundled RIFE 4.25."""
    from diffusify.processors.spandrel import resolve_model

    return resolve_model(name or BUNDLED)


# ---- the processor -------------------------------------------------------------------------------------------------
class InterpolateParams(Params):
    model: ModelRef | None = Field(
        None, description="RIFE 4.25/4.26 or HDv3 model: a released .pkl/.pth, a .safetensors, or a name from "
                          "weights/models.yaml; empty uses the bundled RIFE 4.25. HDv3 makes midpoints only: it "
                          "takes 2, 4, 8 or 16 times a constant source rate.")
    multiplier: int | None = Field(None, ge=2, le=16, description="Output frames per input frame (instead of fps).")
    fps: FrameRate | None = Field(None, description="Target frame rate, exact: 60000/1001, 59.94, 50 (instead "
                                                    "of multiplier).")
    scale: float = Field(1.0, ge=0.25, le=4.0, description="Flow resolution: 0.5 for 4K, 0.25 for 8K; larger "
                                                           "for small frames.")
    scene_change: Literal["auto", "marks", "off"] = Field(
        "auto", description="auto: no interpolation across a cut, using scene.detect's marks or, without them, "
                            "the same measure here; marks: only scene.detect's marks; off: interpolate everywhere.")
    scene_threshold: float = Field(10.0, ge=0, le=100, description="Cut score (as scene.detect's) for auto.")
    at_cut: Literal["hold", "blend"] = Field(
        "hold", description="Between the two frames of a cut: hold the frame before it (the default), or blend "
                            "the two linearly (a short cross-fade instead of a warp between unrelated pictures).")
    precision: Literal["auto", "fp32", "fp16"] = Field(
        "auto", description="auto: fp16 on CUDA, fp32 on the CPU.")

    @model_validator(mode="after")
    def _rate(self) -> InterpolateParams:
        if (self.multiplier is None) == (self.fps is None):
            raise ValueError("give multiplier or fps (one of them)")
        return self


def _first_t(ratio: Fraction) -> Fraction:
    """The first timestep that is not a source time, for an output/input rate ratio."""
    k = 1
    while (k / ratio).denominator == 1:
        k += 1
    t = k / ratio
    return t - int(t)


class Interpolate(Processor):
    """Interpolate frames with RIFE 4.x to a multiple of the rate or to an exact target rate.

    Input: ``(3, H, W)`` float32 in [0, 1], any size (padded to the model's multiple of 64 and cropped back).
    Output: frames on the exact grid of the target rate (see the module's description of times); source frames on
    the grid pass through unchanged; no interpolation across a scene cut (the frame before it repeats).
    """

    type_name = "interpolate.rife"
    Params = InterpolateParams
    temporal = Temporal.WINDOW
    window = (1, 1)  # the frame before lets the cut measure see the change of motion, as scdet does
    resources = Resources(device="gpu", heavy=True)

    @classmethod
    def target(cls, params: InterpolateParams, src: StreamInfo) -> Fraction:
        return src.fps * params.multiplier if params.multiplier else parse_fps(params.fps)  # type: ignore[arg-type]

    @classmethod
    def infer_stream(cls, params: InterpolateParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        src = inputs["input"]
        target = cls.target(params, src)
        out = retimed_stream(src, target, "fps" if params.fps else "multiplier")
        version = rife_version(resolve_rife(params.model))  # a missing or foreign model is reported here
        if version == "hdv3":
            ratio = target / src.fps
            if src.vfr or ratio.denominator != 1 or ratio.numerator & (ratio.numerator - 1):
                needs = "times between frames that vary" if src.vfr else \
                    f"t = {Fraction(1, 1) / ratio if ratio.denominator == 1 else _first_t(ratio)}"
                raise StreamError(f"RIFE HDv3 makes midpoints only (t = 1/2, 1/4... by halving), so it needs a "
                                  f"constant-rate source and 2, 4, 8 or 16 times its rate; this asks for {needs}: "
                                  "use a RIFE 4.x model (the bundled rife-4.25 takes any t)",
                                  param="fps" if params.fps else "multiplier")
        return out

    @classmethod
    def segmenting(cls, params: InterpolateParams, inputs: Mapping[str, StreamInfo],
                   output: StreamInfo | None) -> SegmentRule | str:
        # the window (1, 1) for the cut measure, and the next frame of the last pair
        return SegmentRule(pre=1, post=2, grid=cls.target(params, inputs["input"]))

    @classmethod
    def memory_estimate(cls, params: InterpolateParams, inputs: Mapping[str, StreamInfo],
                        output: StreamInfo | None) -> int:
        src = inputs.get("input")
        area = (src.width * src.height) if src else 0
        return 5_700_000 * 4 + int(area * 4 * 400 / max(params.scale, 0.25))

    def setup(self) -> None:
        import torch

        dev = self._torch_device()
        self.net = load_rife(resolve_rife(self.params.model), str(dev))
        self.align = ALIGN[self.net.version]
        p = self.params
        self.dtype = torch.float16 if (p.precision == "fp16" or p.precision == "auto" and dev.type == "cuda") \
            else torch.float32
        self.net.to(self.dtype)
        src = self.input_streams["input"]
        self.step_out = 1 / self.target(p, src)
        self.step_in = 1 / src.fps
        self.cfr = not src.vfr
        self.scales = tuple(s / p.scale for s in (16, 8, 4, 2, 1))
        # one call at the stream's size, so kernels are chosen and buffers sized before the first frame (in
        # setup time, not in the first frames' time)
        per_pair = max(1, math.ceil(self.step_in / self.step_out) - 1)
        blank = torch.zeros(3, src.height, src.width, device=dev)
        with torch.inference_mode():
            self._interpolate(blank, blank, [Fraction(i + 1, per_pair + 1) for i in range(per_pair)])

    # the grid ------------------------------------------------------------------------------------------------------
    def _time(self, frame: Frame, position: int) -> Fraction:
        return position * self.step_in if self.cfr else Fraction(frame.pts)

    def _grid_between(self, a: Fraction, b: Fraction) -> list[Fraction]:
        """Grid times T with a <= T < b."""
        first = math.ceil(a / self.step_out)
        out = []
        k = first
        while k * self.step_out < b:
            out.append(k * self.step_out)
            k += 1
        return out

    def _is_cut(self, window: Window) -> bool:
        mode = self.params.scene_change
        if mode == "off":
            return False
        nxt = window.at(1)
        if "scene_change" in nxt.meta or mode == "marks":
            return bool(nxt.meta.get("scene_change"))
        from diffusify.ops.measure import luma_thumbnail, mean_abs_diff

        prev, cur = window.at(-1), window.at(0)
        a, b, c = (luma_thumbnail(f.data) for f in (prev, cur, nxt))
        now = mean_abs_diff(c, b)
        before = mean_abs_diff(b, a) if window.padded_before == 0 else 0.0
        return min(now, abs(now - before)) >= self.params.scene_threshold

    def _process_window(self, window: Window) -> list[Frame]:
        cur = window.at(0)
        p0 = self._time(cur, window.position)
        if window.is_last:
            end = p0 + self.step_in if self.cfr else Fraction(cur.pts) + self.step_in
            # after the last frame nothing is left to interpolate toward: it holds until one input frame later
            return [cur.derive(pts=t, meta={"interpolated": False, "held_at_end": t != p0})
                    for t in self._grid_between(p0, end)]
        nxt = window.at(1)
        p1 = self._time(nxt, window.position + 1)
        times = self._grid_between(p0, p1)
        if not times:
            return []
        cut = self._is_cut(window)
        out: list[Frame] = []
        wanted = [t for t in times if t != p0]
        made = {} if cut or not wanted else self._interpolate(cur.data, nxt.data,
                                                              [(t - p0) / (p1 - p0) for t in wanted])
        for t in times:
            if t == p0:
                out.append(cur.derive(pts=t, meta={"interpolated": False}))
            elif cut and self.params.at_cut == "blend":
                w = float((t - p0) / (p1 - p0))
                out.append(cur.derive(cur.data.lerp(nxt.data.to(cur.data.dtype), w), pts=t,
                                      meta={"interpolated": False, "blended_at_cut": w}))
            elif cut:
                out.append(cur.derive(pts=t, meta={"interpolated": False, "held_at_cut": True}))
            else:
                out.append(cur.derive(made[(t - p0) / (p1 - p0)], pts=t, meta={"interpolated": True}))
        return out

    def _interpolate(self, a: torch.Tensor, b: torch.Tensor, ts: list[Fraction]) -> dict[Fraction, torch.Tensor]:
        """The frames at timesteps ``ts`` between ``a`` and ``b`` (``(3, H, W)``), in one batch."""
        import torch
        from torch.nn import functional as F

        _, h, w = a.shape
        align = max(self.align, int(self.align / self.params.scale))
        ph, pw = -(-h // align) * align, -(-w // align) * align
        pad = (0, pw - w, 0, ph - h)
        x0, x1 = F.pad(a[None].to(self.dtype), pad), F.pad(b[None].to(self.dtype), pad)
        if self.net.version == "hdv3":
            return self._midpoints(x0, x1, ts, h, w)
        n = len(ts)
        t = torch.tensor([float(v) for v in ts], device=a.device, dtype=self.dtype).view(n, 1, 1, 1)
        out = self.net(x0.expand(n, -1, -1, -1), x1.expand(n, -1, -1, -1), t, self.scales)
        out = out[:, :, :h, :w].float().clamp_(0, 1)
        return {v: out[i] for i, v in enumerate(ts)}

    def _midpoints(self, x0: torch.Tensor, x1: torch.Tensor, ts: list[Fraction], h: int,
                   w: int) -> dict[Fraction, torch.Tensor]:
        """HDv3: each dyadic t by halving the interval that holds it (t = 1/4 is the midpoint of 0 and 1/2)."""
        import torch

        half = torch.full((1, 1, 1, 1), 0.5, device=x0.device, dtype=self.dtype)
        known = {Fraction(0): x0, Fraction(1): x1}
        for t in ts:
            lo, hi = Fraction(0), Fraction(1)
            while True:
                mid = (lo + hi) / 2
                if mid not in known:
                    known[mid] = self.net(known[lo], known[hi], half, self.scales)
                if mid == t:
                    break
                lo, hi = (lo, mid) if t < mid else (mid, hi)
        return {t: known[t][0, :, :h, :w].float().clamp(0, 1) for t in ts}
