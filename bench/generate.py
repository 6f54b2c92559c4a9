"""generate.text2video figures, each against a baseline measured in the same invocation.

    python bench/generate.py [--threads 1]         # CPU: a tiny random Wan pipeline built in a temporary folder;
                                                   # the node (diffusify.run, discard sink) vs pipe(...) by hand,
                                                   # each timing in its own process (--threads 1 on a busy machine)
    python bench/generate.py --model DIR --device cuda [--steps 10] [--frames 33] [--width 832 --height 480]
                                                   # a local diffusers folder: seconds per step and peak GPU
                                                   # memory with offload none / model / group, and the node ratio

Nothing is downloaded: ``--model`` takes a folder (``diffusify weights pull wan2.1-t2v-1.3b`` fetches one into
huggingface_hub's cache; pass the snapshot folder it prints).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffusify import run, tune_process  # noqa: E402

tune_process()  # as the command line does


def hand(model: str, device: str, a: argparse.Namespace, offload: str = "none") -> tuple[float, int]:
    """The baseline: from_pretrained and one pipe(...) call decoding to tensors. Returns (seconds, steps run)."""
    import diffusers

    t0 = time.perf_counter()
    pipe = diffusers.DiffusionPipeline.from_pretrained(model, **_dtype(device))
    pipe.set_progress_bar_config(disable=True)
    _offload(pipe, offload, device)
    pipe(prompt=a.prompt, num_frames=a.frames, width=a.width, height=a.height, num_inference_steps=a.steps,
         guidance_scale=5.0, generator=torch.Generator("cpu").manual_seed(0), output_type="pt",
         **({"max_sequence_length": a.max_seq} if a.max_seq else {}))
    _sync(device)
    return time.perf_counter() - t0, a.steps


def node(model: str, device: str, a: argparse.Namespace, offload: str = "none") -> float:
    """The same settings through the engine: generate.text2video -> discard. Returns seconds."""
    seq = f", max_sequence_length: {a.max_seq}" if a.max_seq else ""
    text = f"""
version: 1
name: bench_generate
nodes:
  gen: {{type: generate.text2video, with: {{model: "{model}", prompt: "{a.prompt}", num_frames: {a.frames},
         width: {a.width}, height: {a.height}, steps: {a.steps}, guidance: 5.0, seed: 0, offload: {offload}{seq}}}}}
  out: {{type: discard, input: gen}}
"""
    t0 = time.perf_counter()
    run(text, devices=[device])
    _sync(device)
    return time.perf_counter() - t0


def _dtype(device: str) -> dict[str, object]:
    return {"torch_dtype": torch.bfloat16} if device.startswith("cuda") else {}


def _offload(pipe: object, offload: str, device: str) -> None:
    if offload == "none":
        pipe.to(device)  # type: ignore[attr-defined]
    elif offload == "model":
        pipe.enable_model_cpu_offload(device=device)  # type: ignore[attr-defined]
    else:
        pipe.enable_group_offload(onload_device=torch.device(device), offload_device=torch.device("cpu"),  # type: ignore[attr-defined]
                                  offload_type="block_level", num_blocks_per_group=1)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def child(kind: str, model: str, a: argparse.Namespace) -> float:
    """One timing in a fresh process (after one untimed warm-up run there): every thread that ran torch keeps its
    own OpenMP team, and in one long-lived process the finished rounds' teams slow the next round by several
    times on 2 cores, whichever side runs next."""
    import subprocess

    cmd = [sys.executable, __file__, "--child", kind, "--model", model, "--device", a.device, "--frames",
           str(a.frames), "--width", str(a.width), "--height", str(a.height), "--steps", str(a.steps),
           "--prompt", a.prompt] + (["--max-seq", str(a.max_seq)] if a.max_seq else [])
    env = dict(os.environ)
    if a.threads:
        # OpenMP teams of 2 threads on 2 cores that other processes also use collapse at every barrier (rounds
        # 10x slower, by chance): one thread per process gives figures that mean something on a shared machine
        env["OMP_NUM_THREADS"] = str(a.threads)
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return float(done.stdout.strip().splitlines()[-1])


def ratio(model: str, device: str, a: argparse.Namespace) -> None:
    """Alternating rounds, each in its own process, so drift on a shared machine hits both alike."""
    hands, nodes = [], []
    for _ in range(a.rounds):
        hands.append(child("hand", model, a))
        nodes.append(child("node", model, a))
    h, n = statistics.median(hands), statistics.median(nodes)
    print(f"node vs pipe(...): {a.frames} frames {a.width}x{a.height}, {a.steps} steps, {a.rounds} rounds on {device}")
    print(f"  pipe(...) by hand  median {h:.3f} s  best {min(hands):.3f} s  ({', '.join(f'{x:.3f}' for x in hands)})")
    print(f"  generate node      median {n:.3f} s  best {min(nodes):.3f} s  ({', '.join(f'{x:.3f}' for x in nodes)})")
    # best of N is the figure that other processes on a shared machine disturb least
    print(f"  ratio (hand / node, >= 0.95 wanted): best {min(hands) / min(nodes):.3f}, median {h / n:.3f}")


def gpu_figures(model: str, device: str, a: argparse.Namespace) -> None:
    """Seconds per denoising step and peak GPU memory, per offload mode (one pipe(...) call each)."""
    for offload in ("none", "model", "group"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            seconds, steps = hand(model, device, a, offload)
            t0 = time.perf_counter()
            hand(model, device, a, offload)
            seconds = time.perf_counter() - t0
        except torch.OutOfMemoryError:
            print(f"  offload {offload:<6} out of memory")
            continue
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"  offload {offload:<6} {seconds / steps:7.3f} s/step (load and decode included)  "
              f"peak {peak:6.2f} GiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="A local diffusers folder (default: a tiny random Wan built here).")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int)
    ap.add_argument("--width", type=int)
    ap.add_argument("--height", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the timed processes (default: the machine's).")
    ap.add_argument("--prompt", default="a red fox runs through snow")
    ap.add_argument("--child", choices=["hand", "node"], help=argparse.SUPPRESS)
    ap.add_argument("--max-seq", dest="max_seq", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:  # one timing for ratio(): warm up, then time one run
        run_once = (lambda: hand(a.model, a.device, a)[0]) if a.child == "hand" else (lambda: node(a.model, a.device, a))
        run_once()
        print(run_once())
        return
    tiny = a.model is None
    a.frames = a.frames or 33
    a.width = a.width or (128 if tiny else 832)
    a.height = a.height or (128 if tiny else 480)
    a.steps = a.steps or (8 if tiny else 10)
    a.max_seq = 16 if tiny else a.max_seq
    with tempfile.TemporaryDirectory() as tmp:
        model = a.model
        if tiny:
            from tests._diffusers_tiny import build_wan

            a.prompt = "a cat runs in the park"
            model = str(build_wan(Path(tmp) / "wan"))
        ratio(model, a.device, a)
        if a.device.startswith("cuda"):
            gpu_figures(model, a.device, a)


if __name__ == "__main__":
    main()
