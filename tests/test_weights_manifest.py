"""The model manifest: the bundled one is valid and its files check out; invalid ones fail in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffusify.weights.errors import WeightsError
from diffusify.weights.manifest import (
    find,
    list_models,
    load_manifest,
    local_path,
    parse_manifest,
    resolve_file,
    weights_dir,
)
from diffusify.weights.ncnn import read_metadata
from diffusify.weights.pull import verify

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
version: 1
models:
  - name: tiny-x2
    file: tiny.safetensors
    url: https://example.invalid/tiny.safetensors
    sha256: {sha}
    architecture: Compact
    scale: 2
    purpose: upscale
    licence: CC0-1.0
    source: test
"""


def good(**replace: str) -> str:
    text = GOOD.format(sha="a" * 64)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def test_bundled_manifest_is_valid_and_bundled_files_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIFFUSIFY_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("DIFFUSIFY_CACHE_DIR", raising=False)
    assert weights_dir() == ROOT / "weights"
    models = list_models()
    assert {m.name for m in models} >= {"realesr-animevideov3-x2", "realesrgan-x4plus"}
    bundled = [m for m in models if m.bundled]
    assert bundled
    for entry in bundled:
        path = local_path(entry)
        assert path is not None and path.parent == ROOT / "weights"
        assert verify(entry, path) == entry.sha256
        if path.suffix == ".safetensors":  # our conversions carry their facts; the .tflite files are as published
            meta = read_metadata(path)
            assert meta.architecture == entry.architecture
            assert meta.effective_scale == entry.scale
    licences = {"interpolate": "MIT", "segment": "Apache-2.0"}
    for entry in models:
        assert entry.licence == licences.get(entry.purpose, "BSD-3-Clause")
        if not entry.bundled:
            assert entry.url and entry.url.startswith(
                "https://github.com/xinntao/Real-ESRGAN/releases/download/"
            )
    assert list_models(purpose="denoise") == []
    assert resolve_file("realesr-animevideov3-x2") == str(
        ROOT / "weights" / "realesr-animevideov3-x2.safetensors"
    )
    assert resolve_file("no-such-model") is None


def test_find_and_did_you_mean() -> None:
    assert find("realesr-animevideov3-x2").scale == 2
    assert find("  RealESR-AnimeVideoV3-X2 ").name == "realesr-animevideov3-x2"
    with pytest.raises(WeightsError, match="did you mean 'realesr-animevideov3-x2'") as exc:
        find("realesr-animevideo-x2")
    assert "\n" not in str(exc.value)
    with pytest.raises(WeightsError, match="unknown model 'zzz'"):
        find("zzz")


def test_load_manifest_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(good())
    manifest = load_manifest(path)
    assert manifest.models[0].name == "tiny-x2"
    assert find("tiny-x2", path).scale == 2
    assert local_path(manifest.models[0], search=[tmp_path]) is None
    (tmp_path / "tiny.safetensors").write_bytes(b"x")
    assert local_path(manifest.models[0], search=[tmp_path]) == tmp_path / "tiny.safetensors"


def test_resolve_file_finds_downloads_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIFFUSIFY_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setenv("DIFFUSIFY_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "models.yaml").write_text(good())
    assert resolve_file("tiny-x2") is None  # not downloaded yet
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "tiny.safetensors").write_bytes(b"x")
    assert resolve_file("tiny-x2") == str(tmp_path / "cache" / "tiny.safetensors")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            good(**{"    source: test\n": "    source: test\n    colour: red\n"}),
            r"models\[0\] \('tiny-x2'\)\.colour: unknown field",
        ),
        (good(**{"a" * 64: "ABC"}), r"models\[0\] \('tiny-x2'\)\.sha256: .*64 lower-case hex"),
        (good(**{"scale: 2": "scale: 0"}), r"\.scale: Input should be greater than or equal to 1"),
        (good(**{"purpose: upscale": "purpose: magic"}), r"\.purpose: Input should be 'upscale'"),
        (good(**{"https://example.invalid/": "ftp://example.invalid/"}), r"\.url: must be an http"),
        (good(**{"name: tiny-x2": "name: Tiny X2"}), r"\.name: use lower-case"),
        (good(**{"file: tiny.safetensors": "file: ../escape.bin"}), r"\.file: must be a relative path"),
        (
            good(**{"    url: https://example.invalid/tiny.safetensors\n": ""}),
            r"needs a url, or bundled: true",
        ),
        (
            good(
                **{
                    "sha256: " + "a" * 64: "sha256: null",
                    "url: https://example.invalid/tiny.safetensors": "bundled: true",
                }
            ),
            "bundled model needs its sha256",
        ),
        (good(**{"version: 1": "version: 2"}), r"version: Input should be 1"),
        (good() + good().split("models:\n")[1], "appears twice"),
        ("version: 1\nmodels: [\n", "invalid YAML"),
        ("- just a list\n", "expected a mapping"),
        (good(**{"    architecture: Compact\n": ""}), r"\.architecture: Field required"),
    ],
)
def test_invalid_manifests_fail_in_one_line(text: str, message: str) -> None:
    with pytest.raises(WeightsError, match=message) as exc:
        parse_manifest(text, "models.yaml")
    assert "\n" not in str(exc.value)
    assert str(exc.value).startswith("models.yaml")


def test_missing_manifest_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="cannot read model manifest"):
        load_manifest(tmp_path / "nope.yaml")
