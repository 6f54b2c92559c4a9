"""Runtime figures: overhead against bare ffmpeg, memory flatness over long runs, and compute/IO overlap.

    python bench/runtime.py overhead [--device cuda] [--repeat 3]  # 6-node graph vs ffmpeg, 1080p 300 frames
    python bench/runtime.py side-by-side [--repeat 6]  # the same graphs and the pipe pair at once, on core halves
    python bench/runtime.py memory     # peak RSS, 300 vs 3000 frames of 1080p through a 2x resize
    python bench/runtime.py overlap    # a 20 ms/frame processor on 360p: wall time vs frames x 20 ms
    python bench/runtime.py startup [--repeat 5]  # one 1080p frame: a transcode and colour graphs vs the pipe pair
    python bench/runtime.py nodes [--repeat 5]    # the 6-node graph's node work on a 1080p frame: float vs native
    python bench/runtime.py against ../before [--repeat 4]  # the 6-node graph: another checkout vs this one
    python bench/runtime.py all

Each figure runs its baseline in the same invocation and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._clips import make_clip  # noqa: E402

CODEC = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
_WRITE = "codec: libx264, preset: veryfast, crf: 20, pix_fmt: yuv420p, copy_streams_from: none"
IDENTITY, SIX_NODE = "identity graph (read -> write)", "6-node graph (fan-out + merge)"
CPU_TARGETS = ((IDENTITY, 0.97), (SIX_NODE, 0.9))  # of the pipe pair's throughput (the speed issue)


def _recipe(tmp: Path, text: str, name: str = "bench.yaml") -> str:
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _run_cli(recipe: str, *extra: str, tree: str | None = None) -> dict:
    """Run `diffusify run` in a fresh process and return its final summary (from --json-events); with ``tree``,
    the project in that folder (run from the recipe's folder, so the current one is not imported instead)."""
    return _summary_of(_start_cli(recipe, *extra, tree=tree))


def _start_cli(recipe: str, *extra: str, tree: str | None = None, cpus: set[int] | None = None) -> subprocess.Popen:
    """Start `diffusify run` (see :func:`_run_cli`); with ``cpus``, it and its ffmpeg children run on those
    cores only."""
    env = None if tree is None else {**os.environ, "PYTHONPATH": tree}
    return subprocess.Popen([sys.executable, "-m", "diffusify", "run", recipe, "--json-events", "--overwrite", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=None if tree is None else Path(recipe).parent, preexec_fn=_pin(cpus))


def _summary_of(proc: subprocess.Popen) -> dict:
    """The final summary of a run started by :func:`_start_cli`, once it has finished."""
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"diffusify run failed: {err.strip()}")
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return next(e for e in events if e["event"] == "finished")["summary"]


def _pin(cpus: set[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that keeps a child (and what it starts) on ``cpus``; None for no pinning."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def _identity(clip: Path, out: Path, middle: str = "") -> str:
    """read -> write: the engine's frame interface and nothing else (with ``middle``, the type and parameters of a
    node ``mid`` between the two)."""
    mid = f"\n          mid: {{{middle}, input: src}}" if middle else ""
    return f"""
        version: 1
        nodes:
          src: {{type: video.read, with: {{path: "{clip}"}}}}{mid}
          out: {{type: video.write, input: {'mid' if middle else 'src'}, with: {{path: "{out}", {_WRITE}}}}}
    """


def _six_node(clip: Path, out: Path) -> str:
    """read -> {color, crop} -> blend -> color -> write, with adjustments below a quarter of an 8-bit level."""
    return f"""
        version: 1
        nodes:
          src:   {{type: video.read, with: {{path: "{clip}"}}}}
          warm:  {{type: color, input: src, with: {{brightness: 0.001}}}}
          cut:   {{type: crop, input: src, with: {{x: 0, y: 0}}}}
          mix:   {{type: compose.blend, inputs: {{a: warm, b: cut}}, with: {{weight: 0.5}}}}
          grade: {{type: color, input: mix, with: {{contrast: 1.001}}}}
          out:   {{type: video.write, input: grade, with: {{path: "{out}", {_WRITE}}}}}
    """


def against(other: str, repeat: int = 4) -> None:
    """The 6-node graph with another checkout of the project (``other``: its folder, e.g. from ``git worktree add
    ../before REV``) and with this one, alternated, each round against the pipe pair run just before: the change's
    effect measured in the same rounds, as throughput (of the pipe pair) and CPU seconds: of the whole run (the
    engine and its ffmpeg processes, which swing with the machine) and of the engine's process alone (its summary's
    ``process_cpu_seconds``, where the build reports it: what the change itself costs or saves)."""
    clip = make_clip("1080p_300.mp4", width=1920, height=1080, frames=300)
    trees = {"other": str(Path(other).resolve()), "this": str(ROOT)}
    ratios: dict[str, list[float]] = {name: [] for name in trees}
    cpus: dict[str, list[float]] = {name: [] for name in trees}
    engine_cpus: dict[str, list[float]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        recipe = _recipe(tmp, _six_node(clip, tmp / "ours.mkv"))
        for i in range(repeat):
            pair = _piped(clip, tmp / "pair.mkv")[0]
            for name in (list(trees) if i % 2 == 0 else list(reversed(trees))):
                cpu0 = _children_cpu()
                summary = _run_cli(recipe, tree=trees[name])
                engine = summary["wall_seconds"] - summary.get("torch_import_seconds", 0.0)
                ratios[name].append(pair / engine)
                cpus[name].append(_children_cpu() - cpu0)
                engine_cpus[name].append(summary.get("process_cpu_seconds", float("nan")))  # nan: not reported
            print(f"against: round {i + 1}: " + ", ".join(f"{n} {ratios[n][-1]:.3f} of the pipe pair "
                                                         f"({cpus[n][-1]:.1f} CPU s, {engine_cpus[n][-1]:.1f} in the "
                                                         "engine's process)" for n in trees))
    med = statistics.median
    for name, tree in trees.items():
        reported = [c for c in engine_cpus[name] if c == c]
        own = f", in the engine's process {med(reported):.2f}" if reported else ""
        print(f"against: {name} ({tree}): 6-node graph / pipe pair median {med(ratios[name]):.3f}, "
              f"CPU seconds median {med(cpus[name]):.1f}{own}")


def _children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _bare(clip: Path, out: Path) -> tuple[float, float]:
    """Bare ffmpeg decode -> encode with CODEC: (wall seconds, CPU seconds of the child)."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), "-map", "0:v",
                    *CODEC, str(out)], check=True)
    return time.perf_counter() - t0, _children_cpu() - cpu0


def _piped(clip: Path, out: Path, frames: int | None = None) -> tuple[float, float]:
    """The engine's two ffmpeg ends alone, joined by a pipe: decode with the reader's conversion to planar RGB,
    encode with the writer's conversion from it, nothing in between (no Python). (wall seconds, CPU seconds)."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    _finish_pair(_start_pair(*_pair_commands(clip, out, frames)))
    return time.perf_counter() - t0, _children_cpu() - cpu0


def _pair_commands(clip: Path, out: Path, frames: int | None = None) -> tuple[list[str], list[str]]:
    """The pipe pair's decoder and encoder command lines (see :func:`_piped`)."""
    from diffusify.io.formats import from_rgb_filter, to_rgb_filter
    from diffusify.io.probe import probe

    info = probe(clip)
    video = info.video
    assert video is not None
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    decode = [ffmpeg, "-v", "error", "-i", str(clip), "-map", "0:v:0", *(["-frames:v", str(frames)] if frames else []),
              "-vf", to_rgb_filter(info.pix_fmt, video.color, video.width, video.height, "gbrp"),
              "-f", "rawvideo", "-pix_fmt", "gbrp", "-avioflags", "direct", "pipe:1"]
    encode = [ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gbrp", "-s", f"{video.width}x{video.height}",
              "-framerate", str(video.fps), "-i", "pipe:0", "-vf", from_rgb_filter(video.color, "yuv420p", video.width, video.height)[0],
              *CODEC, str(out)]
    return decode, encode


def _start_pair(decode: list[str], encode: list[str], cpus: set[int] | None = None) -> tuple[subprocess.Popen, ...]:
    """Start the pipe pair's decoder and encoder (on ``cpus`` where given), joined by a 1 MiB pipe."""
    from diffusify.io.ffmpeg import _widen_pipe

    decoder = subprocess.Popen(decode, stdout=subprocess.PIPE, preexec_fn=_pin(cpus))
    assert decoder.stdout is not None
    _widen_pipe(decoder.stdout.fileno())  # the 1 MiB pipes the engine's ends get: the same frame interface
    encoder = subprocess.Popen(encode, stdin=decoder.stdout, preexec_fn=_pin(cpus))
    decoder.stdout.close()
    return decoder, encoder


def _finish_pair(procs: tuple[subprocess.Popen, ...], done: list[float] | None = None) -> None:
    """Wait for the pipe pair; with ``done``, append the time it finished (``time.perf_counter()``)."""
    decoder, encoder = procs
    if encoder.wait() != 0 or decoder.wait() != 0:
        raise SystemExit("the piped ffmpeg pair failed")
    if done is not None:
        done.append(time.perf_counter())


def overhead(device: str, repeat: int = 1) -> None:
    """The 6-node graph and an identity graph (read -> write: the cost of the frame interface alone) against
    bare ffmpeg, ``repeat`` times (each round measures its own baseline; the median ratio is the figure). Each
    graph's ratio to the ffmpeg pipe pair is against the mean of the pair's runs just before and just after it.
    Throughput is frames over the engine's wall time (the run without interpreter and torch start-up, printed
    separately); CPU seconds show where a machine without spare cores loses.

    The nodes do all their arithmetic, but their adjustments stay below a quarter of an 8-bit level, so the
    encoded picture is the source's and the encoder does the same work as in the baseline. Visible adjustments
    change the encoder's cost (measured on 2 cores: brightness 0.02 and contrast 1.05 made x264 spend 28.5
    CPU-s instead of 35.9), which would flatter the ratio."""
    rounds = [_overhead_round(device) for _ in range(repeat)]
    if repeat > 1:
        for name in rounds[0]:
            values = sorted(r[name] for r in rounds)
            print(f"overhead: {name}: ratios {', '.join(f'{v:.3f}' for v in values)}; "
                  f"median {statistics.median(values):.3f}")
    six = statistics.median(r[SIX_NODE] for r in rounds)
    print(f"overhead: throughput ratio 6-node graph / bare ffmpeg = {six:.3f} (target on a GPU >= 0.95)")
    for name, target in CPU_TARGETS:
        ratio = statistics.median(r[f"{name} / pipe pair"] for r in rounds)
        print(f"overhead: throughput ratio {name} / pipe pair = {ratio:.3f} (target on the CPU >= {target})")


def side_by_side(repeat: int = 6, frames: int = 150) -> None:
    """The identity and 6-node graphs against the pipe pair **at the same time**, each on half of this machine's
    cores (pinned: the engine and its ffmpeg processes on one half, the pair on the other; the halves swap every
    round), ``repeat`` rounds of each graph. Both sides live through the same minute of a noisy machine, so its
    swings (bare ffmpeg took 19.9-26.3 s for the same work within one invocation) move both alike; what differs
    is the CPU each side spends a frame, which on cores the encoder already fills is what decides the frame rate.
    The figure is the median over rounds of pair time / graph time (the graph's engine time, as ``overhead``)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("side-by-side needs at least 2 cores")
    halves = ({*cores[:len(cores) // 2]}, {*cores[len(cores) // 2:]})
    clip = make_clip("1080p_300.mp4", width=1920, height=1080, frames=300)
    print(f"side-by-side: {len(cores)} cores, halves {sorted(halves[0])} and {sorted(halves[1])}; 1080p, "
          f"{frames} frames, x264 veryfast crf 20")
    ratios: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        graphs = {
            IDENTITY: _recipe(tmp, _identity(clip, tmp / "id.mkv"), "id.yaml"),
            SIX_NODE: _recipe(tmp, _six_node(clip, tmp / "ours.mkv"), "six.yaml"),
        }
        for i in range(repeat):
            for name, recipe in graphs.items():
                mine, theirs = halves if i % 2 == 0 else reversed(halves)
                t0 = time.perf_counter()
                engine = _start_cli(recipe, "--max-frames", str(frames), cpus=mine)
                pair = _start_pair(*_pair_commands(clip, tmp / "pair.mkv", frames), cpus=theirs)
                done: list[float] = []
                waiter = threading.Thread(target=_finish_pair, args=(pair, done))
                waiter.start()
                summary = _summary_of(engine)
                waiter.join()
                pair_s = done[0] - t0
                ours = summary["wall_seconds"] - summary["torch_import_seconds"]
                ratios.setdefault(name, []).append(pair_s / ours)
                print(f"side-by-side: round {i + 1}, {name}: {ours:.2f} s on cores {sorted(mine)} "
                      f"({summary['process_cpu_seconds']:.1f} CPU s in the engine's process), the pipe pair "
                      f"{pair_s:.2f} s on {sorted(theirs)} -> {pair_s / ours:.3f}")
    for name, target in CPU_TARGETS:
        values = sorted(ratios[name])
        print(f"side-by-side: {name} / pipe pair, at the same time: ratios {', '.join(f'{v:.3f}' for v in values)}; "
              f"median {statistics.median(values):.3f} (target on the CPU >= {target})")


def _overhead_round(device: str) -> dict[str, float]:
    frames = 300
    clip = make_clip("1080p_300.mp4", width=1920, height=1080, frames=frames)
    print(f"overhead: {os.cpu_count()} CPU cores, nodes on {device}; 1080p, {frames} frames, x264 veryfast crf 20")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bare, bare_cpu = _bare(clip, tmp / "ffmpeg.mkv")
        print(f"overhead: bare ffmpeg decode->encode     {frames / bare:6.1f} fps ({bare:.2f} s, {bare_cpu:.1f} CPU s)")
        piped, piped_cpu = _piped(clip, tmp / "piped.mkv")
        ratios = {"ffmpeg -> RGB pipe -> ffmpeg": bare / piped}
        print(f"overhead: ffmpeg -> RGB pipe -> ffmpeg   {frames / piped:6.1f} fps ({piped:.2f} s, {piped_cpu:.1f} CPU s) "
              f"-> ratio {bare / piped:.3f} (the frame interface without Python)")
        graphs = {
            IDENTITY: _identity(clip, tmp / "id.mkv"),
            SIX_NODE: _six_node(clip, tmp / "ours.mkv"),
        }
        for name, text in graphs.items():
            cpu0, t0 = _children_cpu(), time.perf_counter()
            summary = _run_cli(_recipe(tmp, text), "--device", device)
            wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
            engine = summary["wall_seconds"] - summary["torch_import_seconds"]  # start-up is measured apart
            # the pipe pair again right after: each graph is held against the pair runs on either side of it, so a
            # machine whose speed drifts within the round moves both sides alike
            after, after_cpu = _piped(clip, tmp / "piped.mkv")
            pair = (piped + after) / 2
            ratios[name] = bare / engine
            ratios[f"{name} / pipe pair"] = pair / engine
            print(f"overhead: {name:<30} {frames / engine:6.1f} fps ({engine:.2f} s in the engine, {wall:.2f} s "
                  f"with start-up, {cpu:.1f} CPU s, of them {summary['process_cpu_seconds']:.1f} in the engine's "
                  f"process over the run) -> ratio {bare / engine:.3f} (with start-up {bare / wall:.3f}); "
                  f"{pair / engine:.3f} of the pipe pair around it ({piped:.2f} s before, {after:.2f} s after, "
                  f"{after_cpu:.1f} CPU s)")
            piped = after
            busy = ", ".join(f"{n['id']} {n['busy_share']:.0%}" for n in summary["nodes"])
            print(f"overhead:   busy: {busy}; first frame after {summary['first_frame_seconds']:.2f} s")
    return ratios


def nodes(repeat: int = 5) -> None:
    """The work of the 6-node graph's nodes on one 1080p frame, without the engine or ffmpeg: colour, blend,
    colour and the writer's packing, on 8-bit samples (tables and integers) against the same nodes fed float32
    (widened first, narrowed by the packer), CPU milliseconds a frame on one thread, rounds alternated. The
    blend's three 8-bit paths: weight 0.5 (the bench graph's) is the rounding average in 8 bits, 0.25 16-bit
    integer arithmetic in 128ths, 0.3 the table of every pair."""
    import torch

    from diffusify.core.frame import Frame
    from diffusify.core.stream import StreamInfo
    from diffusify.io.pixels import PlanePacker
    from diffusify.ops.samples import widen
    from diffusify.processors.base import PlanContext
    from diffusify.processors.color import Color
    from diffusify.processors.compose import Blend
    from diffusify.runtime.tuning import tune_process

    tune_process()
    torch.set_num_threads(1)  # as the engine runs cheap nodes
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 1080, 1920), generator=g, dtype=torch.int32).to(torch.uint8)
    info = StreamInfo(width=1920, height=1080, channels=3)

    def node(cls, params, ports):
        p = cls.Params(**params)
        streams = {port: info for port in ports}
        return cls("n", p, inputs=streams, output=cls.infer_stream(p, streams, PlanContext()))

    warm, grade = node(Color, {"brightness": 0.001}, ["input"]), node(Color, {"contrast": 1.001}, ["input"])
    packer = PlanePacker(False)

    def chain(src, mix):
        one = Frame(0, Fraction(0), src)
        w = warm.push({"input": one})[0]
        m = mix.push({"a": w, "b": one})[0]
        return packer.pack(grade.push({"input": m})[0].data)

    results: dict[str, list[float]] = {}
    for weight in (0.5, 0.25, 0.3):
        mix = node(Blend, {"weight": weight}, ["a", "b"])
        for _ in range(repeat):
            for name, src in (("float32", None), ("native", x)):
                run = (lambda m=mix: chain(widen(x), m)) if src is None else (lambda m=mix: chain(x, m))
                run()
                c0 = time.process_time()
                for _ in range(10):
                    run()
                results.setdefault(f"{name} w{weight}", []).append((time.process_time() - c0) / 10 * 1000)
    for weight in (0.5, 0.25, 0.3):
        f, n = (statistics.median(results[f"{k} w{weight}"]) for k in ("float32", "native"))
        print(f"nodes: blend weight {weight}: float32 path {f:.1f} ms, native {n:.1f} ms a frame of CPU "
              f"-> {f / n:.2f}x less")


def memory() -> None:
    clip = make_clip("1080p_3000.mp4", width=1920, height=1080, frames=3000, audio=False)
    peaks = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        recipe = _recipe(tmp, f"""
            version: 1
            nodes:
              src: {{type: video.read, with: {{path: "{clip}"}}}}
              up:  {{type: resize, input: src, with: {{scale: 2, method: bilinear}}}}
              out: {{type: video.write, input: up, with: {{path: "{tmp / 'up.mkv'}", preset: ultrafast, crf: 28}}}}
        """)
        for n in (300, 3000):
            t0 = time.perf_counter()
            s = _run_cli(recipe, "--max-frames", str(n))
            peaks[n] = s["peak_ram_bytes"]
            print(f"memory: {n} frames 1080p -> 2160p: peak RSS {peaks[n] / 2**20:.0f} MiB "
                  f"({time.perf_counter() - t0:.0f} s, {s['fps']:.1f} fps)")
    print(f"memory: peak RSS ratio 3000/300 = {peaks[3000] / peaks[300]:.3f} (target <= 1.1)")


def overlap() -> None:
    # decode + encode must cost less than the 20 ms of compute for it to hide them: on a 2-core machine a
    # 720p x264 encode alone takes longer than that, so the clip is 640x360 (the bare ffmpeg time is printed)
    clip = make_clip("360p_300.mp4", width=640, height=360, frames=300)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), "-map", "0:v",
                        *CODEC, str(Path(d) / "bare.mkv")], check=True)
    print(f"overlap: bare ffmpeg decode->encode of the clip takes {time.perf_counter() - t0:.2f} s")
    plugin = Path(__file__).resolve().parent / "_slow_plugin.py"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        recipe = _recipe(tmp, f"""
            version: 1
            nodes:
              src:  {{type: video.read, with: {{path: "{clip}"}}}}
              work: {{type: bench.sleep, input: src, with: {{ms: 20}}}}
              out:  {{type: video.write, input: work, with: {{path: "{tmp / 'o.mkv'}", preset: veryfast, crf: 20}}}}
        """)
        code = (f"import sys; sys.path.insert(0, {str(plugin.parent)!r}); import _slow_plugin; "
                f"from diffusify import run; from diffusify.processors.registry import default_registry; "
                f"reg = default_registry().copy(); reg.add(_slow_plugin.Sleep); "
                f"import json; print(json.dumps(run({recipe!r}, registry=reg, overwrite=True)))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        s = json.loads(out.strip().splitlines()[-1])
    ideal = 300 * 0.020
    print(f"overlap: 300 frames x 20 ms = {ideal:.2f} s ideal; wall {s['wall_seconds']:.2f} s; "
          f"ratio {s['wall_seconds'] / ideal:.3f} (target <= 1.1)")


_PHASES = """
import json, sys, time
start = time.perf_counter()
marks = {}
def mark(name):
    marks[name] = time.perf_counter() - start
from diffusify.runtime.tuning import tune_process
from diffusify import api
mark("imports")
plan, v = api.plan(sys.argv[1], max_frames=1, overwrite=True)
mark("planned")
tune_process()
run = api.launch(plan, warnings=v.warnings)
launched = time.perf_counter() - start
summary = run.result()
if summary["torch_import_seconds"]:  # imported by the run, while its decoder and encoder start
    marks["torch imported"] = launched + summary["torch_import_seconds"]
marks["first frame"] = launched + summary["first_frame_seconds"]
mark("done")
print(json.dumps(marks))
"""


def _phases(recipe: str) -> dict[str, float]:
    """The steps of `diffusify run` timed inside one fresh interpreter (its start-up not included)."""
    out = subprocess.run([sys.executable, "-c", _PHASES, recipe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _colour(clip: Path, out: Path) -> str:
    """read -> colour -> write: the smallest graph that computes; a brightness change is a table made in numpy,
    so it runs without torch."""
    return _identity(clip, out, "type: color, with: {brightness: 0.001}")


def _gamma(clip: Path, out: Path) -> str:
    """read -> colour with a gamma -> write: the same node made to import torch (a gamma's table is made by the
    float path in torch)."""
    return _identity(clip, out, "type: color, with: {gamma: 1.001}")


def startup(repeat: int = 5) -> None:
    """The whole command for one 1080p frame against the ffmpeg pipe pair doing the same, rounds alternated: a
    transcode (read -> write), the smallest graph that computes (read -> colour -> write), both without torch,
    and the same colour node with a gamma, which imports torch; with where the command's time goes
    (interpreter, imports, validation and probing, torch, process starts, the first frame, finalising)."""
    clip = make_clip("1080p_300.mp4", width=1920, height=1080, frames=300)
    graphs = {"read -> write": _identity, "read -> colour -> write": _colour,
              "read -> colour with a gamma (imports torch) -> write": _gamma}
    ours: dict[str, list[float]] = {name: [] for name in graphs}
    pair, torch_import, validate = [], [], []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        recipes = {}
        for i, (name, graph) in enumerate(graphs.items()):
            recipes[name] = str(tmp / f"g{i}.yaml")
            Path(recipes[name]).write_text(textwrap.dedent(graph(clip, tmp / f"one{i}.mkv")))
        for _ in range(repeat):
            for name, recipe in recipes.items():
                t0 = time.perf_counter()
                _run_cli(recipe, "--max-frames", "1")
                ours[name].append(time.perf_counter() - t0)
            pair.append(_piped(clip, tmp / "pair.mkv", frames=1)[0])
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import torch"], check=True)
            torch_import.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "diffusify", "validate", recipes["read -> write"]], check=True,
                           capture_output=True)
            validate.append(time.perf_counter() - t0)
        phases = {name: [_phases(recipe) for _ in range(repeat)] for name, recipe in recipes.items()}
    med = statistics.median
    for name, times in ours.items():
        print(f"startup: one 1080p frame, {name}: the command {med(times):.2f} s (rounds "
              f"{', '.join(f'{t:.2f}' for t in times)}), the ffmpeg pipe pair {med(pair):.2f} s; "
              f"over the pipe pair {med(times) - med(pair):.2f} s (goal <= 2 s)")
    print(f"startup: for scale: python + import torch {med(torch_import):.2f} s; diffusify validate (imports, "
          f"YAML, probing; no torch) {med(validate):.2f} s")
    for name, runs in phases.items():
        steps = " -> ".join(f"{step} {med(p[step] for p in runs):.2f}" for step in runs[0])
        print(f"startup: {name}, the command's steps in one process (seconds since the interpreter started, "
              f"medians): {steps}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="?", default="all", choices=["overhead", "side-by-side", "memory", "overlap",
                                                                     "startup", "nodes", "against", "all"])
    parser.add_argument("other", nargs="?", help="for against: another checkout's folder")
    parser.add_argument("--device", default="cpu", help="devices of the overhead graph's nodes (cpu, cuda, auto)")
    parser.add_argument("--repeat", type=int, default=1, help="overhead rounds (median ratio reported)")
    args = parser.parse_args()
    for name in (["overhead", "memory", "overlap"] if args.which == "all" else [args.which]):
        if name == "overhead":
            overhead(args.device, args.repeat)
        elif name == "side-by-side":
            side_by_side(max(args.repeat, 2))
        elif name == "startup":
            startup(max(args.repeat, 3))
        elif name == "nodes":
            nodes(max(args.repeat, 3))
        elif name == "against":
            if not args.other:
                parser.error("against needs the other checkout's folder")
            against(args.other, max(args.repeat, 2))
        else:
            globals()[name]()
