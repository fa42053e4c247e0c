"""CONFIG_SPEC (plain data in plugin.config) turned into the hclspec protobuf that ConfigSchema returns.

Rules Nomad enforces (contract §4.2): type expressions are unquoted (``string``, ``list(string)``),
literals are HCL expressions (a string default keeps its own quotes), an Attr under a Default names
itself, and both halves of every Default are set.
"""

from __future__ import annotations

from typing import Any

from proto import hcl_spec_pb2 as hclspec


def spec_to_proto(spec: dict[str, Any]) -> hclspec.Spec:
    """An Object spec whose keys are the HCL names of the children."""
    return hclspec.Spec(object=hclspec.Object(attributes={k: _node(v) for k, v in spec.items()}))


def _node(node: tuple[str, dict[str, Any]]) -> hclspec.Spec:
    kind, opts = node
    if kind == "attr":
        return hclspec.Spec(Attr=hclspec.Attr(type=opts["type"], required=opts["required"]))
    if kind == "default":
        primary = hclspec.Spec(Attr=hclspec.Attr(name=opts["name"], type=opts["type"], required=False))
        fallback = hclspec.Spec(literal=hclspec.Literal(value=opts["literal"]))
        return hclspec.Spec(default=hclspec.Default(primary=primary, default=fallback))
    if kind == "block":
        return hclspec.Spec(block_value=hclspec.Block(nested=spec_to_proto(opts["nested"])))
    if kind == "block_list":
        return hclspec.Spec(block_list=hclspec.BlockList(nested=spec_to_proto(opts["nested"])))
    if kind == "block_attrs":
        return hclspec.Spec(block_attrs=hclspec.BlockAttrs(type=opts["type"]))
    raise ValueError(f"unknown spec kind {kind!r}")
