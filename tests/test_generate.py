"""generate.text2video / generate.image2video with tiny random-weight Wan and LTX pipelines, built in code, saved
with save_pretrained and loaded by path through the node users run. Nothing is downloaded."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest
import torch

import diffusify
from diffusify.core.errors import Interrupted
from diffusify.core.frame import Frame
from diffusify.core.stream import StreamInfo
from diffusify.graph.validate import validate_file
from diffusify.processors.generate import ImageToVideo, TextToVideo
from tests._helpers import assert_processor_contract, make_processor, save_model, tiny_compact

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

ROOT = Path(__file__).resolve().parents[1]
TINY = {"prompt": "a cat", "num_frames": 9, "width": 32, "height": 32, "steps": 2, "max_sequence_length": 16}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny Wan and LTX pipelines and a tiny 2x spandrel upscaler, built once per session."""
    from tests._diffusers_tiny import build_ltx, build_wan

    root = tmp_path_factory.mktemp("generate")
    return {"wan": build_wan(root / "wan"), "ltx": build_ltx(root / "ltx"),
            "up": save_model(tiny_compact(2), root / "up2.safetensors")}


def clip(model: Path, **params: object) -> torch.Tensor:
    """Every frame the node makes, stacked ``(N, 3, H, W)``."""
    proc = make_processor(TextToVideo, {"model": str(model), **TINY, **params})
    proc.setup()
    try:
        return torch.stack([f.data for f in proc.frames(threading.Event())])
    finally:
        proc.teardown()


def test_processors_keep_the_contract() -> None:
    assert_processor_contract(TextToVideo)
    assert_processor_contract(ImageToVideo)


@pytest.mark.parametrize("family", ["wan", "ltx"])
def test_the_node_gives_what_the_pipeline_gives(tiny: dict[str, Path], family: str) -> None:
    """Same seed and settings as a hand-written pipe(...) call: the same frames (Wan: decoded chunk by chunk)."""
    import diffusers

    index = json.loads((tiny[family] / "model_index.json").read_text())
    pipe = getattr(diffusers, index["_class_name"]).from_pretrained(str(tiny[family]))
    pipe.set_progress_bar_config(disable=True)
    args = {k: v for k, v in TINY.items() if k not in ("steps",)}
    extra = {"frame_rate": 25} if family == "ltx" else {}
    want = pipe(**args, num_inference_steps=2, guidance_scale=5.0, output_type="pt",
                generator=torch.Generator("cpu").manual_seed(3), **extra).frames[0]
    got = clip(tiny[family], seed=3)
    assert got.shape == (9, 3, 32, 32) and got.dtype == torch.float32
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())


def test_same_seed_same_frames_other_seed_other_frames(tiny: dict[str, Path]) -> None:
    a, b, c = clip(tiny["wan"], seed=7), clip(tiny["wan"], seed=7), clip(tiny["wan"], seed=8)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


def _recipe(tmp_path: Path, gen: str, tail: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"version: 1\nname: gen\nnodes:\n  gen: {gen}\n{tail}", encoding="utf-8")
    return path


def test_recipe_text_generate_upscale_write(tiny: dict[str, Path], tmp_path: Path) -> None:
    """Two shots (9 + 5 frames) at Wan's default 16 fps, upscaled 2x, written: 14 frames of 64x64 at 16 fps."""
    from diffusify.io.probe import probe
    from tests._media import count_decodable_frames

    out = tmp_path / "out.mkv"
    gen = (f"{{type: generate.text2video, with: {{model: {tiny['wan']}, width: 32, height: 32, steps: 2, "
           "max_sequence_length: 16, shots: [{prompt: a cat, num_frames: 9}, {prompt: a dog, num_frames: 5}]}}")
    recipe = _recipe(tmp_path, gen, f"  up: {{type: upscale.spandrel, input: gen, with: {{model: {tiny['up']}}}}}\n"
                                   f"  out: {{type: video.write, input: up, with: {{path: {out}, codec: ffv1}}}}\n")
    plan, _ = diffusify.plan(str(recipe))
    assert plan.nodes["gen"].output.frames == 14 and plan.nodes["gen"].output.fps == 16
    summary = diffusify.run(str(recipe))
    assert summary["outputs"][0]["frames"] == 14
    info = probe(str(out))
    assert (info.video.width, info.video.height, info.video.fps) == (64, 64, Fraction(16))
    assert count_decodable_frames(out) == 14


def test_ltx_states_its_family_rate_and_honours_max_frames(tiny: dict[str, Path], tmp_path: Path) -> None:
    gen = f"{{type: generate.text2video, with: {{model: {tiny['ltx']}, prompt: a cat, num_frames: 9, width: 32, " \
          "height: 32, steps: 2, max_sequence_length: 16}}"
    recipe = _recipe(tmp_path, gen, "  out: {type: discard, input: gen}\n")
    plan, _ = diffusify.plan(str(recipe))
    assert plan.nodes["gen"].output.fps == 25  # LTX-Video's rate, stated by the node
    assert diffusify.run(str(recipe), max_frames=4)["frames"] == 4


def test_family_rules_are_located_errors_with_the_nearest_values(tiny: dict[str, Path], tmp_path: Path) -> None:
    gen = (f"{{type: generate.text2video, with: {{model: {tiny['ltx']}, prompt: a cat,\n"
           "      num_frames: 10, width: 40, height: 32, shots: [{prompt: x, num_frames: 12}]}}")
    v = validate_file(str(_recipe(tmp_path, gen, "  out: {type: discard, input: gen}\n")))
    found = {(p.line, p.path.split(".")[-1]): p.message for p in v.errors}
    assert "use 9 or 17 (got 10)" in found[(5, "num_frames")] and "LTX-Video" in found[(5, "num_frames")]
    assert "divisible by 32: use 32 or 64 (got 40)" in found[(5, "width")]
    assert "shot 1" in found[(5, "shots")] and "use 9 or 17 (got 12)" in found[(5, "shots")]
    assert len(v.errors) == 3
    # Wan's rules come from its own folder: 16 px, 4k + 1 frames
    gen = f"{{type: generate.text2video, with: {{model: {tiny['wan']}, prompt: a, num_frames: 11, width: 48}}}}"
    v = validate_file(str(_recipe(tmp_path, gen, "  out: {type: discard, input: gen}\n", "w.yaml")))
    assert [p.message.split(": use ")[1] for p in v.errors] == ["9 or 13 (got 11)"]


def test_a_hub_model_validates_offline_from_the_cache_or_its_name(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    tail = "  out: {type: discard, input: gen}\n"
    ok = "{type: generate.text2video, with: {model: Someone/video-model, prompt: a, fps: 24}}"
    v = validate_file(str(_recipe(tmp_path, ok, tail)))
    assert v.ok and not v.warnings  # not downloaded, no family known: nothing worse than no check
    bad = "{type: generate.text2video, with: {model: Org/Wan2.1-T2V-1.3B-Diffusers, prompt: a, num_frames: 10}}"
    v = validate_file(str(_recipe(tmp_path, bad, tail)))
    assert [p.path.split(".")[-1] for p in v.errors] == ["num_frames"]  # the family read from the repo's name
    # downloaded before: the snapshot's model_index.json says the class
    repo = cache / "models--Someone--video-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "model_index.json").write_text('{"_class_name": "LTXPipeline"}')
    v = validate_file(str(_recipe(tmp_path, ok.replace("a, fps", "a, num_frames: 13, fps"), tail)))
    assert [p.path.split(".")[-1] for p in v.errors] == ["num_frames"] and "LTX-Video" in v.errors[0].message
    missing = "{type: generate.text2video, with: {model: ./no/such/folder, prompt: a}}"
    v = validate_file(str(_recipe(tmp_path, missing, tail)))
    assert "model not found" in v.errors[0].message


def test_an_image_to_video_model_is_refused_by_text2video(tmp_path: Path) -> None:
    folder = tmp_path / "i2v"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "WanImageToVideoPipeline"}')
    gen = f"{{type: generate.text2video, with: {{model: {folder}, prompt: a, num_frames: 9}}}}"
    v = validate_file(str(_recipe(tmp_path, gen, "  out: {type: discard, input: gen}\n")))
    assert [p.path.split(".")[-1] for p in v.errors] == ["model"] and "generate.image2video" in v.errors[0].message


def test_validate_imports_neither_torch_nor_diffusers(tiny: dict[str, Path], tmp_path: Path) -> None:
    gen = f"{{type: generate.text2video, with: {{model: {tiny['wan']}, prompt: a, num_frames: 9}}}}"
    recipe = _recipe(tmp_path, gen, "  out: {type: discard, input: gen}\n")
    code = ("import sys; from diffusify.graph.validate import validate_file; v = validate_file(sys.argv[1]); "
            "print(v.ok, 'torch' in sys.modules, 'diffusers' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(recipe)], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.split() == ["True", "False", "False"], done.stderr


def test_memory_estimates_come_from_the_weights_and_shrink_with_offload(tiny: dict[str, Path]) -> None:
    p = TextToVideo.Params(model=str(tiny["wan"]), **TINY)
    none = TextToVideo.gpu_memory(p, {}, None)
    model = TextToVideo.gpu_memory(p.model_copy(update={"offload": "model"}), {}, None)
    fp32 = TextToVideo.gpu_memory(p.model_copy(update={"precision": "fp32"}), {}, None)
    assert 0 < model < none < fp32


def test_cancel_stops_at_a_step_and_keeps_finished_shots(tiny: dict[str, Path], tmp_path: Path) -> None:
    """Shot 2 would take minutes; a cancel during its denoising ends the run at the next step, with shot 1's
    frames written, and the progress events show the steps."""
    from tests._media import count_decodable_frames

    out = tmp_path / "cancel.mkv"
    gen = (f"{{type: generate.text2video, with: {{model: {tiny['wan']}, width: 32, height: 32, steps: 2, "
           "max_sequence_length: 16, shots: [{prompt: a cat, num_frames: 9}, {prompt: a dog, num_frames: 9, "
           "steps: 500}]}}")
    recipe = _recipe(tmp_path, gen, f"  out: {{type: video.write, input: gen, with: {{path: {out}, codec: ffv1}}}}\n")
    statuses: list[dict[str, int]] = []
    run: list[diffusify.Run] = []

    def hook(*, event: str, **f: object) -> None:
        if event != "progress":
            return
        for n in f["nodes"]:  # type: ignore[attr-defined]
            if n["id"] == "gen" and n.get("status"):
                statuses.append(n["status"])
                if n["status"]["shot"] == 2 and n["status"]["step"] >= 1:
                    run[0].cancel()

    t0 = time.monotonic()
    run.append(diffusify.start(str(recipe), hooks=[hook]))
    with pytest.raises(Interrupted) as info:
        run[0].result(timeout=120)
    assert time.monotonic() - t0 < 60  # 500 steps were not run
    assert info.value.summary["outputs"][0]["frames"] == 9  # type: ignore[attr-defined]
    assert count_decodable_frames(out) == 9
    last = statuses[-1]
    assert last["shots"] == 2 and last["steps"] == 500 and 1 <= last["step"] < 500


def test_the_progress_display_shows_the_step() -> None:
    import io

    from diffusify.runtime.events import ProgressDisplay

    out = io.StringIO()
    show = ProgressDisplay(out)
    show(event="start", name="g", total_frames=18, nodes=[{"id": "gen", "inputs": []}])
    node = {"id": "gen", "fps": 0.0, "busy": 1.0, "queue_frames": 0, "queue_capacity": 0, "frames": 0,
            "status": {"step": 3, "steps": 25, "shot": 1, "shots": 2}}
    show(event="progress", frames=0, total_frames=18, fps=0.0, eta=None, elapsed=3.0, nodes=[node])
    assert "gen: step 3/25 (shot 1/2)" in out.getvalue()


@pytest.mark.parametrize("offload", ["model", "group"])
def test_offload_modes_run_and_give_the_same_frames(tiny: dict[str, Path], offload: str) -> None:
    """On the CPU the offload hooks still move every module on and off its execution device. (sequential is not
    run here: accelerate's weight swap fails on the CPU with this torch.)"""
    assert torch.allclose(clip(tiny["wan"], seed=1, offload=offload), clip(tiny["wan"], seed=1), atol=1e-6)


def test_memory_options_run(tiny: dict[str, Path]) -> None:
    ref = clip(tiny["wan"], seed=2)
    assert torch.allclose(clip(tiny["wan"], seed=2, vae_tiling=True, vae_slicing=True), ref, atol=1e-5)
    fp8 = clip(tiny["wan"], seed=2, fp8_storage=True)
    assert fp8.shape == ref.shape and 0 < (fp8 - ref).abs().max() < 0.5  # fp8 weights: close, not equal


def test_a_missing_quantisation_library_is_named(tiny: dict[str, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import diffusify.processors.generate as g

    monkeypatch.setattr(g, "_missing", lambda module: True)
    gen = f"{{type: generate.text2video, with: {{model: {tiny['wan']}, prompt: a, num_frames: 9, quantize: bnb-nf4}}}}"
    v = validate_file(str(_recipe(tmp_path, gen, "  out: {type: discard, input: gen}\n")))
    assert [p.path.split(".")[-1] for p in v.errors] == ["quantize"] and "pip install bitsandbytes" in v.errors[0].message


def test_image2video_animates_each_input_frame(tiny: dict[str, Path]) -> None:
    """The tiny LTX folder loads as LTXImageToVideoPipeline: each input frame becomes 9 frames, times continuous."""
    src = StreamInfo(width=40, height=24, fps=Fraction(25), frames=2)
    proc = make_processor(ImageToVideo, {"model": str(tiny["ltx"]), **TINY, "each": True}, streams={"input": src})
    assert proc.output_stream.frames == 18 and proc.output_stream.fps == 25
    proc.setup()
    try:
        assert proc.pipe_name == "LTXImageToVideoPipeline"
        a = proc.push({"input": Frame(0, Fraction(0), torch.rand(3, 24, 40))})
        b = proc.push({"input": Frame(1, Fraction(1, 25), torch.rand(3, 24, 40))})
    finally:
        proc.teardown()
    frames = a + b
    assert len(frames) == 18 and frames[0].data.shape == (3, 32, 32)
    assert [f.pts for f in frames] == [Fraction(i, 25) for i in range(18)]
    first = make_processor(ImageToVideo, {"model": str(tiny["ltx"]), **TINY}, streams={"input": src})
    assert first.output_stream.frames == 9  # the first frame only


def test_wan_frames_leave_while_the_rest_still_decodes(tiny: dict[str, Path]) -> None:
    """The first frame is handed out after one latent frame has been decoded, not after the whole clip."""
    proc = make_processor(TextToVideo, {"model": str(tiny["wan"]), **TINY})
    proc.setup()
    calls: list[int] = []
    hook = proc.pipe.vae.decoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        it = proc.frames(threading.Event())
        next(it)
        assert len(calls) == 1
        assert len(list(it)) == 8 and len(calls) == 3  # 9 frames from 3 latent frames (1 + 4 + 4)
    finally:
        hook.remove()
        proc.teardown()


def test_a_segment_generates_only_the_shots_it_needs(tiny: dict[str, Path]) -> None:
    from diffusify.processors.base import PlanContext, RunOptions, Segment

    params = TextToVideo.Params(model=str(tiny["wan"]), **{**TINY, "prompt": None},
                                shots=[{"prompt": "a cat"}, {"prompt": "a dog"}])
    whole = clip(tiny["wan"], prompt=None, shots=[{"prompt": "a cat"}, {"prompt": "a dog"}])
    seg = Segment(10, 14)
    out = TextToVideo.infer_stream(params, {}, PlanContext(segment=seg))
    assert out is not None and out.frames == 4
    proc = TextToVideo("gen", params, inputs={}, output=out, options=RunOptions(segment=seg))
    proc.setup()
    shots: list[int] = []
    real = proc.clip

    def spy(**kw: object):  # noqa: ANN202
        shots.append(int(kw["shot"]))  # type: ignore[call-overload]
        return real(**kw)

    proc.clip = spy  # type: ignore[method-assign]
    try:
        frames = list(proc.frames(threading.Event()))
    finally:
        proc.teardown()
    assert shots == [2]  # the first shot lies wholly before the segment
    assert [f.index for f in frames] == [0, 1, 2, 3] and frames[0].pts == 0
    assert torch.equal(torch.stack([f.data for f in frames]), whole[10:14])


def test_image2video_recipe_animates_the_first_frame(tiny: dict[str, Path], tmp_path: Path) -> None:
    recipe = tmp_path / "i2v.yaml"
    recipe.write_text(f"""version: 1
nodes:
  src: {{type: pattern, with: {{kind: noise, width: 48, height: 40, frames: 3}}}}
  gen: {{type: generate.image2video, input: src, with: {{model: {tiny['ltx']}, prompt: a cat, num_frames: 9,
        width: 32, height: 32, steps: 2, max_sequence_length: 16, fps: 12}}}}
  out: {{type: discard, input: gen}}
""", encoding="utf-8")
    summary = diffusify.run(str(recipe))
    assert summary["frames"] == 9
    assert {n["id"]: n["frames"] for n in summary["nodes"]}["gen"] == 9


def test_weights_knows_hub_models_and_pulls_them_through_the_hub_cache(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from diffusify.weights.cli import weights
    from diffusify.weights.hub import find_hub, hub_models, pull_hub

    entries = {h.name: h for h in hub_models()}
    assert entries["wan2.1-t2v-1.3b"].repo == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    assert entries["wan2.1-t2v-1.3b"].licence == "Apache-2.0" and entries["ltx-video"].pipeline == "LTXPipeline"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    listed = CliRunner().invoke(weights, ["list"])
    assert "Wan-AI/Wan2.1-T2V-1.3B-Diffusers@main" in listed.output and "not downloaded" in listed.output
    calls: list[dict[str, object]] = []

    def fake_download(**kw: object) -> str:
        calls.append(kw)
        snap = tmp_path / "hub" / "models--Wan-AI--Wan2.1-T2V-1.3B-Diffusers" / "snapshots" / "c0ffee"
        snap.mkdir(parents=True)
        (snap / "model_index.json").write_text('{"_class_name": "WanPipeline"}')
        (snap.parent.parent / "refs").mkdir()
        (snap.parent.parent / "refs" / "main").write_text("c0ffee")
        return str(snap)

    entry = find_hub("WAN2.1-T2V-1.3B")
    assert entry is not None
    path = pull_hub(entry, snapshot_download=fake_download)
    assert calls == [{"repo_id": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "revision": "main"}]
    assert (path / "model_index.json").is_file()
    # the recipe's manifest name now resolves to the cached snapshot: the family rules apply offline
    gen = "{type: generate.text2video, with: {model: wan2.1-t2v-1.3b, prompt: a, num_frames: 10}}"
    v = validate_file(str(_recipe(tmp_path, gen, "  out: {type: discard, input: gen}\n")))
    assert [p.path.split(".")[-1] for p in v.errors] == ["num_frames"] and "Wan" in v.errors[0].message

    def failing(**kw: object) -> str:
        raise OSError("network unreachable\nmore lines")

    from diffusify.weights.errors import WeightsError

    with pytest.raises(WeightsError, match="cannot download Wan-AI/Wan2.1-T2V-1.3B-Diffusers@main: network unreachable$"):
        pull_hub(entry, snapshot_download=failing)


@pytest.mark.slow
def test_ctrl_c_during_denoising_exits_130_with_the_finished_shot_written(tiny: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    """The command line: SIGINT while shot 2 denoises -> exit 130, shot 1's 9 frames in a playable file."""
    import signal

    from tests._media import count_decodable_frames

    out = tmp_path / "sigint.mkv"
    gen = (f"{{type: generate.text2video, with: {{model: {tiny['wan']}, width: 32, height: 32, steps: 2, "
           "max_sequence_length: 16, shots: [{prompt: a cat, num_frames: 9}, {prompt: a dog, num_frames: 9, "
           "steps: 500}]}}")
    recipe = _recipe(tmp_path, gen, f"  out: {{type: video.write, input: gen, with: {{path: {out}, codec: ffv1}}}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "diffusify", "run", str(recipe), "--json-events"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        event = json.loads(line)
        status = next((n.get("status") for n in event.get("nodes", []) if n["id"] == "gen"), None)
        if event["event"] == "progress" and status and status["shot"] == 2 and status["step"] >= 1:
            break
        assert time.monotonic() < deadline, "shot 2 never started"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert f"wrote 9 frames to {out}" in stderr
    assert count_decodable_frames(out) == 9


def test_wan_image2video_decodes_a_patchified_vae_in_chunks_like_the_pipeline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Wan 2.2 5B-shaped image-to-video folder: its own configs make sizes multiples of 32, and the node's
    chunked decoding (through the VAE's patching) gives the frames pipe(...) gives."""
    import types

    import diffusers
    from diffusers.pipelines.wan import pipeline_wan_i2v

    from diffusify.processors.base import StreamError
    from tests._diffusers_tiny import build_wan_ti2v

    folder = build_wan_ti2v(tmp_path / "ti2v")
    gen = f"{{type: generate.image2video, input: gen, with: {{model: {folder}, prompt: a, num_frames: 9, width: 48}}}}"
    v = validate_file(str(_recipe(tmp_path, "{type: pattern, with: {frames: 1}}",
                                  f"  g: {gen}\n  out: {{type: discard, input: g}}\n")))
    assert [p.message.split(": use ")[1] for p in v.errors] == ["32 or 64 (got 48)"]
    image = torch.rand(3, 32, 32)
    src = StreamInfo(width=32, height=32, fps=Fraction(24), frames=2)
    proc = make_processor(ImageToVideo, {"model": str(folder), **TINY, "seed": 5, "each": True},
                          streams={"input": src})
    proc.setup()
    try:
        assert proc.chunked and proc.output_stream.fps == 16  # Wan's rate
        # this pipeline cleans prompts with ftfy without checking that it is installed: a clear message
        monkeypatch.delattr(pipeline_wan_i2v, "ftfy", raising=False)
        with pytest.raises(StreamError, match="needs the ftfy package: pip install ftfy"):
            proc.push({"input": Frame(0, Fraction(0), image)})
        monkeypatch.setattr(pipeline_wan_i2v, "ftfy", types.SimpleNamespace(fix_text=lambda t: t), raising=False)
        got = torch.stack([f.data for f in proc.push({"input": Frame(1, Fraction(1, 24), image)})])
    finally:
        proc.teardown()
    pipe = diffusers.WanImageToVideoPipeline.from_pretrained(str(folder))
    pipe.set_progress_bar_config(disable=True)
    want = pipe(image=image[None], prompt="a cat", num_frames=9, width=32, height=32, num_inference_steps=2,
                guidance_scale=5.0, max_sequence_length=16, output_type="pt",
                generator=torch.Generator("cpu").manual_seed(6)).frames[0]  # the second input: seed + 1
    assert got.shape == (9, 3, 32, 32)
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())
