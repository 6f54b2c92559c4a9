"""Human and JSON documentation of a processor type, from its declarations."""

from __future__ import annotations

import inspect
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BeforeValidator
from pydantic_core import PydanticUndefined

from diffusify.processors.base import PathField, Processor


def _label(metadata: Any) -> str:
    """The name of a marked type (a path, a frame rate), or an empty string."""
    for meta in metadata:
        if isinstance(meta, PathField):
            return {"input": "path", "output": "output path", "model": "model file or name"}[meta.kind]
        if isinstance(meta, BeforeValidator) and getattr(meta.func, "__name__", "") == "_check_fps":
            return "frame rate"
    return ""


def _type_name(annotation: Any) -> str:
    """A reader's name for a parameter's type: ``int | None``, ``path``, ``frame rate``, ``Literal['a', 'b']``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _label(args[1:]) or _type_name(args[0])
    if origin in (Union, UnionType):
        return " | ".join(_type_name(a) for a in args)
    if annotation is type(None):
        return "None"
    if inspect.isclass(annotation) and origin is None:
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def _params(cls: type[Processor]) -> list[dict[str, Any]]:
    out = []
    for name, f in cls.Params.model_fields.items():
        if f.default_factory is not None:
            default: Any = f.default_factory()  # type: ignore[call-arg]
        else:
            default = None if f.default is PydanticUndefined else f.default
        out.append({"name": name, "type": (_label(f.metadata) or _type_name(f.annotation)), "required": f.is_required(),
                    "default": default, "description": f.description or ""})
    return out


def describe_json(cls: type[Processor]) -> dict[str, Any]:
    return {
        "type": cls.type_name,
        "summary": cls.summary(),
        "doc": inspect.cleandoc(cls.__doc__ or ""),
        "implemented": cls.implemented,
        "kind": "source" if cls.is_source() else "sink" if cls.is_sink else "processor",
        "ports": [{"name": p.name, "kind": p.kind, "required": p.name in cls.required_ports()}
                  for p in cls.ports()],
        "temporal": cls.temporal.value,
        "window": list(cls.window),
        "replicable": cls.replicable(),
        "resources": {"device": cls.resources.device, "max_replicas": cls.resources.max_replicas,
                      "heavy": cls.resources.heavy, "offload": cls.resources.offload,
                      "exclusive": cls.resources.exclusive},
        "batching": cls.batching,
        "requires": list(cls.requires),
        "extra": cls.extra,
        "params": _params(cls),
    }


def describe(cls: type[Processor]) -> str:
    d = describe_json(cls)
    lines = [f"{d['type']}: {d['summary']}" + ("" if d["implemented"] else "  [not implemented yet]"), ""]
    lines += ["  " + line for line in d["doc"].splitlines()[1:] if line.strip()] or []
    ports = ", ".join(f"{p['name']} ({p['kind']}{'' if p['required'] else ', optional'})"
                      for p in d["ports"]) or "none (source)"
    lines += ["", f"kind: {d['kind']}", f"ports: {ports}",
              f"temporal: {d['temporal']}" + (f" (window {d['window'][0]} before, {d['window'][1]} after)"
                                               if d["temporal"] == "window" else ""),
              f"replicable: {'yes' if d['replicable'] else 'no'}",
              f"device: {d['resources']['device']}" + ("  (neural: worth a GPU)" if d["resources"]["heavy"] else ""),
              *([f"needs: {', '.join(d['requires'])} (pip install 'diffusify[{d['extra']}]')"] if d["requires"] else []),
              "", "parameters:"]
    for p in d["params"]:
        req = "required" if p["required"] else f"default: {p['default']!r}"
        lines.append(f"  {p['name']} ({p['type']}, {req})")
        lines.append(f"      {p['description']}")
    return "\n".join(lines)
