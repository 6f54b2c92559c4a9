"""The ncnn importer on small ncnn models written by the tests themselves."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from spandrel import ModelLoader

from diffusify.weights.errors import WeightsError
from diffusify.weights.ncnn.blobs import TAG_FP16
from diffusify.weights.ncnn.convert import import_ncnn
from diffusify.weights.ncnn.metadata import apply_post_scale, read_metadata, read_post_scale
from diffusify.weights.ncnn.parser import parse_param

# --------------------------------------------------------------------------------------------------------
# a tiny ncnn writer


class NcnnWriter:
    """Builds a text .param and the matching .bin, layer by layer.

    A blob may be read by several layers; :meth:`save` inserts the ``Split`` layers ncnn needs for that.
    """

    def __init__(self) -> None:
        self.layers: list[tuple[str, str, list[str], list[str], str]] = []
        self.bin = bytearray()

    def layer(self, type_: str, name: str, inputs: list[str], outputs: list[str], params: str = "") -> None:
        self.layers.append((type_, name, list(inputs), list(outputs), params))

    def tagged(self, values: np.ndarray, fp16: bool) -> None:
        flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
        if fp16:
            self.bin += struct.pack("<I", TAG_FP16)
            data = flat.astype("<f2").tobytes()
            self.bin += data + b"\0" * (-len(data) % 4)
        else:
            self.bin += struct.pack("<I", 0)
            self.bin += flat.astype("<f4").tobytes()

    def raw(self, values: np.ndarray) -> None:
        self.bin += np.ascontiguousarray(values, dtype="<f4").reshape(-1).tobytes()

    def conv(
        self,
        name: str,
        src: str,
        dst: str,
        weight: np.ndarray,
        bias: np.ndarray,
        *,
        fp16: bool,
        act: str = "",
    ) -> None:
        out_ch, _, k, _ = weight.shape
        self.layer("Convolution", name, [src], [dst], f"0={out_ch} 1={k} 4={k // 2} 5=1 6={weight.size}{act}")
        self.tagged(weight, fp16)
        self.raw(bias)

    def save(self, folder: Path, stem: str) -> tuple[Path, Path]:
        uses: dict[str, int] = {}
        for _, _, inputs, _, _ in self.layers:
            for blob in inputs:
                uses[blob] = uses.get(blob, 0) + 1
        taken: dict[str, int] = {}
        lines: list[str] = []
        blobs: set[str] = set()
        for type_, name, inputs, outputs, params in self.layers:
            renamed = []
            for blob in inputs:
                if uses[blob] > 1:
                    k = taken.get(blob, 0)
                    taken[blob] = k + 1
                    blob = f"{blob}_splitncnn_{k}"
                renamed.append(blob)
            lines.append(
                f"{type_:<14} {name:<20} {len(inputs)} {len(outputs)} {' '.join(renamed + outputs)} {params}"
            )
            blobs.update(renamed + outputs)
            for blob in outputs:
                if uses.get(blob, 0) > 1:
                    outs = [f"{blob}_splitncnn_{k}" for k in range(uses[blob])]
                    lines.append(f"{'Split':<14} {'split_' + blob:<20} 1 {len(outs)} {blob} {' '.join(outs)}")
                    blobs.update(outs)
        param = folder / f"{stem}.param"
        weights = folder / f"{stem}.bin"
        param.write_text(f"7767517\n{len(lines)} {len(blobs)}\n" + "\n".join(lines) + "\n")
        weights.write_bytes(bytes(self.bin))
        return param, weights


def rand(rng: np.random.Generator, *shape: int, scale: float = 0.1) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def fp16_round(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float16).astype(np.float32)


def compact_ncnn(
    folder: Path,
    *,
    feat: int = 8,
    num_conv: int = 2,
    scale: int = 2,
    post: float | None = None,
    shuffle_mode: int = 0,
    seed: int = 0,
    stem: str = "tiny",
) -> tuple[Path, Path, dict]:
    """A Compact (SRVGGNet) graph like realesr-animevideov3's, alternating fp32 and fp16 weight tags."""
    rng = np.random.default_rng(seed)
    w = NcnnWriter()
    w.layer("Input", "input", [], ["data"], "0=0 1=0 2=3")
    ref = {"convs": [], "slopes": []}
    n_convs = num_conv + 2
    src = "data"
    for i in range(n_convs):
        last = i == n_convs - 1
        cin = 3 if i == 0 else feat
        cout = 3 * scale * scale if last else feat
        weight, bias = rand(rng, cout, cin, 3, 3), rand(rng, cout)
        fp16 = i % 2 == 1
        w.conv(f"conv{i}", src, f"c{i}", weight, bias, fp16=fp16)
        ref["convs"].append((fp16_round(weight) if fp16 else weight, bias))
        src = f"c{i}"
        if not last:
            slope = rand(rng, feat, scale=0.2)
            w.layer("PReLU", f"prelu{i}", [src], [f"p{i}"], f"0={feat}")
            w.raw(slope)
            ref["slopes"].append(slope)
            src = f"p{i}"
    w.layer(
        "PixelShuffle",
        "shuffle",
        [src],
        ["ps"],
        f"0={scale}" + (f" 1={shuffle_mode}" if shuffle_mode else ""),
    )
    w.layer("Interp", "base", ["data"], ["up"], f"0=1 1={float(scale):e} 2={float(scale):e}")
    out = "output" if post is None else "sum"
    w.layer("BinaryOp", "add", ["ps", "up"], [out], "0=0")
    if post is not None:
        w.layer("Interp", "post", ["sum"], ["output"], f"0=3 1={post:e} 2={post:e}")
    ref["scale"] = scale
    ref["shuffle_mode"] = shuffle_mode
    param, weights = w.save(folder, stem)
    return param, weights, ref


def compact_reference(ref: dict, x: torch.Tensor) -> torch.Tensor:
    """The Compact forward computed directly from the reference weights."""
    out = x
    r = ref["scale"]
    for i, (weight, bias) in enumerate(ref["convs"]):
        out = F.conv2d(out, torch.from_numpy(weight), torch.from_numpy(bias), padding=1)
        if i < len(ref["slopes"]):
            out = F.prelu(out, torch.from_numpy(ref["slopes"][i]))
    if ref["shuffle_mode"] == 1:  # depth-column-row: out[c, h*r+i, w*r+j] = in[(i*r+j)*C + c]
        n, ch, h, w = out.shape
        c = ch // (r * r)
        out = out.view(n, r, r, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c, h * r, w * r)
    else:
        out = F.pixel_shuffle(out, r)
    return out + F.interpolate(x, scale_factor=r, mode="nearest")


def load(path: Path):
    return ModelLoader().load_from_file(path).eval()


# --------------------------------------------------------------------------------------------------------
# Compact


@pytest.mark.parametrize("shuffle_mode", [0, 1])
def test_compact_import_matches_direct_computation(tmp_path: Path, shuffle_mode: int) -> None:
    param, weights, ref = compact_ncnn(tmp_path, shuffle_mode=shuffle_mode)
    result = import_ncnn(param, weights, tmp_path / "tiny.safetensors")
    assert result.architecture == "Compact"
    assert result.scale == 2
    assert result.post_scale is None
    assert result.source_storage == "fp16+fp32"

    model = load(result.out_path)
    assert model.architecture.id == "Compact"
    assert model.scale == 2
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        got = model.model(x)
    expected = compact_reference(ref, x)
    assert got.shape == (1, 3, 24, 20)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_compact_with_fused_leaky_activations(tmp_path: Path) -> None:
    """Conv layers with a fused LeakyReLU become PReLU slopes of spandrel's Compact."""
    rng = np.random.default_rng(3)
    w = NcnnWriter()
    w.layer("Input", "input", [], ["data"])
    w0, b0 = rand(rng, 4, 3, 3, 3), rand(rng, 4)
    w1, b1 = rand(rng, 12, 4, 3, 3), rand(rng, 12)
    w.conv("conv0", "data", "c0", w0, b0, fp16=False, act=" 9=2 -23310=1,1.000000e-01")
    w.conv("conv1", "c0", "c1", w1, b1, fp16=False)
    w.layer("PixelShuffle", "shuffle", ["c1"], ["ps"], "0=2")
    w.layer("Interp", "base", ["data"], ["up"], "0=1 1=2.0 2=2.0")
    w.layer("BinaryOp", "add", ["ps", "up"], ["output"])
    param, weights = w.save(tmp_path, "leaky")
    result = import_ncnn(param, weights, tmp_path / "leaky.safetensors")
    x = torch.rand(1, 3, 6, 6)
    with torch.inference_mode():
        got = load(result.out_path).model(x)
    h = F.leaky_relu(F.conv2d(x, torch.from_numpy(w0), torch.from_numpy(b0), padding=1), 0.1)
    expected = F.pixel_shuffle(F.conv2d(h, torch.from_numpy(w1), torch.from_numpy(b1), padding=1), 2)
    expected = expected + F.interpolate(x, scale_factor=2, mode="nearest")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("post", "effective"), [(0.5, 2.0), (0.75, 3.0)])
def test_post_scale_is_carried_as_metadata(tmp_path: Path, post: float, effective: float) -> None:
    """Like realesr-animevideov3-x2/x3: a 4x network followed by a bicubic downscale."""
    param, weights, ref = compact_ncnn(tmp_path, scale=4, post=post)
    out = tmp_path / "post.safetensors"
    result = import_ncnn(param, weights, out, name="tiny-post", metadata={"licence": "CC0-1.0"})
    assert (result.scale, result.post_scale, result.post_resize) == (4, post, "bicubic")
    assert result.effective_scale == effective

    assert read_post_scale(out) == post
    meta = read_metadata(out)
    assert meta.post_resize == "bicubic"
    assert meta.scale == 4
    assert meta.effective_scale == effective
    assert meta.pre_pad == 10
    assert meta.raw["diffusify.name"] == "tiny-post"
    assert meta.raw["diffusify.licence"] == "CC0-1.0"
    assert len(meta.raw["diffusify.source_bin_sha256"]) == 64

    model = load(out)
    assert model.scale == 4  # spandrel sees the network; the post-scale is the caller's job
    x = torch.rand(1, 3, 8, 12)
    with torch.inference_mode():
        y = apply_post_scale(model.model(x), read_post_scale(out))
    assert y.shape == (1, 3, int(8 * effective), int(12 * effective))
    expected = F.interpolate(
        compact_reference(ref, x), scale_factor=post, mode="bicubic", align_corners=False
    )
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)


def test_no_post_scale_for_plain_models_and_pth(tmp_path: Path) -> None:
    param, weights, _ = compact_ncnn(tmp_path)
    out = tmp_path / "plain.safetensors"
    import_ncnn(param, weights, out)
    assert read_post_scale(out) is None
    assert read_post_scale(tmp_path / "whatever.pth") is None


# --------------------------------------------------------------------------------------------------------
# ESRGAN / RRDBNet


def esrgan_ncnn(folder: Path, *, nf: int = 8, nb: int = 2, ups: int = 1, seed: int = 0):
    """An RRDBNet graph laid out like realesrgan-x4plus's (fused LeakyReLU 0.2, Eltwise residuals).

    Returns the .param and .bin paths and the state dict expected under Real-ESRGAN's key names.
    """
    gc = 32  # spandrel's RRDB growth channels
    rng = np.random.default_rng(seed)
    leaky = " 9=2 -23310=1,2.000000e-01"
    w = NcnnWriter()
    expected: dict[str, np.ndarray] = {}
    counter = iter(range(10_000))

    def conv(key: str, src: str, cin: int, cout: int, act: bool, dst: str | None = None) -> str:
        i = next(counter)
        weight, bias = rand(rng, cout, cin, 3, 3, scale=0.05), rand(rng, cout, scale=0.05)
        fp16 = i % 3 == 0
        dst = dst or f"b{i}"
        w.conv(f"conv_{i}", src, dst, weight, bias, fp16=fp16, act=leaky if act else "")
        expected[f"{key}.weight"] = fp16_round(weight) if fp16 else weight
        expected[f"{key}.bias"] = bias
        return dst

    w.layer("Input", "input", [], ["data"])
    feat = conv("conv_first", "data", 3, nf, False)
    trunk = feat
    for i in range(nb):
        x = trunk
        for k in range(1, 4):
            outs: list[str] = []
            for j in range(1, 6):
                src = x
                if j > 1:
                    src = f"cat_{i}_{k}_{j}"
                    w.layer("Concat", src, [x, *outs], [src], "0=0")
                o = conv(f"body.{i}.rdb{k}.conv{j}", src, nf + gc * (j - 1), nf if j == 5 else gc, j < 5)
                outs.append(o)
            w.layer(
                "Eltwise", f"res_{i}_{k}", [outs[-1], x], [f"rdb_{i}_{k}"], "0=1 -23301=2,2.0e-01,1.0e+00"
            )
            x = f"rdb_{i}_{k}"
        w.layer("Eltwise", f"rrdb_{i}", [x, trunk], [f"rrdb_{i}"], "0=1 -23301=2,2.0e-01,1.0e+00")
        trunk = f"rrdb_{i}"
    body = conv("conv_body", trunk, nf, nf, False)
    w.layer("BinaryOp", "trunk_add", [feat, body], ["fea"], "0=0")
    x = "fea"
    for m in range(1, ups + 1):
        w.layer("Interp", f"up{m}", [x], [f"up{m}"], "0=1 1=2.0 2=2.0")
        x = conv(f"conv_up{m}", f"up{m}", nf, nf, True)
    x = conv("conv_hr", x, nf, nf, True)
    conv("conv_last", x, nf, 3, False, dst="output")
    param, weights = w.save(folder, "rrdb")
    return param, weights, expected


@pytest.mark.parametrize(("nb", "ups"), [(2, 1), (1, 2)])
def test_esrgan_import_maps_every_convolution(tmp_path: Path, nb: int, ups: int) -> None:
    from safetensors.numpy import load_file

    param, weights, expected = esrgan_ncnn(tmp_path, nb=nb, ups=ups)
    assert "Split" in param.read_text()
    result = import_ncnn(param, weights, tmp_path / "rrdb.safetensors")
    assert result.architecture == "ESRGAN"
    assert result.scale == 2**ups
    got = load_file(str(result.out_path))
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)

    model = load(result.out_path)
    assert model.architecture.id == "ESRGAN"
    assert model.scale == 2**ups
    x = torch.rand(1, 3, 6, 5)
    with torch.inference_mode():
        assert model.model(x).shape == (1, 3, 6 * 2**ups, 5 * 2**ups)


# --------------------------------------------------------------------------------------------------------
# errors


def test_parse_param_reads_arrays_and_counts(tmp_path: Path) -> None:
    param, _, _ = compact_ncnn(tmp_path)
    graph = parse_param(param)
    assert graph.layers[0].type == "Input"
    conv = next(layer for layer in graph.layers if layer.type == "Convolution")
    assert conv.get(0) == 8 and conv.get(5) == 1 and conv.get(6) == 8 * 3 * 9
    text = "7767517\n1 1\nConvolution c 1 1 a b 0=4 9=2 -23310=1,2.000000e-01\n"
    layer = parse_param(tmp_path / "x.param", text=text).layers[0]
    assert layer.get(9) == 2 and layer.get(10) == [0.2]


def _one_line(exc: pytest.ExceptionInfo[WeightsError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_unsupported_layer_type_is_a_clear_error(tmp_path: Path) -> None:
    param, weights, _ = compact_ncnn(tmp_path)
    text = param.read_text().replace("PReLU ", "Swish ", 1)
    param.write_text(text)
    with pytest.raises(WeightsError, match="'Swish' is not supported") as exc:
        import_ncnn(param, weights, tmp_path / "out.safetensors")
    assert "line" in _one_line(exc)


def test_unrecognised_structure_is_a_clear_error(tmp_path: Path) -> None:
    """A Compact graph without its residual add is neither Compact nor ESRGAN."""
    w = NcnnWriter()
    w.layer("Input", "input", [], ["data"])
    w.conv("conv0", "data", "c0", np.zeros((12, 3, 3, 3), np.float32), np.zeros(12, np.float32), fp16=False)
    w.layer("PixelShuffle", "shuffle", ["c0"], ["output"], "0=2")
    param, weights = w.save(tmp_path, "odd")
    with pytest.raises(WeightsError, match="unsupported ncnn graph") as exc:
        import_ncnn(param, weights, tmp_path / "odd.safetensors")
    message = _one_line(exc)
    assert "not Compact" in message and "not ESRGAN" in message
    assert not (tmp_path / "odd.safetensors").exists()


def test_mismatched_bin_is_a_clear_error(tmp_path: Path) -> None:
    param, weights, _ = compact_ncnn(tmp_path)
    data = weights.read_bytes()
    weights.write_bytes(data[:-8])
    with pytest.raises(WeightsError, match="ends early"):
        import_ncnn(param, weights, tmp_path / "out.safetensors")
    weights.write_bytes(data + b"\0" * 8)
    with pytest.raises(WeightsError, match="8 bytes left"):
        import_ncnn(param, weights, tmp_path / "out.safetensors")


def test_not_a_param_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.param"
    bad.write_text("hello\n")
    with pytest.raises(WeightsError, match="not an ncnn .param file"):
        parse_param(bad)
    binary = tmp_path / "bin.param"
    binary.write_bytes(struct.pack("<i", 7767517) + b"\0" * 8)
    with pytest.raises(WeightsError, match="binary"):
        parse_param(binary)


def test_int8_weights_are_refused(tmp_path: Path) -> None:
    param, weights, _ = compact_ncnn(tmp_path)
    data = bytearray(weights.read_bytes())
    data[0:4] = struct.pack("<I", 0x000D4B38)
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="int8"):
        import_ncnn(param, weights, tmp_path / "out.safetensors")


# --------------------------------------------------------------------------------------------------------
# Real-CUGAN


def realcugan_ncnn(folder: Path, *, final_crop: str = "-23309=2,20,20 -23310=2,-20,-20 -23311=2,-2,-1"):
    """A Real-CUGAN 2x graph laid out like realcugan-ncnn-vulkan's, from a random spandrel UpCunet2x."""
    from spandrel.architectures.RealCUGAN import UpCunet2x

    torch.manual_seed(0)
    net = UpCunet2x(in_channels=3, out_channels=3).eval()
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    leaky = " 9=2 -23310=1,1.000000e-01"
    w = NcnnWriter()
    fp16 = iter([False, True] * 40)

    def conv(key: str, src: str, dst: str, act: bool = True, stride: int = 1) -> str:
        weight, bias = sd[f"{key}.weight"], sd[f"{key}.bias"]
        out_ch, _, k, _ = weight.shape
        params = f"0={out_ch} 1={k} 3={stride} 5=1 6={weight.size}{leaky if act else ''}"
        w.layer("Convolution", key, [src], [dst], params)
        w.tagged(weight, next(fp16))
        w.raw(bias)
        return dst

    def deconv(key: str, src: str, dst: str, act: bool, stride: int, pad: int) -> str:
        weight, bias = sd[f"{key}.weight"], sd[f"{key}.bias"]  # torch layout (in, out, k, k)
        _, out_ch, k, _ = weight.shape
        params = f"0={out_ch} 1={k} 3={stride} 4={pad} 5=1 6={weight.size}{leaky if act else ''}"
        w.layer("Deconvolution", key, [src], [dst], params)
        w.tagged(weight.transpose(1, 0, 2, 3), next(fp16))
        w.raw(bias)
        return dst

    def unet_conv(prefix: str, src: str, se: bool) -> str:
        x = conv(f"{prefix}.conv.2", conv(f"{prefix}.conv.0", src, f"{prefix}.a"), f"{prefix}.b")
        if not se:
            return x
        w.layer("Pooling", f"{prefix}.gap", [x], [f"{prefix}.g"], "0=1 4=1")
        for i, (src_b, dst_b, act) in enumerate([(".g", ".s1", " 9=1"), (".s1", ".s2", " 9=4")], start=1):
            weight, bias = sd[f"{prefix}.seblock.conv{i}.weight"], sd[f"{prefix}.seblock.conv{i}.bias"]
            params = f"0={weight.shape[0]} 1=1 2={weight.size}{act}"
            w.layer("InnerProduct", f"{prefix}.se{i}", [prefix + src_b], [prefix + dst_b], params)
            w.tagged(weight, next(fp16))
            w.raw(bias)
        w.layer("BinaryOp", f"{prefix}.mul", [x, f"{prefix}.s2"], [f"{prefix}.se"], "0=2")
        return f"{prefix}.se"

    def crop(name: str, src: str, n: int) -> str:
        w.layer("Crop", name, [src], [name], f"-23309=2,{n},{n} -23310=2,-{n},-{n} -23311=2,-2,-1")
        return name

    w.layer("Input", "input", [], ["in0"])
    # unet1
    x1 = unet_conv("unet1.conv1", "in0", se=False)
    x2 = conv("unet1.conv1_down", x1, "u1.down", stride=2)
    x2 = unet_conv("unet1.conv2", x2, se=True)
    x1c = crop("u1.crop", x1, 4)
    x2 = deconv("unet1.conv2_up", x2, "u1.up", act=True, stride=2, pad=0)
    w.layer("BinaryOp", "u1.add", [x1c, x2], ["u1.sum"], "0=0")
    x3 = conv("unet1.conv3", "u1.sum", "u1.c3")
    u1 = deconv("unet1.conv_bottom", x3, "u1.out", act=False, stride=2, pad=3)
    # unet2
    y1 = unet_conv("unet2.conv1", u1, se=False)
    y2 = conv("unet2.conv1_down", y1, "u2.down1", stride=2)
    y2 = unet_conv("unet2.conv2", y2, se=True)
    y3 = conv("unet2.conv2_down", y2, "u2.down2", stride=2)
    y3 = unet_conv("unet2.conv3", y3, se=True)
    y2c = crop("u2.crop2", y2, 4)
    y3 = deconv("unet2.conv3_up", y3, "u2.up3", act=True, stride=2, pad=0)
    w.layer("BinaryOp", "u2.add2", [y2c, y3], ["u2.sum2"], "0=0")
    y4 = unet_conv("unet2.conv4", "u2.sum2", se=True)
    y1c = crop("u2.crop1", y1, 16)
    y4 = deconv("unet2.conv4_up", y4, "u2.up4", act=True, stride=2, pad=0)
    w.layer("BinaryOp", "u2.add1", [y1c, y4], ["u2.sum1"], "0=0")
    y5 = conv("unet2.conv5", "u2.sum1", "u2.c5")
    u2 = conv("unet2.conv_bottom", y5, "u2.out", act=False)
    w.layer("Crop", "final.crop", [u1], ["final.c"], final_crop)
    w.layer("BinaryOp", "final.add", [u2, "final.c"], ["out0"], "0=0")
    param, weights = w.save(folder, "up2x-test")
    return param, weights, net


def test_realcugan_import_reproduces_the_network(tmp_path: Path) -> None:
    param, weights, net = realcugan_ncnn(tmp_path)
    result = import_ncnn(param, weights, tmp_path / "cugan.safetensors")
    assert (result.architecture, result.scale, result.post_scale) == ("RealCUGAN", 2, None)
    assert read_metadata(result.out_path).pre_pad == 0  # spandrel's Real-CUGAN pads by itself
    model = load(result.out_path)
    assert model.architecture.id == "RealCUGAN" and model.scale == 2
    assert "pro" not in model.tags

    # the fp16-tagged layers were rounded: compare with the same rounding applied to the reference
    state = {k: v.clone() for k, v in net.state_dict().items()}
    got_state = model.model.state_dict()
    for key, value in state.items():
        torch.testing.assert_close(got_state[key], value, rtol=1e-3, atol=1e-3, msg=key)
    net.load_state_dict(got_state)
    x = torch.rand(1, 3, 40, 36)
    with torch.inference_mode():
        torch.testing.assert_close(model.model(x), net(x), rtol=1e-5, atol=1e-5)


def test_realcugan_pro_flag(tmp_path: Path) -> None:
    param, weights, _ = realcugan_ncnn(tmp_path)
    result = import_ncnn(param, weights, tmp_path / "pro.safetensors", pro=True)
    assert result.description == "RealCUGAN 2x (pro)"
    assert "pro" in load(result.out_path).tags


def test_miswired_graph_is_caught_by_running_it(tmp_path: Path) -> None:
    """Same layers, same shapes, but the final skip is cropped one pixel off: only running the graph shows."""
    shifted = "-23309=2,19,21 -23310=2,-21,-19 -23311=2,-2,-1"
    param, weights, _ = realcugan_ncnn(tmp_path, final_crop=shifted)
    with pytest.raises(WeightsError, match="not wired like spandrel's network"):
        import_ncnn(param, weights, tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from diffusify.weights.ncnn.cli import main

    param, weights, _ = compact_ncnn(tmp_path, scale=4, post=0.5)
    out = tmp_path / "cli.safetensors"
    assert main([str(param), str(weights), str(out), "--name", "cli", "--licence", "CC0-1.0"]) == 0
    printed = capsys.readouterr().out
    assert "Compact" in printed and "bicubic x0.5" in printed and "effective x2" in printed
    assert read_metadata(out).raw["diffusify.licence"] == "CC0-1.0"
    assert main([str(param), str(tmp_path / "missing.bin"), str(out)]) == 1
    assert "cannot read ncnn weights" in capsys.readouterr().err
