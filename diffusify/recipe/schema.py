"""JSON Schema (draft 2020-12) of recipes, one node variant per processor type, for editors."""

from __future__ import annotations

import copy
import json
from typing import Any

from diffusify.processors.registry import Registry, default_registry

SCHEMA_ID = "https://diffusify.dev/schemas/pipeline.schema.json"
_INTERP = {"type": "string", "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_-]*\}",
           "description": "A ${param} reference, replaced by the param's value."}


def _allow_interpolation(prop: dict[str, Any]) -> dict[str, Any]:
    if prop.get("type") == "string":
        return prop
    desc = prop.get("description")
    out = {"anyOf": [{k: v for k, v in prop.items() if k not in ("description", "title", "default")}, _INTERP]}
    if desc:
        out["description"] = desc
    if "default" in prop:
        out["default"] = prop["default"]
    return out


def _params_schema(cls: Any, defs: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(cls.Params.model_json_schema(ref_template="#/$defs/{model}"))
    for name, sub in schema.pop("$defs", {}).items():
        defs.setdefault(name, sub)
    schema.pop("title", None)
    schema["properties"] = {k: _allow_interpolation({kk: vv for kk, vv in v.items() if kk != "title"})
                            for k, v in schema.get("properties", {}).items()}
    schema["additionalProperties"] = False
    return schema


def build_schema(registry: Registry | None = None) -> dict[str, Any]:
    """The recipe schema for every registered processor type."""
    registry = registry or default_registry()
    defs: dict[str, Any] = {}
    device = {"type": "string", "pattern": r"^(auto|cpu|mps|cuda(:\d+)?)$|\$\{",
              "description": "auto, cpu, cuda, cuda:N or mps."}
    queue = {"type": "object", "additionalProperties": False, "description": "Bound on input queues.",
             "properties": {"frames": {"type": "integer", "minimum": 1, "description": "Frames waiting at most."},
                            "bytes": {"type": ["integer", "string"], "description": "Bytes waiting at most (512MB)."}}}
    variants = []
    for cls in registry:
        name = "node_" + cls.type_name.replace(".", "_")
        ports = cls.port_names()
        props: dict[str, Any] = {
            "type": {"const": cls.type_name, "description": cls.summary()},
            "with": _params_schema(cls, defs),
            "device": {"anyOf": [device, {"type": "array", "items": device, "minItems": 1}],
                       "description": "Device(s) for this node's replicas."},
            "queue": queue,
        }
        props["with"]["description"] = f"Parameters of {cls.type_name}."
        if ports:
            props["input"] = {"type": "string", "description": "The upstream node (single-port processors)."}
            props["inputs"] = {"type": "object", "additionalProperties": False,
                               "properties": {p: {"type": "string", "description": f"Node feeding port '{p}'."}
                                              for p in ports},
                               "required": list(cls.required_ports()), "description": "Port -> upstream node."}
        if cls.replicable():
            props["replicas"] = {"type": "integer", "minimum": 1, "maximum": cls.resources.max_replicas or 64,
                                 "description": "Parallel workers for this frame-parallel node."}
        variant: dict[str, Any] = {"type": "object", "description": cls.summary(), "properties": props,
                                   "required": ["type"], "additionalProperties": False}
        required_params = props["with"].get("required")
        if required_params:
            variant["required"] = ["type", "with"]
        defs[name] = variant
        variants.append({"$ref": f"#/$defs/{name}"})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Diffusify pipeline recipe",
        "description": "A graph of processor nodes: sources, processors and writers.",
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "nodes"],
        "properties": {
            "version": {"const": 1, "description": "Recipe format version."},
            "name": {"type": "string", "description": "Short name of the pipeline."},
            "description": {"type": "string", "description": "What the pipeline does."},
            "params": {"type": "object", "description": "Overridable values (--set name=value; -i/-o set "
                       "input/output), referenced as ${name}.",
                       "additionalProperties": {"type": ["string", "number", "boolean", "null"]}},
            "devices": {"type": "array", "items": device, "description": "Default devices for every node."},
            "queue": queue,
            "nodes": {"type": "object", "description": "Node id -> node.", "minProperties": 1,
                      "additionalProperties": {"oneOf": variants}},
        },
        "$defs": defs,
    }


def schema_json(registry: Registry | None = None) -> str:
    return json.dumps(build_schema(registry), indent=2, sort_keys=False) + "\n"
