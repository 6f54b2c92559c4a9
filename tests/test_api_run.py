"""The run handle: ``diffusify.start`` -> Run (events, cancel, result), several runs in one process, recipes
given as text or mappings, segments, and device placement."""

from __future__ import annotations

import io
import json
import signal
import threading
from fractions import Fraction
from pathlib import Path

import pytest
import torch

import diffusify
from diffusify import Interrupted, JsonEvents, RecipeError, Segment
from diffusify.io.probe import probe
from tests._media import count_decodable_frames, make_clip
from tests.conftest import ROOT, CollectSink

PATTERN = ROOT / "pipelines" / "test_pattern.yaml"


def _endless(tmp_path: Path, name: str = "out.mkv") -> tuple[str, Path]:
    out = tmp_path / name
    return f"""
version: 1
nodes:
  src: {{type: pattern, with: {{kind: moving, width: 160, height: 90, frames: 1000000}}}}
  out: {{type: video.write, input: src, with: {{path: "{out}", codec: libx264, preset: ultrafast}}}}
""", out


def _wait_for(run: diffusify.Run, frames: int) -> None:
    for e in run.events(timeout=60):
        if e["event"] == "progress" and e["frames"] >= frames:
            return
    raise AssertionError("no progress")


def test_start_streams_the_json_events_and_returns_the_summary(tmp_path):
    buf = io.StringIO()
    out = tmp_path / "p.mkv"
    run = diffusify.start(str(PATTERN), output=str(out), set={"frames": "12"}, hooks=[JsonEvents(buf)])
    events = list(run.events())
    summary = run.result()
    names = [e["event"] for e in events]
    assert names[0] == "start" and names[-1] == "finished"
    assert names.count("node_finished") == 6
    assert events[-1]["summary"] == summary and summary["frames"] == 12
    printed = [json.loads(line) for line in buf.getvalue().splitlines()]
    strip = [{k: v for k, v in e.items() if k != "time"} for e in printed]
    assert strip == [json.loads(json.dumps({k: v for k, v in e.items() if k != "time"}, default=str))
                     for e in events]
    assert list(run.events()) == events  # replayed from the first one
    assert count_decodable_frames(out) == 12


def test_cancel_finalises_a_playable_output_and_result_raises_interrupted(tmp_path):
    text, out = _endless(tmp_path)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    run = diffusify.start(text)
    assert {s: signal.getsignal(s) for s in before} == before  # the library installs no signal handler
    _wait_for(run, 5)
    run.cancel()
    with pytest.raises(Interrupted) as info:
        run.result(timeout=60)
    written = info.value.summary["outputs"][0]["frames"]  # type: ignore[attr-defined]
    assert written >= 5 and count_decodable_frames(out) == written
    names = [e["event"] for e in run.events()]
    assert names.index("interrupted") < names.index("node_finished") and names[-1] == "interrupted"


def test_cancel_now_stops_at_once_and_the_output_still_plays(tmp_path):
    text, out = _endless(tmp_path)
    run = diffusify.start(text)
    _wait_for(run, 3)
    run.cancel(now=True)
    with pytest.raises(Interrupted):
        run.result(timeout=30)
    assert count_decodable_frames(out) >= 1


def test_two_runs_in_threads_both_finish(tmp_path):
    results: dict[str, object] = {}

    def go(name: str) -> None:
        results[name] = diffusify.run(str(PATTERN), output=str(tmp_path / f"{name}.mkv"), set={"frames": "20"})

    threads = [threading.Thread(target=go, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert {n: s["frames"] for n, s in results.items()} == {"a": 20, "b": 20}  # type: ignore[index]
    assert count_decodable_frames(tmp_path / "a.mkv") == count_decodable_frames(tmp_path / "b.mkv") == 20


def test_recipe_as_text_and_as_mapping(registry):
    recipe = {"version": 1, "nodes": {
        "src": {"type": "pattern", "with": {"width": 16, "height": 8, "frames": 3}},
        "out": {"type": "test.collect", "input": "src"}}}
    assert diffusify.run(recipe, registry=registry)["frames"] == 3
    text = "version: 1\nnodes:\n  src: {type: pattern, with: {frames: 2, width: 8, height: 8}}\n" \
           "  out: {type: test.collect, input: src}\n"
    assert diffusify.start(text, registry=registry).result()["frames"] == 2
    with pytest.raises(RecipeError) as info:
        diffusify.start("version: 1\nnodes:\n  src: {type: patern}\n")
    assert "did you mean 'pattern'" in str(info.value)


def _collect(registry, text: str, segment=None) -> list:
    diffusify.run(text, registry=registry, segment=segment)
    return CollectSink.results.pop("collected")


def test_a_segment_reads_that_frame_range_exactly(registry, tmp_path):
    pattern = "version: 1\nnodes:\n  src: {type: pattern, with: {kind: moving, width: 32, height: 16, frames: 30}}\n" \
              "  out: {type: test.collect, input: src}\n"
    whole = _collect(registry, pattern)
    part = _collect(registry, pattern, segment=(10, 20))
    assert [f.index for f in part] == list(range(10))
    assert [f.pts for f in part] == [Fraction(i, 25) for i in range(10)]
    assert all(torch.equal(a.data, b.data) for a, b in zip(part, whole[10:20], strict=True))

    clip = make_clip(tmp_path / "clip.mkv", size="32x16", frames=24, rate="24")
    video = f"version: 1\nnodes:\n  src: {{type: video.read, with: {{path: '{clip}', start: 2}}}}\n" \
            "  out: {type: test.collect, input: src}\n"
    whole = _collect(registry, video)
    part = _collect(registry, video, segment=Segment(5, 9))
    assert len(whole) == 22 and len(part) == 4
    assert [f.meta["source_index"] for f in part] == [7, 8, 9, 10]
    assert all(torch.equal(a.data, b.data) for a, b in zip(part, whole[5:9], strict=True))
    p, _ = diffusify.plan(video, registry=registry, segment=(5, 9))
    origin = p.nodes["src"].output.origin
    ts = probe(clip).timestamps  # the container's times (mkv: milliseconds)
    assert (origin.node, origin.start, origin.end) == ("src", ts[7], ts[11])


def test_replicas_go_to_the_least_loaded_device_and_shortfalls_are_listed_together(monkeypatch):
    from diffusify.runtime import plan as plan_mod

    load: dict[str, int] = {"cuda:0": 5}
    assert plan_mod._place(["cuda:0", "cuda:1"], 3, 2, load, {}) == ["cuda:1", "cuda:1", "cuda:1"]
    assert plan_mod._place(["cuda:0", "cuda:1"], 2, 2, load, {}) == ["cuda:0", "cuda:1"]

    monkeypatch.setattr(plan_mod, "_free_gpu_memory", lambda d: 3 << 30)

    class Heavy:
        type_name = "x.heavy"
        resources = diffusify.Resources(device="gpu", heavy=True, exclusive=True)

    def node(nid: str, devices: list[str], gib: int) -> plan_mod.NodePlan:
        return plan_mod.NodePlan(id=nid, cls=Heavy, params=None, inputs={}, consumers=[], devices=devices,
                                 queue=None, input_streams={}, output=None, gpu_memory=gib << 30)  # type: ignore[arg-type]

    problems = plan_mod.check_fit({"a": node("a", ["cuda:0", "cuda:1"], 2), "b": node("b", ["cuda:0"], 2)})
    text = "\n".join(problems)
    assert "cuda:0: the nodes placed there need about 4.0 GiB (a 2.0 GiB, b 2.0 GiB) but 3.0 GiB is free" in text
    assert "node 'a' (x.heavy) needs cuda:0 to itself, but b also run there" in text
    assert "cuda:1" not in text
    assert plan_mod.check_fit({"c": node("c", ["cpu"], 100)}) == []  # the CPU is not checked
