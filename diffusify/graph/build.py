"""The typed graph of a recipe, built once: processor classes, parameters, upstream per port, and the stream on
every edge. Validation, rendering, planning and every executor read this object.

The checks that need the whole graph live here: cycles (named), missing sinks and dead ends, port kinds (a video
fed to a mask port and the reverse), stream propagation (size, exact rate, frame count, colour, origin, so that
mismatches are errors before a frame is decoded), files written over files read, and which file a writer copies
audio and subtitles from.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from diffusify.core.stream import StreamInfo
from diffusify.io.paths import identity, inside
from diffusify.processors.base import PlanContext, Processor, Segment, StreamError
from diffusify.recipe.model import QueueBudget, Recipe
from diffusify.recipe.validate import Parsed, Reporter
from diffusify.recipe.yamlpos import Path


@dataclass
class GraphNode:
    """One node of the graph.

    Attributes:
        id: the node id. cls: its processor class. params: its validated parameters.
        inputs: port -> upstream node id. consumers: (node id, port) pairs this node feeds.
        input_streams: port -> the stream arriving there. output: the stream it emits (None for sinks, and
            where an error upstream hides it).
        devices: devices the recipe names for it (empty: the pipeline's default). replicas: worker count.
        queue: the budget of its input queues (None: the pipeline's). line: its line in the recipe.
    """

    id: str
    cls: type[Processor]
    params: Any
    inputs: dict[str, str]
    consumers: list[tuple[str, str]] = field(default_factory=list)
    input_streams: dict[str, StreamInfo] = field(default_factory=dict)
    output: StreamInfo | None = None
    devices: list[str] = field(default_factory=list)
    replicas: int = 1
    queue: QueueBudget | None = None
    line: int = 0

    def refs(self, graph: Graph) -> dict[str, StreamInfo | None]:
        """The streams of the nodes this node's parameters name (its class's ``node_refs``)."""
        out: dict[str, StreamInfo | None] = {}
        for param in self.cls.node_refs:
            ref = getattr(self.params, param, None)
            if isinstance(ref, str) and ref in graph.nodes:
                out[param] = graph.nodes[ref].output
        return out


@dataclass
class Graph:
    """The pipeline DAG. ``nodes`` is in topological order (sources first, by position in the file)."""

    recipe: Recipe
    nodes: dict[str, GraphNode]

    @property
    def order(self) -> list[str]:
        return list(self.nodes)

    def __iter__(self) -> Iterator[GraphNode]:
        return iter(self.nodes.values())

    def sources(self) -> list[GraphNode]:
        return [n for n in self if n.cls.is_source()]

    def sinks(self) -> list[GraphNode]:
        return [n for n in self if n.cls.is_sink]

    def to_networkx(self) -> nx.DiGraph:
        g = nx.DiGraph()
        for n in self:
            g.add_node(n.id, type=n.cls.type_name)
        for n in self:
            for port, ref in n.inputs.items():
                g.add_edge(ref, n.id, port=port)
        return g


def _digraph(recipe: Recipe) -> nx.DiGraph:
    g = nx.DiGraph()
    for nid in recipe.nodes:
        g.add_node(nid)
    for nid, node in recipe.nodes.items():
        for port, ref in node.inputs.items():
            if ref in recipe.nodes:
                g.add_edge(ref, nid, port=port)
    return g


def _order(parsed: Parsed) -> list[str]:
    """Report cycles, missing sinks and dead-end nodes. Returns a topological order ([] on a cycle)."""
    recipe, report, classes = parsed.recipe, parsed.reporter, parsed.classes
    assert recipe is not None
    g = _digraph(recipe)
    order: list[str] = []
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        names = [u for u, _ in cycle] + [cycle[0][0]]
        first = min(names[:-1], key=lambda n: recipe.nodes[n].line)
        i = names.index(first)
        names = names[i:-1] + names[:i] + [first]
        report.error(("nodes", first), f"cycle: {' -> '.join(names)} (a pipeline must flow one way: take one "
                     "of these inputs from a node outside the loop)", key=True)
    else:
        # stable order: by position in the file among nodes that are ready
        order = list(nx.lexicographical_topological_sort(g, key=lambda n: recipe.nodes[n].line))

    if parsed.all_ids and not any(classes[n].is_sink for n in recipe.nodes) \
            and len(recipe.nodes) == len(parsed.all_ids):
        report.error(("nodes",), "the pipeline has no output: add a video.write or image.write node", key=True)
        return order  # every end of the graph goes nowhere then: one error says it
    for nid in recipe.nodes:
        if not classes[nid].is_sink and g.out_degree(nid) == 0 and nid not in parsed.referenced:
            report.warn(("nodes", nid), f"the output of '{nid}' goes nowhere (connect it, or remove the node)",
                        key=True)
    return order


def build_graph(parsed: Parsed, *, check_streams: bool = True, segment: Segment | None = None) -> Graph | None:
    """The graph of a parsed recipe, with every graph-level problem added to ``parsed.reporter``.

    Returns None when the recipe could not be read at all or its graph has a cycle. Nodes with errors of their
    own are left out; streams that depend on them are None.
    """
    recipe = parsed.recipe
    if recipe is None:
        return None
    order = _order(parsed)
    if not order:
        return None
    nodes: dict[str, GraphNode] = {}
    for nid in order:
        spec = recipe.nodes[nid]
        nodes[nid] = GraphNode(id=nid, cls=parsed.classes[nid], params=spec.params, inputs=dict(spec.inputs),
                               devices=list(spec.devices), replicas=spec.replicas, queue=spec.queue,
                               line=spec.line)
    for n in nodes.values():
        for port, ref in n.inputs.items():
            if ref in nodes:  # a node with errors of its own is left out of the graph
                nodes[ref].consumers.append((n.id, port))
    graph = Graph(recipe, nodes)
    _paths(graph, parsed.reporter)
    if check_streams:
        _streams(graph, parsed, segment)
        _copy_sources(graph, parsed.reporter)
    return graph


# ---- files ------------------------------------------------------------------------------------------------------
def _paths(graph: Graph, report: Reporter) -> None:
    """No output may be an input under any name (a symbolic link, a hard link, ``a/../b``), nor a folder that
    holds files some node reads; no two writers share an output."""
    reads: list[tuple[tuple[object, ...], str, str]] = []
    writes: dict[tuple[object, ...], str] = {}
    outputs: list[tuple[GraphNode, str, tuple[object, ...]]] = []
    for n in graph:
        r, w = n.cls.paths(n.params)
        if any("\x00" in p for p in r + w):
            report.error(("nodes", n.id, "with", "path"), "the path holds a NUL character (\\0), which no file "
                         "name can; remove it")
            continue
        reads += [(identity(p), p, n.id) for p in n.cls.input_files(n.params)]
        for p in w:
            key = identity(p)
            if key in writes:
                report.error(("nodes", n.id, "with", "path"),
                             f"node '{writes[key]}' already writes {p}; give each writer its own file")
            writes[key] = n.id
            outputs.append((n, p, key))
    for n, p, key in outputs:
        for rkey, rpath, rnode in reads:
            if rkey == key:
                report.error(("nodes", n.id, "with", "path"),
                             f"output path is the input of node '{rnode}' ({rpath}); writing it would destroy the "
                             "source: choose another output path")
                break
            if n.cls.output_kind == "folder" and inside(rpath, p):
                report.error(("nodes", n.id, "with", "path"),
                             f"{p} holds files that node '{rnode}' reads ({rpath}); writing into it could "
                             "replace the source: choose another folder")
                break


def _copy_sources(graph: Graph, report: Reporter) -> None:
    """A writer whose frames come from several files, left to pick the one to copy audio and subtitles from,
    copies none: say so."""
    for n in graph:
        if "copy_streams_from" not in n.cls.node_refs or getattr(n.params, "copy_streams_from", "") is not None:
            continue
        stream = n.input_streams.get("input")
        if stream is None or stream.origin is not None:
            continue
        files = sorted({s.output.origin.node for s in graph.sources()
                        if s.output is not None and s.output.origin is not None and s.output.origin.streams
                        and _feeds(graph, s.id, n.id)})
        if len(files) >= 2:
            report.warn(("nodes", n.id, "type"), f"copies no audio, subtitles or chapters: its frames come from "
                        f"{len(files)} videos ({', '.join(files)}); set copy_streams_from to one of them, or to none")


def _feeds(graph: Graph, src: str, dst: str) -> bool:
    return nx.has_path(graph.to_networkx(), src, dst)


# ---- streams ----------------------------------------------------------------------------------------------------
def _streams(graph: Graph, parsed: Parsed, segment: Segment | None) -> None:
    report = parsed.reporter
    recipe = graph.recipe
    ctx = PlanContext(base_dir=os.path.dirname(recipe.path) or ".", max_frames=parsed.max_frames,
                      segment=segment)
    for n in graph:
        ins: dict[str, StreamInfo] = {}
        missing = False
        for port, ref in n.inputs.items():
            s = graph.nodes[ref].output if ref in graph.nodes else None
            if s is None:
                missing = True
                break
            ins[port] = s
        n.input_streams = ins
        if missing:
            continue
        path: Path = ("nodes", n.id)
        if not _port_kinds(n, ins, report):
            continue
        ctx.warnings.clear()
        ctx.errors.clear()
        ctx.node = n.id
        try:
            n.output = n.cls.infer_stream(n.params, ins, ctx)
        except Exception as e:  # noqa: BLE001 - any failure to plan a node is reported at the node
            n.output = None
            if isinstance(e, StreamError):
                if e.param:
                    where = path + ("with", e.param)
                elif e.port:
                    where = _port_path(n, e.port, report)
                else:
                    where = path + ("type",)
                # a field already in error (an undefined ${param}) explains this failure too
                if not report.has_error(where):
                    report.error(where, str(e))
            else:
                report.error(path + ("type",), f"cannot plan this node: {type(e).__name__}: {e}")
        for param, message in ctx.errors:
            report.error(path + (("with", param) if param else ("type",)), message)
        for param, message in ctx.warnings:
            report.warn(path + (("with", param) if param else ("type",)), message)


def _port_path(n: GraphNode, port: str, report: Reporter) -> Path:
    path: Path = ("nodes", n.id)
    return path + (("inputs", port) if "inputs" in report.raw_keys(path) else ("input",))


def _port_kinds(n: GraphNode, ins: dict[str, StreamInfo], report: Reporter) -> bool:
    """Each port takes the kind it declares: a mask fed to a video port, or a video to a mask port, is an error
    at the recipe line that wires it."""
    ok = True
    for port in n.cls.ports():
        s = ins.get(port.name)
        if s is None or port.kind == "any" or s.kind == port.kind:
            continue
        ok = False
        ref = n.inputs[port.name]
        if port.kind == "mask":
            fix = (f"turn it into a mask first (e.g. a 'mask' node: {{type: mask, input: {ref}}}, or a "
                   "'segment' node)")
        else:
            fix = "composite it with compose.mask, or write it with video.write/image.write"
        report.error(_port_path(n, port.name, report),
                     f"port '{port.name}' of {n.cls.type_name} takes {port.kind} frames, but '{ref}' gives a "
                     f"{s.kind} stream; {fix}")
    return ok
