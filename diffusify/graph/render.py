"""Render the resolved DAG as text, mermaid or Graphviz dot."""

from __future__ import annotations

import json

from diffusify.graph.validate import Validated


def _label(v: Validated, nid: str) -> str:
    assert v.recipe is not None
    node = v.recipe.nodes[nid]
    s = v.streams.get(nid)
    if s is not None:
        return f"{nid} ({node.type})\\n{s.width}x{s.height} @ {s.fps} fps, {s.frames if s.frames is not None else '?'} fr"
    return f"{nid} ({node.type})"


def render_text(v: Validated) -> str:
    assert v.recipe is not None
    lines = [f"{v.recipe.name}: {len(v.recipe.nodes)} nodes"]
    for nid in v.order:
        node = v.recipe.nodes[nid]
        ins = ", ".join(f"{p} <- {r}" for p, r in node.inputs.items())
        s = v.streams.get(nid)
        g = v.graph.nodes[nid] if v.graph is not None else None
        writes = g.cls.describe_output(g.params, g.input_streams, g.refs(v.graph)) if g is not None and \
            g.cls.is_sink and v.graph is not None else ""
        out = s.describe() if s is not None else (writes or ("file" if not ins else "-"))
        extra = f" x{node.replicas}" if node.replicas > 1 else ""
        dev = f" on {','.join(node.devices)}" if node.devices else ""
        lines.append(f"  {nid} [{node.type}]{extra}{dev}" + (f"  ({ins})" if ins else ""))
        lines.append(f"      -> {out}")
    return "\n".join(lines)


def render_mermaid(v: Validated) -> str:
    assert v.recipe is not None
    lines = ["flowchart LR"]
    for nid in v.order:
        lines.append(f'  {nid}["{_label(v, nid).replace(chr(92) + "n", "<br/>")}"]')
    for nid in v.order:
        for port, ref in v.recipe.nodes[nid].inputs.items():
            lines.append(f"  {ref} -->|{port}| {nid}")
    return "\n".join(lines)


def render_dot(v: Validated) -> str:
    assert v.recipe is not None
    lines = [f'digraph "{v.recipe.name}" {{', "  rankdir=LR;", "  node [shape=box];"]
    for nid in v.order:
        lines.append(f'  "{nid}" [label="{_label(v, nid)}"];')
    for nid in v.order:
        for port, ref in v.recipe.nodes[nid].inputs.items():
            lines.append(f'  "{ref}" -> "{nid}" [label="{port}"];')
    lines.append("}")
    return "\n".join(lines)


def render_json(v: Validated) -> str:
    assert v.recipe is not None
    nodes = []
    for nid in v.order:
        node = v.recipe.nodes[nid]
        s = v.streams.get(nid)
        nodes.append({"id": nid, "type": node.type, "inputs": node.inputs, "replicas": node.replicas,
                      "devices": node.devices, "stream": s.to_json() if s else None})
    return json.dumps({"name": v.recipe.name, "nodes": nodes}, indent=2)
