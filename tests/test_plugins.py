"""Third-party processors register through the ``diffusify.processors`` entry-point group."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from diffusify.processors.base import Processor
from diffusify.processors.registry import Registry, RegistryError, default_registry

pytestmark = pytest.mark.slow  # installs a plugin and runs the command in subprocesses

PLUGIN = '''
from pydantic import Field
from diffusify import Params, Processor

class InvertParams(Params):
    amount: float = Field(1.0, ge=0, le=1, description="How much to invert.")

class Invert(Processor):
    """Invert colours (a plugin from outside the package)."""
    type_name = "acme.invert"
    Params = InvertParams

    def _process(self, frames):
        x = frames["input"].data
        return x + (1 - 2 * x) * self.params.amount
'''


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    (tmp_path / "acme_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "acme_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[diffusify.processors]\ninvert = acme_plugin:Invert\n")
    return tmp_path


def _cli(args: list[str], plugin_path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "diffusify", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def test_plugin_is_listed_documented_validated_and_run(plugin_path, tmp_path):
    listed = _cli(["processors"], plugin_path, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "acme.invert" in listed.stdout and "Invert colours" in listed.stdout
    doc = _cli(["processors", "acme.invert"], plugin_path, tmp_path)
    assert "amount (float, default: 1.0)" in doc.stdout
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent("""
        version: 1
        nodes:
          src: {type: pattern, with: {width: 16, height: 16, frames: 3}}
          inv: {type: acme.invert, input: src, with: {amount: 2}}
          out: {type: image.write, input: inv, with: {path: frames}}
    """))
    bad = _cli(["validate", str(recipe)], plugin_path, tmp_path)
    assert bad.returncode == 2 and "nodes.inv.with.amount: must be <= 1" in bad.stdout
    recipe.write_text(recipe.read_text().replace("amount: 2", "amount: 1"))
    ok = _cli(["run", "-q", str(recipe)], plugin_path, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert len(list((tmp_path / "frames").glob("*.png"))) == 3


def test_registry_add_is_all_or_nothing_and_rejects_duplicates():
    reg = default_registry().copy()
    before = reg.names()

    class Fresh(Processor):
        """A new type."""
        type_name = "fresh"

    class Clash(Processor):
        """Clashes with a built-in."""
        type_name = "resize"

    with pytest.raises(RegistryError, match="already registered"):
        reg.add(Fresh, Clash)
    assert reg.names() == before
    reg.add(Fresh)
    assert "fresh" in reg and "fresh" not in default_registry()
    with pytest.raises(KeyError, match="did you mean 'resize'"):
        Registry(default_registry()).get("resise")


def test_built_ins_are_imported_when_first_asked_for_and_each_is_listed_under_its_own_name():
    from diffusify.processors.registry import _BUILTINS, builtin_processors

    classes = builtin_processors()
    assert sorted(c.type_name for c in classes) == sorted(_BUILTINS)  # every entry names its class's type
    reg = Registry(lazy={"resize": ("diffusify.processors.geometry", "Crop")})
    with pytest.raises(RegistryError, match="registers as 'crop', not 'resize'"):
        reg.get("resize")
    # validating a transcode imports the video family only
    recipe = ("version: 1\nnodes:\n  src: {type: video.read, with: {path: examples/media/sample.mp4}}\n"
              "  out: {type: video.write, input: src, with: {path: out/x.mkv}}\n")
    code = ("import sys; from diffusify import api; v = api.check(sys.argv[1]); assert v.ok, v.problems; "
            "print(sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('diffusify.processors.')))")
    out = subprocess.run([sys.executable, "-c", code, recipe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    assert out == "['base', 'registry', 'video']", out
