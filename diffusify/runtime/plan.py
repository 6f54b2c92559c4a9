"""From a validated recipe to an executable plan: devices, replicas, queue budgets, memory estimate."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from diffusify.errors import UsageError
from diffusify.graph.stream import StreamInfo
from diffusify.processors.base import Processor
from diffusify.processors.registry import Registry, default_registry
from diffusify.spec.recipe import QueueBudget, Recipe
from diffusify.spec.validate import Validated


@dataclass
class NodePlan:
    """How one node runs.

    Attributes:
        id: node id. cls: processor class. params: validated parameters.
        inputs: port -> upstream node id. consumers: (node id, port) pairs fed by this node.
        devices: one device per replica. queue: budget of each of this node's input queues.
        input_streams / output: stream info. memory: estimated bytes (model + queued frames).
        output_device: where a CPU-bound source hands its frames over: its consumers' one device, else None.
    """

    id: str
    cls: type[Processor]
    params: Any
    inputs: dict[str, str]
    consumers: list[tuple[str, str]]
    devices: list[str]
    queue: QueueBudget
    input_streams: dict[str, StreamInfo]
    output: StreamInfo | None
    memory: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    output_device: str | None = None

    @property
    def replicas(self) -> int:
        return len(self.devices)


@dataclass
class Plan:
    """The executable plan of a recipe."""

    recipe: Recipe
    nodes: dict[str, NodePlan]
    order: list[str]
    total_frames: int | None
    memory: int

    def describe(self) -> list[str]:
        lines = [f"pipeline {self.recipe.name}: {len(self.nodes)} nodes, "
                 f"{'?' if self.total_frames is None else self.total_frames} frames, "
                 f"estimated memory {_human(self.memory)}"]
        for nid in self.order:
            n = self.nodes[nid]
            ins = ", ".join(f"{p}<-{r}" for p, r in n.inputs.items()) or "-"
            out = n.output.describe() if n.output else "(file)"
            devs = ",".join(n.devices) + (f" (frames to {n.output_device})" if n.output_device else "")
            lines.append(f"  {nid:<12} {n.cls.type_name:<18} in: {ins:<22} on {devs} x{n.replicas}  "
                         f"queue {n.queue.frames} frames/{_human(n.queue.bytes)}  -> {out}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.recipe.name,
            "total_frames": self.total_frames,
            "memory_estimate": self.memory,
            "nodes": [{
                "id": nid, "type": n.cls.type_name, "inputs": n.inputs, "devices": n.devices,
                "replicas": n.replicas, "output_device": n.output_device or n.devices[0], "queue": {"frames": n.queue.frames, "bytes": n.queue.bytes},
                "output": n.output.to_json() if n.output else None, "memory": n.memory,
            } for nid, n in ((i, self.nodes[i]) for i in self.order)],
        }


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def visible_devices() -> list[str]:
    """Every visible CUDA device, else the CPU."""
    try:
        import torch

        if torch.cuda.is_available():
            return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return ["cpu"]


def _expand(devices: list[str]) -> list[str]:
    out: list[str] = []
    for d in devices:
        if d == "auto":
            out.extend(visible_devices())
        elif d == "cuda":
            out.append("cuda:0")
        else:
            out.append(d)
    return list(dict.fromkeys(out)) or ["cpu"]


def _check_device(d: str, node: str) -> None:
    if d.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"node '{node}' asks for {d}, but no CUDA device is visible (use --device cpu)")
        idx = int(d.split(":")[1]) if ":" in d else 0
        if idx >= torch.cuda.device_count():
            raise UsageError(f"node '{node}' asks for {d}, but only {torch.cuda.device_count()} CUDA device(s) exist")
    if d == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise UsageError(f"node '{node}' asks for mps, which is not available here (use --device cpu)")


def build_plan(validated: Validated, *, registry: Registry | None = None, cli_devices: list[str] | None = None,
               overwrite: bool = False) -> Plan:
    """Turn a valid :class:`Validated` into a :class:`Plan`. Raises UsageError for what only shows at run time
    (a missing GPU, an output that exists without ``overwrite``, a processor that does not run yet)."""
    registry = registry or default_registry()
    recipe = validated.recipe
    assert recipe is not None and validated.ok
    default_devices = _expand(cli_devices or recipe.devices or ["auto"])
    nodes: dict[str, NodePlan] = {}
    for nid in validated.order:
        spec = recipe.nodes[nid]
        cls = registry.get(spec.type)
        if not cls.implemented:
            raise UsageError(f"node '{nid}': {spec.type} is not implemented in this version of diffusify yet "
                             "(it validates, but cannot run); remove it or choose another processor")
        if cls.resources.device == "cpu":
            pool = ["cpu"]
        else:
            pool = _expand(spec.devices) if spec.devices else default_devices
        for d in set(pool):
            _check_device(d, nid)
        devices = [pool[i % len(pool)] for i in range(spec.replicas)]
        nodes[nid] = NodePlan(id=nid, cls=cls, params=spec.params, inputs=dict(spec.inputs), consumers=[],
                              devices=devices, queue=spec.queue or recipe.queue,
                              input_streams=validated.input_streams.get(nid, {}),
                              output=validated.streams.get(nid))
    for nid, n in nodes.items():
        for port, ref in n.inputs.items():
            nodes[ref].consumers.append((nid, port))
    for n in nodes.values():
        if n.cls.is_source() and n.devices == ["cpu"]:
            targets = {d for c, _ in n.consumers for d in nodes[c].devices}
            if len(targets) == 1 and targets != {"cpu"}:
                n.output_device = targets.pop()

    sources = [nid for nid, n in nodes.items() if n.cls.type_name == "video.read"]
    for nid, n in nodes.items():
        _, writes = n.cls.paths(n.params)
        for path in writes:
            exists = os.path.isdir(path) and bool(os.listdir(path)) if n.cls.type_name == "image.write" \
                else os.path.exists(path)
            if exists and not (overwrite or getattr(n.params, "overwrite", False)):
                raise UsageError(f"node '{nid}': {path} exists; pass --overwrite to replace it")
        if n.cls.type_name == "video.write":
            ref = n.params.copy_streams_from
            if ref is None:
                ref = sources[0] if len(sources) == 1 else None
            elif ref == "none":
                ref = None
            n.options["copy_from"] = nodes[ref].params.path if ref else None
            n.options["copy_range"] = _copy_range(nodes[ref]) if ref else None
            stream = n.input_streams.get("input")
            n.options["use_timestamps"] = bool(stream and stream.vfr)
        n.options["overwrite"] = overwrite

    memory = 0
    for n in nodes.values():
        frame_bytes = max((s.frame_bytes for s in n.input_streams.values()), default=0)
        queued = sum(min(n.queue.frames * frame_bytes, n.queue.bytes) for _ in n.input_streams)
        model = n.cls.memory_estimate(n.params, n.input_streams, n.output) * n.replicas
        out_bytes = n.output.frame_bytes * n.replicas if n.output else 0
        n.memory = queued + model + out_bytes
        memory += n.memory
    totals = [n.input_streams["input"].frames for n in nodes.values() if n.cls.is_sink and "input" in n.input_streams]
    known = [t for t in totals if t is not None]
    return Plan(recipe=recipe, nodes=nodes, order=list(validated.order),
                total_frames=max(known) if known else None, memory=memory)


def _copy_range(source: NodePlan) -> tuple[Fraction, Fraction | None] | None:
    """Time range of the source that the run reads, to trim copied audio/subtitles to it."""
    from diffusify.io.probe import probe

    start = source.params.start
    frames = source.output.frames if source.output else None
    if start == 0 and (frames is None or (source.params.end is None and frames == _total(source))):
        return None
    info = probe(source.params.path)
    ts = info.timestamps
    fps = source.output.fps if source.output else Fraction(25)
    t0 = ts[start] if ts and start < len(ts) else Fraction(start) / fps
    end_index = None if frames is None else start + frames
    if end_index is None or (ts and end_index >= len(ts)):
        return (t0, None)
    t1 = ts[end_index] if ts else Fraction(end_index) / fps
    return (t0, t1)


def _total(source: NodePlan) -> int | None:
    from diffusify.io.probe import probe

    info = probe(source.params.path)
    return info.video.frames if info.video else None
