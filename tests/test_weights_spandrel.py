"""Tiny random models built with spandrel's own classes survive a save/load round trip, detected correctly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from spandrel import ModelLoader

from tests._helpers import TINY_MODELS, save_model

BUILDERS = TINY_MODELS


def _save(net: torch.nn.Module, path: Path) -> None:
    save_model(net, path)


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
