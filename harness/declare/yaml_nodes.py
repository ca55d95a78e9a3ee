"""YAML as Buildkite reads it, with the line of every value: anchors, aliases and merge keys.

`yaml.compose` keeps aliases as shared nodes, so a value's line is where it was written; merge
keys (`<<: *defaults`, `<<: [*a, *b]`) are applied here, explicit keys winning. Each node is
converted once (shared by every alias of it), so an alias bomb costs its size, not its expansion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

# libyaml's parser where PyYAML was built with it: ten times faster on large pipelines.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Node:
    """A YAML value with the line (1-based) where it starts."""

    value: Any
    line: int


class Converter:
    """Nodes to `Node` trees; one conversion per node, however many aliases point at it."""

    def __init__(self) -> None:
        self.scalars = yaml.constructor.SafeConstructor()
        self.done: dict[int, Node] = {}
        self.plain: dict[int, Any] = {}

    def node(self, node: yaml.Node) -> Node:
        key = id(node)
        if key not in self.done:
            self.done[key] = self._convert(node)
        return self.done[key]

    def _convert(self, node: yaml.Node) -> Node:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            mapping: dict[str, Node] = {}
            merged: dict[str, Node] = {}
            for key_node, value_node in node.value:
                if key_node.tag == MERGE_TAG or (isinstance(key_node, yaml.ScalarNode) and key_node.value == "<<"):
                    sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                    for source in sources:
                        converted = self.node(source)
                        if isinstance(converted.value, dict):
                            # Earlier sources win over later ones, as YAML's merge rule says.
                            merged = {**converted.value, **merged}
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                mapping[str(key)] = Node(self.node(value_node), key_node.start_mark.line + 1)
            return Node({**merged, **mapping}, line)
        if isinstance(node, yaml.SequenceNode):
            return Node([self.node(item) for item in node.value], line)
        return Node(self.scalars.construct_object(node), line)  # type: ignore[no-untyped-call]

    def unwrap(self, node: Node) -> Any:
        """Plain Python values; shared nodes stay shared (no exponential copies)."""
        key = id(node)
        if key in self.plain:
            return self.plain[key]
        if isinstance(node.value, dict):
            out: Any = {}
            self.plain[key] = out
            out.update({k: self.unwrap(v.value) for k, v in node.value.items()})
        elif isinstance(node.value, list):
            out = []
            self.plain[key] = out
            out.extend(self.unwrap(v) for v in node.value)
        else:
            out = node.value
            self.plain[key] = out
        return out


def expanded_size(root: yaml.Node, limit: int) -> int:
    """How many values the document has once every alias is expanded (what a reader that copies,
    or an error that prints a value, would pay), counted on the shared graph and capped past `limit`.
    An alias inside its own anchor (`&a [*a]`) expands without end: past any limit."""
    plain = _unshared_size(root)
    if plain is not None:
        return min(limit + 1, plain)
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = (
            [v for pair in node.value for v in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
            if isinstance(node, yaml.SequenceNode)
            else []
        )
        if children_done:
            sizes[key] = min(limit + 1, 1 + sum(sizes.get(id(c), 0) for c in children))
            open_nodes.discard(key)
            continue
        if key in open_nodes or any(id(c) in open_nodes or c is node for c in children):
            return limit + 1  # a cycle through an alias
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _unshared_size(root: yaml.Node) -> int | None:
    """How many values a document without aliases has (each node reached once: nothing to expand,
    no cycle); None as soon as one node is reached twice, for `expanded_size`'s full count. Most
    pipeline files have no alias, and this one pass costs a third of the full count's."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            return None
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append(key)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return len(seen)
