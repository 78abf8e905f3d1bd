"""The label hierarchy (``bbox_labels_600_hierarchy.json``): parents, children, ancestors, descendants.

Expansion follows the Open Images evaluation (TensorFlow's
``oid_hierarchical_labels_expansion``): positives and boxes go up to every
ancestor, negatives down to every descendant, along ``Subcategory`` edges by
default, and the root ``/m/0bl9f`` is never emitted.
"""

from __future__ import annotations

import json

from oicore.errors import HierarchyError

__all__ = ["Hierarchy", "ROOT"]

ROOT = "/m/0bl9f"
EDGES = ("Subcategory", "Part")


class Hierarchy:
    """A label tree (a DAG: a class may sit under several parents)."""

    def __init__(self, tree: dict, *, path=None):
        self.root = tree.get("LabelName") if isinstance(tree, dict) else None
        if not isinstance(self.root, str):
            raise HierarchyError("expected a JSON object with a LabelName at the top", path=path)
        # (edge, parent) -> children, in file order, and (edge, child) -> parents.
        self._children: dict[tuple[str, str], list[str]] = {}
        self._parents: dict[tuple[str, str], list[str]] = {}
        self._labels: list[str] = []
        seen: set[str] = set()
        stack = [tree]
        while stack:
            node = stack.pop()
            if not isinstance(node, dict) or not isinstance(node.get("LabelName"), str):
                raise HierarchyError(f"expected nodes with a LabelName, got {str(node)[:80]}", path=path)
            label = node["LabelName"]
            if label not in seen:
                seen.add(label)
                self._labels.append(label)
            for edge in EDGES:
                kids = node.get(edge, [])
                if not isinstance(kids, list):
                    raise HierarchyError(f"expected a list under {edge} of {label}", path=path)
                for kid in kids:
                    if not isinstance(kid, dict) or not isinstance(kid.get("LabelName"), str):
                        raise HierarchyError(f"expected nodes with a LabelName under {label}", path=path)
                    child = kid["LabelName"]
                    _append(self._children.setdefault((edge, label), []), child)
                    _append(self._parents.setdefault((edge, child), []), label)
                    stack.append(kid)

    @classmethod
    def from_store(cls, store) -> "Hierarchy":
        t = store.tables.get("hierarchy")
        if t is None or not t.parts:
            raise LookupError(f"{store.path} holds no label hierarchy")
        part = t.parts[0]
        return cls.from_json(store.container.data(part["json_segment"]), path=store.path)

    @classmethod
    def from_json(cls, data, *, path=None) -> "Hierarchy":
        """The hierarchy in a JSON file's bytes (``bbox_labels_600_hierarchy.json``); HierarchyError otherwise."""
        try:
            tree = json.loads(bytes(data).decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HierarchyError(f"expected a JSON label hierarchy, got {e}", path=path) from None
        except RecursionError:
            raise HierarchyError("expected a JSON label hierarchy, got one nested too deeply to read", path=path) from None
        return cls(tree, path=path)

    @property
    def labels(self) -> list[str]:
        """Every MID in the tree, the root first."""
        return list(self._labels)

    def _check(self, mid, edges):
        if isinstance(edges, str):
            edges = (edges,)
        bad = [e for e in edges if e not in EDGES]
        if bad:
            raise ValueError(f"unknown edge kinds {bad}; expected some of {EDGES}")
        return edges

    def parents(self, mid: str, edges=("Subcategory",)) -> list[str]:
        edges = self._check(mid, edges)
        out: list[str] = []
        for e in edges:
            for p in self._parents.get((e, mid), []):
                _append(out, p)
        return out

    def children(self, mid: str, edges=("Subcategory",)) -> list[str]:
        edges = self._check(mid, edges)
        out: list[str] = []
        for e in edges:
            for c in self._children.get((e, mid), []):
                _append(out, c)
        return out

    def ancestors(self, mid: str, edges=("Subcategory",)) -> list[str]:
        """Every class above ``mid`` (nearest first), never the root."""
        return self._walk(mid, self.parents, edges)

    def descendants(self, mid: str, edges=("Subcategory",)) -> list[str]:
        """Every class below ``mid`` (nearest first)."""
        return self._walk(mid, self.children, edges)

    def _walk(self, mid, step, edges):
        out: list[str] = []
        seen = {mid}
        frontier = [mid]
        while frontier:
            nxt = []
            for m in frontier:
                for r in step(m, edges):
                    if r not in seen:
                        seen.add(r)
                        nxt.append(r)
                        if r != self.root:
                            out.append(r)
            frontier = nxt
        return out

    def table(self):
        """Every edge as a ``pyarrow.Table``: ``parent``, ``child`` and ``edge`` (``Subcategory`` or ``Part``)."""
        import pyarrow as pa

        rows = [(parent, child, edge) for (edge, parent), kids in self._children.items() for child in kids]
        return pa.table(
            {
                "parent": pa.array([r[0] for r in rows], pa.string()),
                "child": pa.array([r[1] for r in rows], pa.string()),
                "edge": pa.array([r[2] for r in rows], pa.string()),
            }
        )

    def expand(self, mid: str, positive: bool = True, edges=("Subcategory",)) -> list[str]:
        """``mid`` and what the evaluation adds: ancestors for positives (and boxes), descendants for negatives."""
        return [mid, *(self.ancestors(mid, edges) if positive else self.descendants(mid, edges))]


def _append(items: list, value) -> None:
    if value not in items:
        items.append(value)
