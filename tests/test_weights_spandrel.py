"""Tiny random models built with spandrel's own classes survive a save/load round trip, detected correctly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from spandrel import ModelLoader
from spandrel.architectures.Compact import Compact
from spandrel.architectures.ESRGAN import ESRGAN
from spandrel.architectures.SPAN import SPAN


def _compact(scale: int) -> torch.nn.Module:
    return Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale)


def _esrgan(scale: int) -> torch.nn.Module:
    return ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=scale)


def _span(scale: int) -> torch.nn.Module:
    return SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=scale)


BUILDERS = {"Compact": _compact, "ESRGAN": _esrgan, "SPAN": _span}


def _save(net: torch.nn.Module, path: Path) -> None:
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize(
    ("arch", "scale"), [("Compact", 2), ("Compact", 4), ("ESRGAN", 2), ("ESRGAN", 4), ("SPAN", 2)]
)
def test_round_trip_detects_architecture_and_scale(
    tmp_path: Path, arch: str, scale: int, suffix: str
) -> None:
    torch.manual_seed(0)
    net = BUILDERS[arch](scale).eval()
    path = tmp_path / f"tiny-{arch}-x{scale}{suffix}"
    _save(net, path)

    loaded = ModelLoader().load_from_file(path)
    assert loaded.architecture.id == arch
    assert loaded.scale == scale
    assert loaded.input_channels == 3 and loaded.output_channels == 3

    x = torch.rand(1, 3, 8, 8)
    loaded.model.eval()
    with torch.inference_mode():
        expected = net(x)
        got = loaded.model(x)
    assert got.shape == (1, 3, 8 * scale, 8 * scale)
    torch.testing.assert_close(got, expected)


def test_unknown_state_dict_is_rejected(tmp_path: Path) -> None:
    from spandrel import UnsupportedModelError

    path = tmp_path / "junk.safetensors"
    save_file({"hello.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(UnsupportedModelError):
        ModelLoader().load_from_file(path)
