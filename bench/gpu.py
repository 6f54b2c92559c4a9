"""GPU figures of the bundled upscaler (realesr-animevideov3-x2) at 1080p input: the model stage alone, then end to
end with decoding and the best encoder, and optionally a profile of where the time goes. Needs one CUDA GPU.

    python bench/gpu.py                  # the tables: about 4-5 minutes on an H100 (estimated: the torch.compile
                                         # row compiles for about a minute, the 1080p clip is made once)
    python bench/gpu.py --profile        # then torch.profiler over the steady state of the fastest eager row
    python bench/gpu.py --smoke          # every row tiny on the CPU (64x64, 3 frames): checks this script only

Options: ``--frames N`` (default 150 per row), ``--device cuda:0``, ``--skip-compile``, ``--profile-frames N``.

What it prints (no figures here: they are this machine's to measure). First a header line: the GPU's name, torch,
frames per row, input and output size. Then the model stage: a ``pattern`` source drawn on the GPU ->
``upscale.spandrel`` (``tile: none``) -> the ``discard`` sink on the GPU, one row per configuration:

    config                          fps  vs fp32   peak MiB  setup s  notes

- ``config``: fp32; fp16; fp16 channels_last; fp16 channels_last with batch 2, 4 and auto; with 2 replicas (each on
  a CUDA stream of its own), batch 1 and 2; with torch.compile.
- ``fps``: steady state, from the first frame at the sink to the last ((frames - 1) / that time: model loading,
  autotuning, warm-up and compiling excluded; with batch b the first b frames arrive together, a bias under
  b/frames).
- ``vs fp32``: the ratio to the first row.
- ``peak MiB``: the run's peak GPU memory allocated by torch on the device (the run summary's
  ``peak_gpu_bytes``; the counters are reset before each row).
- ``setup s``: the node's setup time (load, layout timing, batch probe, warm-up, compile) of its slowest replica.
- ``notes``: the node's own line from the run summary (precision, layout, the batch it chose and why, cuDNN
  autotuning, compile time).

A line then names the fastest eager row against the goal (>= 150 fps on one H100/H200). End to end: a real 1080p
H.264 clip (BT.709, made once with the bundled ffmpeg under bench/.cache): decoding alone into the GPU (ffmpeg pipe,
and NVDEC when torchcodec with CUDA is installed), then decode -> the fastest eager config -> ``video.write`` with
the best encoder ``codec: auto`` finds here (NVENC preset p4 where it opens; else libx264 preset fast on all cores,
as on the H100/H200, which have no NVENC), with the ffmpeg pipe and with NVDEC. Each row: fps, peak MiB, and the
nodes' notes (which decoder and encoder ran, and why). A row that cannot run says why on its line.

With ``--profile``: the fastest eager config again over ``--profile-frames`` frames, profiled from the moment every
node is set up and frames flow: the top GPU kernels by total time, the top CPU ops by self time (all threads), and
the GPU timeline's shares: convolutions (cuDNN), other kernels (activations, padding, resampling, casts,
narrowing), copies (host <-> device) and idle (no kernel or copy running), over the profiled span.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MODEL = ROOT / "weights" / "realesr-animevideov3-x2.safetensors"
GOAL_FPS = 150

# (label, upscale.spandrel parameters, replicas)
MODEL_ROWS: list[tuple[str, dict[str, Any], int]] = [
    ("fp32", {"precision": "fp32", "channels_last": False}, 1),
    ("fp16", {"precision": "fp16", "channels_last": False}, 1),
    ("fp16 channels_last", {"precision": "fp16", "channels_last": True}, 1),
    ("fp16 cl batch 2", {"precision": "fp16", "channels_last": True, "batch": 2}, 1),
    ("fp16 cl batch 4", {"precision": "fp16", "channels_last": True, "batch": 4}, 1),
    ("fp16 cl batch auto", {"precision": "fp16", "channels_last": True, "batch": "auto"}, 1),
    ("fp16 cl 2 replicas", {"precision": "fp16", "channels_last": True}, 2),
    ("fp16 cl batch 2 x2 replicas", {"precision": "fp16", "channels_last": True, "batch": 2}, 2),
    ("fp16 cl compile", {"precision": "fp16", "channels_last": True, "compile": True}, 1),
]


def _with(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in params.items())


def _upscale(params: dict[str, Any], replicas: int) -> str:
    return (f'{{type: upscale.spandrel, input: src, with: {{model: "{MODEL}", tile: none, {_with(params)}}}, '
            f"replicas: {replicas}}}")


def model_recipe(size: tuple[int, int], frames: int, device: str, params: dict[str, Any], replicas: int) -> str:
    w, h = size
    return f"""
version: 1
devices: ["{device}"]
nodes:
  src: {{type: pattern, with: {{kind: moving, width: {w}, height: {h}, frames: {frames}}}}}
  up:  {_upscale(params, replicas)}
  out: {{type: discard, input: up}}
"""


def e2e_recipe(clip: Path, out: Path | None, device: str, decode: str, params: dict[str, Any] | None,
               replicas: int, codec: str, preset: str | None) -> str:
    nodes = f'  src: {{type: video.read, with: {{path: "{clip}", decode: {decode}}}}}\n'
    last = "src"
    if params is not None:
        nodes += f"  up:  {_upscale(params, replicas)}\n"
        last = "up"
    if out is None:
        nodes += f"  out: {{type: discard, input: {last}}}\n"
    else:
        extra = f", preset: {preset}" if preset else ""
        nodes += (f'  out: {{type: video.write, input: {last}, with: {{path: "{out}", codec: {codec}{extra}, '
                  "copy_streams_from: none}}\n")
    return f'version: 1\ndevices: ["{device}"]\nnodes:\n{nodes}'


def steady_fps(s: dict[str, Any]) -> float:
    """Frames per second from the first frame at the sink to the last (start-up excluded)."""
    steady = s["wall_seconds"] - (s["first_frame_seconds"] or 0.0)
    return (s["frames"] - 1) / steady if steady > 0 and s["frames"] > 1 else s["fps"]


def _fresh(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(s: dict[str, Any], device: str) -> str:
    key = device if ":" in device else f"{device}:0"
    peak = (s.get("peak_gpu_bytes") or {}).get(key)
    return "-" if peak is None else f"{peak / 2**20:.0f}"


def _notes(s: dict[str, Any], *ids: str) -> str:
    return "; ".join(f"{n['id']}: {note}" if len(ids) > 1 else note
                     for n in s["nodes"] if n["id"] in ids for note in n.get("notes", []))


def _row(label: str, run_it: Any, device: str, base: float | None, ids: tuple[str, ...]) -> float | None:
    from diffusify import run

    _fresh(device)
    try:
        s = run_it(run)
    except Exception as e:  # report the row, keep the table going
        print(f"{label:<30} {'failed':>8}  {str(e).splitlines()[0][:160]}", flush=True)
        return None
    fps = steady_fps(s)
    ratio = f"{fps / base:7.2f}x" if base else f"{'':>8}"
    node = next((n for n in s["nodes"] if n["id"] == ids[0]), None)
    setup = node["setup_seconds"] if node else 0.0
    print(f"{label:<30} {fps:8.2f} {ratio} {_peak_mib(s, device):>9} {setup:8.1f}  {_notes(s, *ids)}", flush=True)
    return fps


def model_stage(args: argparse.Namespace, size: tuple[int, int]) -> list[tuple[str, dict[str, Any], int, float]]:
    print("\nmodel stage: pattern on the device -> upscale.spandrel -> discard")
    print(f"{'config':<30} {'fps':>8} {'vs fp32':>8} {'peak MiB':>9} {'setup s':>8}  notes")
    results = []
    base: float | None = None
    for label, params, replicas in MODEL_ROWS:
        if params.get("compile") and (args.skip_compile or args.smoke):
            print(f"{label:<30} {'skipped':>8}  ({'--smoke' if args.smoke else '--skip-compile'})")
            continue
        recipe = model_recipe(size, args.frames, args.device, params, replicas)
        fps = _row(label, lambda run, r=recipe: run(r), args.device, base, ("up",))
        if fps is not None:
            base = base or fps
            results.append((label, params, replicas, fps))
    return results


def end_to_end(args: argparse.Namespace, clip: Path, best: tuple[str, dict[str, Any], int, float] | None) -> None:
    from diffusify.io.codecs import resolve_codec

    codec, note = resolve_codec("auto", 8)
    preset = "p4" if codec.endswith("_nvenc") else "fast"
    print(f"\nend to end: {clip.name} -> ... ; encoder {codec} preset {preset} ({note})")
    print(f"{'pipeline':<30} {'fps':>8} {'':>8} {'peak MiB':>9} {'setup s':>8}  notes")
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out.mp4"
        for decode in ("cpu", "nvdec"):
            recipe = e2e_recipe(clip, None, args.device, decode, None, 1, codec, preset)
            _row(f"decode {decode} -> discard", lambda run, r=recipe: run(r), args.device, None, ("src", "out"))
        if best is None:
            print("no model row ran: no full pipeline to time")
            return
        label, params, replicas, _ = best
        print(f"best = the fastest eager model row: {label}")
        for decode in ("cpu", "nvdec"):
            recipe = e2e_recipe(clip, out, args.device, decode, params, replicas, codec, preset)
            _row(f"{decode} -> best -> {codec}", lambda run, r=recipe: run(r, overwrite=True),
                 args.device, None, ("up", "src", "out"))


# ---- the profile ---------------------------------------------------------------------------------------------

def _is_conv(name: str) -> bool:
    lowered = name.lower()
    return any(k in lowered for k in ("conv", "cudnn", "implicit_gemm", "xmma", "gemm", "winograd", "fprop",
                                      "sm80_", "sm86_", "sm89_", "sm90_", "sm100_"))


def shares(events: list[tuple[str, str, int, int]]) -> dict[str, float]:
    """The GPU timeline's shares from ``(kind, name, start_ns, end_ns)`` events (kind ``kernel``, ``copy`` or
    ``other``): convolution kernels, other kernels, copies, each as summed time over the span from the first event's
    start to the last one's end, and idle as the part of that span no event covers (overlapping events across
    streams count once there; the three busy shares may then add up to more than the busy time)."""
    if not events:
        return {}
    start = min(e[2] for e in events)
    end = max(e[3] for e in events)
    span = max(1, end - start)
    total = {"convolutions": 0, "other kernels": 0, "copies": 0}
    for kind, name, a, b in events:
        key = "copies" if kind == "copy" else ("convolutions" if kind == "kernel" and _is_conv(name)
                                               else "other kernels")
        total[key] += b - a
    covered, reach = 0, start
    for _, _, a, b in sorted(events, key=lambda e: e[2]):
        if b > reach:
            covered += b - max(a, reach)
            reach = b
    out = {k: v / span for k, v in total.items()}
    out["idle"] = 1 - covered / span
    out["span_s"] = span / 1e9
    return out


def _gpu_events(prof: Any) -> list[tuple[str, str, int, int]]:
    """``(kind, name, start_ns, end_ns)`` of every device activity the profiler recorded."""
    from torch.autograd import DeviceType

    out = []
    for e in prof.profiler.kineto_results.events():
        if e.device_type() == DeviceType.CPU:
            continue
        activity = str(e.activity_type()).lower()
        name = e.name()
        if "memcpy" in activity or name.startswith("Memcpy"):
            kind = "copy"
        elif "kernel" in activity:
            kind = "kernel"
        else:
            kind = "other"
        out.append((kind, name, e.start_ns(), e.start_ns() + e.duration_ns()))
    return out


def profile(args: argparse.Namespace, size: tuple[int, int], best: tuple[str, dict[str, Any], int, float]) -> None:
    import torch
    from torch.profiler import ProfilerActivity

    import diffusify
    from diffusify.runtime.engine import Engine

    label, params, replicas, _ = best
    print(f"\nprofile: {label}, {args.profile_frames} frames, from the moment every node is set up and frames flow")
    gpu = args.device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    options: dict[str, Any] = {}
    try:
        from torch.profiler import _ExperimentalConfig

        options["experimental_config"] = _ExperimentalConfig(profile_all_threads=True)
    except (ImportError, TypeError):
        pass
    prof = torch.profiler.profile(activities=activities, **options)
    started: list[float] = []

    def hook(*, event: str, **fields: Any) -> None:
        if event == "progress" and not started and fields["frames"] > 0 and all(n["ready"] for n in fields["nodes"]):
            prof.start()
            started.append(time.perf_counter())

    _fresh(args.device)
    p, _ = diffusify.plan(model_recipe(size, args.profile_frames, args.device, params, replicas))
    Engine(p, hooks=[hook], progress_interval=0.05).run()
    if not started:
        print("the run ended before the profiler started: raise --profile-frames")
        return
    prof.stop()
    print(f"profiled {time.perf_counter() - started[0]:.2f} s")
    averages = prof.key_averages()
    if gpu:
        for key in ("self_device_time_total", "self_cuda_time_total"):
            try:
                print(averages.table(sort_by=key, row_limit=12))
                break
            except (AttributeError, KeyError, ValueError):
                continue
    print(averages.table(sort_by="self_cpu_time_total", row_limit=12))
    if not gpu:
        print("GPU shares: no GPU activity on the CPU")
        return
    parts = shares(_gpu_events(prof))
    if not parts:
        print("GPU shares: the profiler recorded no GPU activity")
        return
    print(f"GPU timeline over {parts.pop('span_s'):.2f} s: "
          + ", ".join(f"{k} {100 * v:.1f}%" for k, v in parts.items()))


def _check_shares() -> None:
    """The share arithmetic on a made-up timeline (for --smoke: the CPU has no GPU timeline to feed it)."""
    got = shares([("kernel", "sm90_xmma_fprop", 0, 40), ("kernel", "elementwise", 40, 60),
                  ("copy", "Memcpy DtoH", 50, 70), ("kernel", "sm90_xmma_fprop", 80, 100)])
    want = {"convolutions": 0.6, "other kernels": 0.2, "copies": 0.2, "idle": 0.1}
    assert all(abs(got[k] - v) < 1e-9 for k, v in want.items()), got
    print(f"GPU share arithmetic checked on a made-up timeline: {want}")


# ---- main ----------------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description="GPU figures of the bundled upscaler at 1080p input (see the module "
                                             "docstring for what each column means).")
    ap.add_argument("--frames", type=int, default=150, help="frames per row (default 150)")
    ap.add_argument("--device", default="cuda:0", help="the CUDA device (default cuda:0)")
    ap.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile row (about a minute)")
    ap.add_argument("--profile", action="store_true", help="profile the fastest eager row after the tables")
    ap.add_argument("--profile-frames", type=int, default=300, help="frames of the profiled run (default 300)")
    ap.add_argument("--smoke", action="store_true", help="every row tiny on the CPU: checks the script, no figures")
    args = ap.parse_args()

    from diffusify import tune_process

    tune_process()  # as the command line does: these figures are the engine's as `diffusify run` runs it
    import torch
    from _clips import make_clip

    if args.smoke:
        args.device, args.frames, args.profile, args.profile_frames = "cpu", 3, True, 12
        size = (64, 64)
        print(f"smoke run on the CPU ({size[0]}x{size[1]}, {args.frames} frames per row): no figure here means "
              "anything")
        _check_shares()
    else:
        if not torch.cuda.is_available():
            raise SystemExit("bench/gpu.py needs a CUDA GPU (python bench/gpu.py --smoke checks the script on a CPU)")
        size = (1920, 1080)
        print(f"GPU: {torch.cuda.get_device_name(args.device)}, torch {torch.__version__}, {args.frames} frames per "
              f"row, {size[0]}x{size[1]} input -> {2 * size[0]}x{2 * size[1]}")
    t_all = time.perf_counter()
    rows = model_stage(args, size)
    eager = [r for r in rows if not r[1].get("compile")]
    best = max(eager, key=lambda r: r[3]) if eager else None
    if best is not None:
        print(f"fastest eager row: {best[0]}, {best[3]:.1f} fps (goal for the model stage: >= {GOAL_FPS} fps)")
    frames = max(args.frames, 2)
    name = f"gpu_{size[1]}p_{frames}.mp4" if not args.smoke else f"gpu_smoke_{size[0]}_{frames}.mp4"
    clip = make_clip(name, width=size[0], height=size[1], frames=frames, audio=False)
    end_to_end(args, clip, best)
    if args.profile and best is not None:
        try:
            profile(args, size, best)
        except Exception as e:  # a profiler that cannot run here must not cost the tables above
            print(f"profile failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
