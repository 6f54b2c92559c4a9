"""Hostile and first-time-user input: no recipe may write over a source, read a file it does not name, hang, or
leave a broken output behind; and what a new user trips on gets one clear line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import diffusify
from diffusify import Interrupted, PipelineError, RecipeError, UsageError
from diffusify.graph.validate import validate_file, validate_text
from tests._helpers import save_model, tiny_compact
from tests._media import count_decodable_frames, make_av_clip, make_clip, stream_span
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # media, subprocesses


def _errors(v) -> str:
    return "\n".join(p.format() for p in v.errors)


def _write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


# ---- sources are never written over ---------------------------------------------------------------------------
def test_an_output_that_is_the_input_through_a_symlinked_folder_is_refused(tmp_path):
    (tmp_path / "src" / "deep").mkdir(parents=True)
    clip = make_clip(tmp_path / "src" / "clip.mp4", frames=3)
    (tmp_path / "lnk").symlink_to(tmp_path / "src" / "deep")
    recipe = _write(tmp_path, f"""
        version: 1
        nodes:
          src: {{type: video.read, with: {{path: "{clip}"}}}}
          out: {{type: video.write, input: src, with: {{path: lnk/../clip.mp4, overwrite: true}}}}
    """)
    assert os.path.normpath(tmp_path / "lnk/../clip.mp4") != str(clip)  # the names differ; the file is the same
    v = validate_file(str(recipe))
    assert "output path is the input of node 'src'" in _errors(v)
    size = clip.stat().st_size
    with pytest.raises(RecipeError):
        diffusify.run(str(recipe), overwrite=True)
    assert clip.stat().st_size == size


def test_an_output_that_is_a_hard_link_to_the_input_is_refused(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=3)
    os.link(clip, tmp_path / "same.mp4")
    v = validate_text(f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{clip}"}}}}
  out: {{type: video.write, input: src, with: {{path: "{tmp_path / 'same.mp4'}"}}}}
""")
    assert "output path is the input of node 'src'" in _errors(v)


def test_image_write_into_the_folder_image_read_reads_is_refused(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    make_clip(frames / "frame_%06d.png", frames=3, codec="png", pix_fmt="rgb24")
    v = validate_text(f"""
version: 1
nodes:
  src: {{type: image.read, with: {{path: "{frames}"}}}}
  out: {{type: image.write, input: src, with: {{path: "{frames}", overwrite: true}}}}
""")
    assert f"{frames} holds files that node 'src' reads" in _errors(v)
    before = {p.name: p.read_bytes() for p in frames.iterdir()}
    assert {p.name: p.read_bytes() for p in frames.iterdir()} == before


# ---- no file that no recipe names is read ---------------------------------------------------------------------
def test_an_image_name_with_a_line_break_cannot_inject_an_input(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    make_clip(frames / "a_%03d.png", frames=2, codec="png", pix_fmt="rgb24")
    secret = tmp_path / "secret.png"
    secret.write_bytes((frames / "a_001.png").read_bytes())
    (frames / "a_999.png\nfile 'secret.png'\n#.png").write_bytes((frames / "a_001.png").read_bytes())
    v = validate_text(f"""
version: 1
nodes:
  src: {{type: image.read, with: {{path: "{frames}"}}}}
  out: {{type: video.write, input: src, with: {{path: "{tmp_path / 'o.mkv'}"}}}}
""")
    assert "the file name holds a line break" in _errors(v) and "rename the file" in _errors(v)
    assert all("\n" not in p.format() for p in v.problems)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # making the archive uses deprecated torch.jit
def test_a_torchscript_model_is_refused_and_a_state_dict_pt_loads_weights_only(tmp_path):
    net = tiny_compact(2).eval()
    scripted = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(net, torch.rand(1, 3, 8, 8)), str(scripted))
    plain = save_model(net, tmp_path / "plain.pt")
    text = """
version: 1
nodes:
  src: {{type: pattern, with: {{width: 16, height: 16, frames: 2}}}}
  up: {{type: upscale.spandrel, input: src, with: {{model: "{model}"}}}}
  out: {{type: video.write, input: up, with: {{path: "{out}"}}}}
"""
    v = validate_text(text.format(model=scripted, out=tmp_path / "a.mkv"))
    assert "is a TorchScript archive" in _errors(v)
    assert validate_text(text.format(model=plain, out=tmp_path / "b.mkv")).ok


# ---- nothing hangs --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("what", ["video", "model"])
def test_a_fifo_is_refused_before_anything_opens_it(tmp_path, what):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    src = f'{{type: video.read, with: {{path: "{fifo}"}}}}' if what == "video" else \
        "{type: pattern, with: {width: 16, height: 16, frames: 2}}"
    up = f'{{type: upscale.spandrel, input: src, with: {{model: "{fifo}"}}}}' if what == "model" else \
        "{type: color, input: src}"
    recipe = _write(tmp_path, f"""
        version: 1
        nodes:
          src: {src}
          up: {up}
          out: {{type: video.write, input: up, with: {{path: "{tmp_path / 'o.mkv'}"}}}}
    """)
    proc = subprocess.run([sys.executable, "-m", "diffusify", "validate", str(recipe)], capture_output=True,
                          text=True, timeout=120)  # a guard: the bug was a hang
    assert proc.returncode == 2
    assert "is a named pipe (FIFO), not a" in proc.stdout


def test_suggestions_stay_cheap_for_huge_ids_and_validation_for_huge_recipes():
    long_id = "n" * 50_000
    nodes = [f"  {long_id}: {{type: pattern, with: {{width: 16, height: 16, frames: 2}}}}",
             f"  out: {{type: video.write, input: {long_id[:-1]}m, with: {{path: out/x.mkv}}}}"]
    code = "import sys; from diffusify.graph.validate import validate_text as v; " \
           "r = v(sys.stdin.read()); print(len(r.errors))"
    run = subprocess.run([sys.executable, "-c", code], input="version: 1\nnodes:\n" + "\n".join(nodes) + "\n",
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "1", run.stderr
    chain = ["  n0: {type: pattern, with: {width: 16, height: 16, frames: 2}}"]
    chain += [f"  n{i}: {{type: color, input: n{i - 1}}}" for i in range(1, 10_000)]
    chain += ["  out: {type: discard, input: n9999}"]
    run = subprocess.run([sys.executable, "-c", code], input="version: 1\nnodes:\n" + "\n".join(chain) + "\n",
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "0", run.stderr


# ---- outputs after a failure or a stop ------------------------------------------------------------------------
def test_a_run_that_fails_before_its_first_frame_leaves_no_output(tmp_path, registry):
    out = tmp_path / "o.mkv"
    recipe = _write(tmp_path, f"""
        version: 1
        nodes:
          src: {{type: pattern, with: {{width: 64, height: 48, frames: 50}}}}
          bad: {{type: test.slow, input: src, with: {{ms: 1, fail_at: 0}}}}
          out: {{type: video.write, input: bad, with: {{path: "{out}"}}}}
    """)
    events = []
    with pytest.raises(PipelineError):
        diffusify.run(str(recipe), registry=registry, hooks=[lambda **e: events.append(e)])
    assert not out.exists()
    assert any(e["event"] == "warning" and "no frame was written, so the file was removed" in e["message"]
               for e in events)


def test_a_stopped_run_cuts_the_copied_audio_where_the_video_ends(tmp_path):
    clip = make_av_clip(tmp_path / "av.mkv", tmp_path, rate="25", frames=100)
    out = tmp_path / "o.mkv"
    run = diffusify.start(f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{clip}"}}}}
  slow: {{type: test.slow, input: src, with: {{ms: 40}}}}
  out: {{type: video.write, input: slow, with: {{path: "{out}"}}}}
""", registry=_registry_with_slow())
    for e in run.events(timeout=60):
        if e["event"] == "progress" and e["frames"] >= 10:
            run.cancel()
    with pytest.raises(Interrupted) as info:
        run.result(timeout=60)
    frames = info.value.summary["outputs"][0]["frames"]  # type: ignore[attr-defined]
    assert 10 <= frames < 100 and count_decodable_frames(out) == frames
    _, audio_end = stream_span(out, "a:0")
    assert abs(audio_end - frames / 25) < 0.1, (audio_end, frames / 25)


def _registry_with_slow():
    from diffusify.processors.registry import default_registry
    from tests.conftest import CollectSink, Slow

    reg = default_registry().copy()
    reg.add(CollectSink, Slow)
    return reg


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_a_signal_during_start_up_exits_130_quietly(tmp_path, delay):
    out = tmp_path / "o.mkv"
    recipe = _write(tmp_path, f"""
        version: 1
        nodes:
          src: {{type: pattern, with: {{width: 64, height: 48, frames: 100000}}}}
          out: {{type: video.write, input: src, with: {{path: "{out}", preset: ultrafast}}}}
    """)
    proc = subprocess.Popen([sys.executable, "-m", "diffusify", "run", str(recipe)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("diffusify:")]
    assert len(lines) == 1 and "interrupted" in lines[0]
    if out.exists():
        assert count_decodable_frames(out) >= 1  # the stop came after the start: what was written plays


def test_every_message_is_one_line():
    err = PipelineError("size mismatch for body.0.weight:\n  copying a param with shape [64]\n  ...", node="up")
    assert "\n" not in str(err)
    v = validate_text("version: 1\nnodes:\n  \"a\\nb\": {type: pattern}\n  out: {type: discard, input: x}\n")
    assert v.errors and all("\n" not in p.format() for p in v.problems)


def test_a_bad_image_in_a_sequence_is_named(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    make_clip(frames / "frame_%06d.png", frames=5, codec="png", pix_fmt="rgb24")
    (frames / "frame_000002.png").write_text("not an image")
    with pytest.raises((PipelineError, RecipeError)) as info:
        diffusify.run(f"""
version: 1
nodes:
  src: {{type: image.read, with: {{path: "{frames}"}}}}
  out: {{type: discard, input: src}}
""")
    assert "frame_000002.png" in str(info.value) and "frame_000004" not in str(info.value)


# ---- what a first-time user trips on --------------------------------------------------------------------------
def test_a_recipe_runs_from_any_folder_and_writes_next_to_itself(tmp_path):
    recipe = ROOT / "pipelines" / "test_pattern.yaml"
    proc = subprocess.run([sys.executable, "-m", "diffusify", "run", str(recipe), "--dry-run"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert str(ROOT / "out" / "test_pattern.mkv") in proc.stdout
    # a path on the command line is relative to where the user stands
    proc = subprocess.run([sys.executable, "-m", "diffusify", "run", str(recipe), "--dry-run", "-o", "mine.mkv"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert str(tmp_path / "mine.mkv") in proc.stdout


def test_dry_run_lists_existing_outputs_and_a_run_names_them_all(tmp_path):
    a, b = tmp_path / "a.mkv", tmp_path / "b.mkv"
    a.write_bytes(b"x")
    b.write_bytes(b"y")
    text = f"""
version: 1
nodes:
  src: {{type: pattern, with: {{width: 64, height: 48, frames: 2}}}}
  one: {{type: video.write, input: src, with: {{path: "{a}"}}}}
  two: {{type: video.write, input: src, with: {{path: "{b}"}}}}
"""
    plan, _ = diffusify.plan(text, check_outputs=False)
    assert plan.existing == [("one", str(a)), ("two", str(b))]
    assert any("libx264 yuv420p" in line for line in plan.describe())
    with pytest.raises(UsageError) as info:
        diffusify.start(text)
    assert str(a) in str(info.value) and str(b) in str(info.value) and "overwrite=True" in str(info.value)


def test_an_output_folder_is_refused_at_validation(tmp_path):
    (tmp_path / "x.mkv").mkdir()
    v = validate_text(f"""
version: 1
nodes:
  src: {{type: pattern, with: {{width: 64, height: 48, frames: 2}}}}
  out: {{type: video.write, input: src, with: {{path: "{tmp_path / 'x.mkv'}"}}}}
""")
    assert "is a folder; a video output needs a file name" in _errors(v)


def test_set_reaches_node_parameters_and_lists_the_params(tmp_path):
    recipe = ROOT / "pipelines" / "test_pattern.yaml"
    plan, _ = diffusify.plan(str(recipe), set={"big.scale": "3", "src.kind": "bars"}, check_outputs=False)
    assert plan.nodes["big"].params.scale == 3 and plan.nodes["src"].params.kind == "bars"
    with pytest.raises(RecipeError) as info:
        diffusify.plan(str(recipe), set={"big.scael": "3", "frmes": "2"}, check_outputs=False)
    text = str(info.value)
    assert "resize has no parameter 'scael' (did you mean 'scale'?)" in text
    assert "the recipe has no parameter 'frmes' (did you mean 'frames'?) (its params: frames, output)" in text


def test_a_second_validate_of_a_model_recipe_does_not_import_torch(tmp_path):
    env = {**os.environ, "DIFFUSIFY_CACHE_DIR": str(tmp_path / "cache")}
    code = "import sys; from diffusify.api import validate; p = validate([sys.argv[1]]); " \
           "print(json.dumps([len([x for x in p if x.severity == 'error']), 'torch' in sys.modules]))"
    code = "import json; " + code
    recipe = str(ROOT / "pipelines" / "upscale_denoise.yaml")
    first = subprocess.run([sys.executable, "-c", code, recipe], env=env, capture_output=True, text=True)
    second = subprocess.run([sys.executable, "-c", code, recipe], env=env, capture_output=True, text=True)
    assert json.loads(first.stdout) == [0, True], first.stderr
    assert json.loads(second.stdout) == [0, False], second.stderr


def test_a_processor_from_a_missing_extra_names_it(monkeypatch):
    from diffusify.processors.generate import TextToVideo

    monkeypatch.setattr(TextToVideo, "requires", ("no_such_module_here",))
    with pytest.raises(UsageError) as info:
        diffusify.plan("""
version: 1
nodes:
  gen: {type: generate.text2video, with: {model: x, prompt: a cat}}
  out: {type: discard, input: gen}
""")
    assert "pip install 'diffusify[generate]'" in str(info.value)


def test_the_progress_display_speaks_plainly():
    import io

    from diffusify.runtime.events import ProgressDisplay, _rate

    assert _rate(0.02) == "50.0 s/frame" and _rate(12.34) == "12.3 fps"
    buf = io.StringIO()
    d = ProgressDisplay(buf)
    d.tty = True  # redraw every event (a pipe gets a line every few seconds)
    d(event="start", name="x", total_frames=10, nodes=[{"id": "src", "inputs": {}}, {"id": "up", "inputs": {"a": 1}}])
    nodes = [{"id": "src", "fps": 0.0, "busy": 0.1, "queue_frames": 0, "queue_capacity": 0, "ready": True},
             {"id": "up", "fps": 0.0, "busy": 0.0, "queue_frames": 1, "queue_capacity": 4, "ready": False}]
    d(event="progress", frames=0, total_frames=10, fps=0.0, eta=None, elapsed=1.0, nodes=nodes)
    d(event="interrupted", message="stopping: ...")
    d(event="progress", frames=1, total_frames=10, fps=0.02, eta=450.0, elapsed=50.0,
      nodes=[dict(n, ready=True, busy=0.9 if n["id"] == "up" else 0.1) for n in nodes])
    d(event="interrupted", message="interrupted: wrote 1 frames", summary={})
    out = buf.getvalue()
    assert "loading: up" in out and "setting up up" not in out
    assert "50.0 s/frame" in out and "stopping" in out and "ETA 7:30" not in out
    assert "slowest: up" in out
    assert out.count("interrupted: wrote") == 0  # the command prints the final line, once


def test_a_truncated_source_is_a_warning_and_strict_refuses_it(tmp_path):
    clip = make_clip(tmp_path / "clip.mkv", frames=50, size="64x48")
    data = clip.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    text = f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{cut}"}}}}
  out: {{type: discard, input: src}}
"""
    v = validate_text(text)
    assert v.ok
    warning = "\n".join(p.format() for p in v.warnings)
    assert "looks truncated or damaged" in warning and "announces 2.00 s (about 50 frames)" in warning
    with pytest.raises(RecipeError):
        diffusify.plan(text, strict=True)
