"""From a validated graph to an executable plan: devices, replicas, queue budgets, memory estimate and fit."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from diffusify.core.errors import UsageError
from diffusify.core.stream import StreamInfo
from diffusify.graph.build import Graph
from diffusify.graph.validate import Validated
from diffusify.processors.base import Processor, RunOptions
from diffusify.processors.registry import Registry
from diffusify.recipe.model import QueueBudget, Recipe


@dataclass
class NodePlan:
    """How one node runs.

    Attributes:
        id: node id. cls: processor class. params: validated parameters.
        inputs: port -> upstream node id. consumers: (node id, port) pairs fed by this node.
        devices: one device per replica. queue: budget of each of this node's input queues.
        input_streams / output: stream info. memory: estimated bytes (model + queued frames).
        gpu_memory: estimated GPU bytes of one replica when placed on a GPU.
        refs: streams of the nodes its parameters name (see ``Processor.node_refs``).
        output_device: where a CPU-bound source hands its frames over: its consumers' one device, else None.
        widen_output: the node widens its native samples to float32 itself, because two or more places
            downstream would each widen them (see :func:`_plan_widening`).
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
    gpu_memory: int = 0
    refs: dict[str, StreamInfo | None] = field(default_factory=dict)
    output_device: str | None = None
    widen_output: bool = False

    @property
    def replicas(self) -> int:
        return len(self.devices)

    @property
    def torch_free(self) -> bool:
        """The node makes no tensors and takes none from torch-free nodes (see :meth:`Processor.torch_free`)."""
        return self.cls.torch_free(self.params, device=self.output_device or self.devices[0],
                                   widen_output=self.widen_output, inputs=self.input_streams)


@dataclass
class Plan:
    """The executable plan of a recipe: what every executor runs.

    Attributes:
        recipe: the recipe. graph: its typed graph. nodes: node id -> how it runs, in topological order.
        total_frames: frames the sinks will get, when known. memory: estimated bytes in all.
        options: run options handed to every processor (overwrite, the segment).
        existing: (node, path) of outputs that exist already (a dry run lists them; a run refuses them unless
            overwrite is set).
    """

    recipe: Recipe
    nodes: dict[str, NodePlan]
    order: list[str]
    total_frames: int | None
    memory: int
    graph: Graph | None = None
    options: RunOptions = field(default_factory=RunOptions)
    existing: list[tuple[str, str]] = field(default_factory=list)

    @property
    def torch_nodes(self) -> list[str]:
        """The nodes that make or take torch tensors, in order (see :meth:`Processor.torch_free`)."""
        return [nid for nid in self.order if not self.nodes[nid].torch_free]

    @property
    def needs_torch(self) -> bool:
        """Whether any node makes or takes torch tensors. A plan that only decodes on the CPU, does cheap work
        there and writes (a transcode, a trim, a colour grade) carries numpy samples and never imports torch."""
        return bool(self.torch_nodes)

    def processors(self, nid: str) -> list[Processor]:
        """One processor instance per replica of node ``nid``, given its device and the run options."""
        n = self.nodes[nid]
        return [n.cls(nid, n.params, inputs=n.input_streams, output=n.output, device=d,
                      output_device=n.output_device, options=self.options, refs=n.refs,
                      widen_output=n.widen_output) for d in n.devices]

    def describe(self) -> list[str]:
        torch_nodes = self.torch_nodes
        lines = [f"pipeline {self.recipe.name}: {len(self.nodes)} nodes, "
                 f"{'?' if self.total_frames is None else self.total_frames} frames, "
                 f"estimated memory {_human(self.memory)}, "
                 + (f"imports torch for {', '.join(torch_nodes)}" if torch_nodes else "runs without torch")]
        for nid in self.order:
            n = self.nodes[nid]
            ins = ", ".join(f"{p}<-{r}" for p, r in n.inputs.items()) or "-"
            out = n.output.describe() if n.output else (
                n.cls.describe_output(n.params, n.input_streams, n.refs) or "(file)")
            devs = ",".join(n.devices) + (f" (frames to {n.output_device})" if n.output_device else "")
            lines.append(f"  {nid:<12} {n.cls.type_name:<18} in: {ins:<22} on {devs} x{n.replicas}  "
                         f"queue {n.queue.frames} frames/{_human(n.queue.bytes)}  -> {out}")
        for nid, path in self.existing:
            lines.append(f"  note: {path} (node '{nid}') exists; a run needs --overwrite to replace it")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.recipe.name,
            "total_frames": self.total_frames,
            "memory_estimate": self.memory,
            "needs_torch": self.needs_torch,
            "segment": None if self.options.segment is None else [self.options.segment.start,
                                                                   self.options.segment.end],
            "nodes": [{
                "id": nid, "type": n.cls.type_name, "inputs": n.inputs, "devices": n.devices,
                "replicas": n.replicas, "output_device": n.output_device or n.devices[0], "queue": {"frames": n.queue.frames, "bytes": n.queue.bytes},
                "output": n.output.to_json() if n.output else None, "memory": n.memory,
                "writes": n.cls.describe_output(n.params, n.input_streams, n.refs) or None,
                "gpu_memory": n.gpu_memory, "torch_free": n.torch_free,
            } for nid, n in ((i, self.nodes[i]) for i in self.order)],
        }


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def visible_devices() -> list[str]:
    """Every visible CUDA device, else the CPU. A Linux machine without NVIDIA device nodes has no CUDA device:
    then the answer comes without importing torch (a dry run of a CPU machine's recipe never imports it)."""
    if not _may_have_cuda():
        return ["cpu"]
    try:
        import torch

        if torch.cuda.is_available():
            return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return ["cpu"]


def _may_have_cuda() -> bool:
    """False only where CUDA certainly cannot run: Linux with no NVIDIA device node (``/dev/nvidia*``, or WSL's
    ``/dev/dxg``) or with ``CUDA_VISIBLE_DEVICES`` empty."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None and not os.environ["CUDA_VISIBLE_DEVICES"].strip():
        return False
    if not sys.platform.startswith("linux"):
        return True
    return os.path.exists("/dev/dxg") or any(n.startswith("nvidia") for n in os.listdir("/dev"))


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
            raise UsageError(f"node '{node}' asks for {d}, but no CUDA device is visible (use --device cpu, or devices=['cpu'] in the library)")
        idx = int(d.split(":")[1]) if ":" in d else 0
        if idx >= torch.cuda.device_count():
            raise UsageError(f"node '{node}' asks for {d}, but only {torch.cuda.device_count()} CUDA device(s) exist")
    if d == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise UsageError(f"node '{node}' asks for mps, which is not available here (use --device cpu, or devices=['cpu'] in the library)")


def _free_gpu_memory(device: str) -> int | None:
    try:
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    except Exception:  # noqa: BLE001 - no CUDA, or a device that cannot be asked: skip the check
        return None


def _place(pool: list[str], replicas: int, need: int, load: dict[str, int], count: dict[str, int]) -> list[str]:
    """Each replica on the least-loaded device of ``pool`` (estimated GPU bytes, then replicas placed there)."""
    out = []
    for _ in range(replicas):
        d = min(pool, key=lambda x: (load.get(x, 0), count.get(x, 0), pool.index(x)))
        out.append(d)
        load[d] = load.get(d, 0) + (need if d.startswith("cuda") else 0)
        count[d] = count.get(d, 0) + 1
    return out


def check_fit(nodes: dict[str, NodePlan]) -> list[str]:
    """Every GPU shortfall of a placement, before anything loads: estimated memory against what each device
    has free, and exclusive nodes that share a device. A CPU-only plan has none."""
    by_device: dict[str, list[tuple[NodePlan, int]]] = {}
    for n in nodes.values():
        for d in n.devices:
            if d.startswith("cuda"):
                by_device.setdefault(d, []).append((n, n.gpu_memory))
    problems = []
    for d, placed in sorted(by_device.items()):
        for n, _ in placed:
            others = {m.id for m, _ in placed if m.id != n.id and m.cls.resources.heavy}
            if n.cls.resources.exclusive and others:
                problems.append(f"node '{n.id}' ({n.cls.type_name}) needs {d} to itself, but "
                                f"{', '.join(sorted(others))} also run there; give them other devices")
        need = sum(b for _, b in placed)
        free = _free_gpu_memory(d)
        if free is not None and need > free:
            parts = ", ".join(f"{n.id} {_human(b)}" for n, b in placed if b)
            problems.append(f"{d}: the nodes placed there need about {_human(need)} ({parts}) but {_human(free)} "
                            "is free; spread them over more devices (--device), lower tile/batch/replicas, or "
                            "use a processor's offload option")
    return problems


def _plan_widening(nodes: dict[str, NodePlan]) -> None:
    """Where native samples become float32: at each consumer that computes (the default), unless two or more
    places below a node would widen its frames, each on its own; then that node widens them once itself.

    Counted from the sinks up (``nodes`` is in topological order): a consumer that computes widens once; a native
    consumer (a crop, a stack) passes its frames on, so it counts for the widenings below it, or for one when it
    widens itself; native sinks widen nothing. A decoder feeding a writer (and a crop) stays native all the
    way; a decoder feeding two filters widens once, in its reader, as a fused pass.
    """
    below: dict[str, int] = {}
    for nid in reversed(list(nodes)):
        n = nodes[nid]
        count = 0
        for consumer, _port in n.consumers:
            c = nodes[consumer]
            if not c.cls.native_for(c.params):
                count += 1
            elif not c.cls.is_sink:
                count += 1 if c.widen_output else below[consumer]
        below[nid] = count
        n.widen_output = count >= 2 and (n.cls.native_for(n.params) or n.cls.is_source())


def build_plan(validated: Validated, *, registry: Registry | None = None, cli_devices: list[str] | None = None,
               overwrite: bool = False, options: RunOptions | None = None, check_outputs: bool = True) -> Plan:
    """Turn a valid :class:`Validated` into a :class:`Plan`. Raises UsageError for what only shows at run time
    (a missing GPU, an output that exists without ``overwrite``, a processor that does not run yet, nodes that
    do not fit on their GPUs)."""
    recipe, graph = validated.recipe, validated.graph
    assert recipe is not None and graph is not None and validated.ok
    options = options or RunOptions(overwrite=overwrite)
    default_devices = _expand(cli_devices or recipe.devices or ["auto"])
    nodes: dict[str, NodePlan] = {}
    load: dict[str, int] = {}
    count: dict[str, int] = {}
    for g in graph:
        cls = g.cls
        missing = cls.missing_modules(g.params)
        if missing:
            raise UsageError(f"node '{g.id}': {cls.type_name} needs {', '.join(missing)}, which come with the "
                             f"'{cls.extra}' extra: pip install 'diffusify[{cls.extra}]'")
        if not cls.implemented:
            raise UsageError(f"node '{g.id}': {cls.type_name} is not implemented in this version of diffusify yet "
                             "(it validates, but cannot run); remove it or choose another processor")
        pool = ["cpu"] if cls.resources.device == "cpu" else (_expand(g.devices) if g.devices else default_devices)
        for d in dict.fromkeys(pool):
            _check_device(d, g.id)
        need = cls.gpu_memory(g.params, g.input_streams, g.output) if cls.resources.heavy else 0
        devices = _place(pool, g.replicas, need, load, count)
        nodes[g.id] = NodePlan(id=g.id, cls=cls, params=g.params, inputs=dict(g.inputs),
                               consumers=list(g.consumers), devices=devices, queue=g.queue or recipe.queue,
                               input_streams=dict(g.input_streams), output=g.output, gpu_memory=need,
                               refs=g.refs(graph))
    for n in nodes.values():
        if n.cls.is_source() and n.devices == ["cpu"]:
            targets = {d for c, _ in n.consumers for d in nodes[c].devices}
            if len(targets) == 1 and targets != {"cpu"}:
                n.output_device = targets.pop()

    _plan_widening(nodes)
    existing = [] if options.overwrite else [(n.id, p) for n in nodes.values() for p in n.cls.existing_outputs(n.params)]
    if existing and check_outputs:
        listed = "; ".join(f"node '{nid}': {p}" for nid, p in existing)
        raise UsageError(f"{listed} {'exists' if len(existing) == 1 else 'exist'}; pass --overwrite "
                         f"(overwrite=True) to replace {'it' if len(existing) == 1 else 'them'}")
    shortfalls = check_fit(nodes)
    if shortfalls:
        raise UsageError("; ".join(shortfalls))

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
    return Plan(recipe=recipe, nodes=nodes, order=list(nodes), total_frames=max(known) if known else None,
                memory=memory, graph=graph, options=options, existing=existing)
