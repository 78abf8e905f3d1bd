"""The physical order of a table's rows in a ``.oic`` file (FORMAT.md: *lookup order*).

Rows of the lookup parts (train, validation, test) come first, sorted by image ID (stable: part, then file
order); rows of export-only parts follow in file order. When every lookup part is sorted, which is how Google
ships them, that order is a merge of the parts: it is kept as one byte per row naming the row's part, and
columns are merged part by part (``_kernels.merge_gather``) instead of gathered through an index array of
eight bytes per row. Otherwise it is a permutation from a stable sort.
"""

from __future__ import annotations

import numpy as np

from oicore import _kernels

__all__ = ["RowOrder", "row_order"]


class RowOrder:
    """Physical row ``i`` of a table is row ``perm[i]`` of its parts one after another.

    ``selector`` (uint8, one per lookup row: the row's part) when the lookup rows are a merge of sorted
    parts, else ``perm`` (int64). ``sizes``: rows per part; the first ``merged`` parts are merged, the rest
    follow in file order.
    """

    def __init__(self, sizes: list[int], merged: int, *, selector: np.ndarray | None = None, perm: np.ndarray | None = None):
        self.sizes, self.merged = list(sizes), merged
        self.selector, self._perm = selector, perm
        self._positions: list[np.ndarray] | None = None
        self.starts = np.cumsum([0, *self.sizes])

    @property
    def rows(self) -> int:
        return int(self.starts[-1])

    def gather(self, arrays: list[np.ndarray]) -> np.ndarray:
        """The parts' arrays (one per part, one dtype) as one array in physical order."""
        if self.selector is None:
            return (np.concatenate(arrays) if len(arrays) > 1 else arrays[0])[self._perm]
        head = len(self.selector)
        out = np.empty(self.rows, np.result_type(*arrays))
        _kernels.merge_gather(self.selector, [np.asarray(a, out.dtype) for a in arrays[: self.merged]], out[:head])
        at = head
        for a in arrays[self.merged :]:
            out[at : at + len(a)] = a
            at += len(a)
        return out

    def row_part(self) -> np.ndarray:
        """Each physical row's part (uint8): the selector, then the unmerged parts' rows in file order."""
        if self.selector is None:
            return np.repeat(np.arange(len(self.sizes), dtype=np.uint8), self.sizes)[self._perm]
        tail = np.repeat(np.arange(self.merged, len(self.sizes), dtype=np.uint8), self.sizes[self.merged :])
        return np.concatenate([self.selector, tail])

    def positions(self, part: int) -> np.ndarray:
        """The physical positions of part ``part``'s rows, in file order (int64)."""
        if self._positions is None:
            if self.selector is not None:
                merged = _kernels.part_positions(self.selector, self.merged)
                tail = [np.arange(self.starts[i], self.starts[i + 1], dtype=np.int64) for i in range(self.merged, len(self.sizes))]
                self._positions = merged + tail
            else:
                inverse = np.empty(self.rows, np.int64)
                inverse[self._perm] = np.arange(self.rows)
                self._positions = [inverse[self.starts[i] : self.starts[i + 1]] for i in range(len(self.sizes))]
        return self._positions[part]

    @property
    def perm(self) -> np.ndarray:
        """Physical row -> row of the parts one after another (int64)."""
        if self._perm is None:
            self._perm = np.empty(self.rows, np.int64)
            for i in range(len(self.sizes)):
                self._perm[self.positions(i)] = np.arange(self.starts[i], self.starts[i + 1])
        return self._perm


def row_order(ids: list[np.ndarray], sorted_parts: list[bool], lookup_parts: int) -> tuple[RowOrder | None, np.ndarray]:
    """The order of a table whose parts hold these image IDs (uint64, one array per part, lookup parts
    first), and the IDs in that order. None when the parts one after another are already in order."""
    sizes = [len(x) for x in ids]

    def joined():  # the parts one after another (not made when the parts are merged)
        return np.concatenate(ids) if len(ids) > 1 else np.asarray(ids[0], np.uint64)

    head = [x for x in ids[:lookup_parts] if len(x)]
    n_lookup = sum(sizes[:lookup_parts])
    if all(sorted_parts[:lookup_parts]):
        # Sorted parts in order one after another need no reordering; otherwise they are merged.
        if all(a[-1] <= b[0] for a, b in zip(head, head[1:])):
            return None, joined()
        if lookup_parts <= 255:
            merged, selector = _kernels.merge_sorted(ids[:lookup_parts])
            return RowOrder(sizes, lookup_parts, selector=selector), np.concatenate([merged, *ids[lookup_parts:]])
    every = joined()
    perm = np.argsort(every[:n_lookup], kind="stable")  # timsort: sorted runs merge in linear time
    perm = np.concatenate([perm, np.arange(n_lookup, len(every))])
    return RowOrder(sizes, lookup_parts, perm=perm), every[perm]
