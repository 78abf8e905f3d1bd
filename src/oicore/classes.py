"""Class names and class lists of a release: MID ↔ display name, and ``lists["trainable"]`` and friends."""

from __future__ import annotations

import numpy as np

from oicore.errors import AmbiguousLabelError, close_names

__all__ = ["Classes"]

# Other names users reach for, by the list names the files give (classes-bbox.txt is "bbox").
_LIST_ALIASES = {"boxable": "bbox", "bbox": "boxable", "all": "classes"}


class Classes:
    """MID ↔ name maps from the class-description files, and the class lists.

    ``name(mid)`` and ``mid(name)`` look up one way or the other. A name matches exactly first, then
    case-insensitively with surrounding spaces removed; a name shared by several MIDs raises
    ``AmbiguousLabelError`` (a ``KeyError``) with ``.candidates``.
    """

    def __init__(self, mids: list[str], names_by_code: list[str | None], lists: dict[str, list[str]]):
        self.mids = mids
        self.names_by_code = names_by_code
        self.lists = _Lists(lists)
        self._code = {m: i for i, m in enumerate(mids)}
        self._by_name: dict[str, list[int]] = {}
        self._by_folded: dict[str, list[int]] = {}
        for code, name in enumerate(names_by_code):
            if name is None:
                continue
            self._by_name.setdefault(name, []).append(code)
            self._by_folded.setdefault(_fold(name), []).append(code)

    @classmethod
    def from_store(cls, store, mids: list[str]) -> "Classes":
        names: list[str | None] = [None] * len(mids)
        lists: dict[str, list[str]] = {}
        t = store.tables.get("class_descriptions")
        if t is not None:
            codes = t.column("LabelName").values
            text = t.column("DisplayName")
            raw = bytes(text.data)
            offsets = text.offsets
            for k, part in enumerate(t.parts):
                positions = t.part_positions(k)
                part_mids = []
                for row in positions.tolist():
                    code = int(codes[row])
                    part_mids.append(mids[code])
                    if names[code] is None:  # the first description file wins
                        names[code] = raw[offsets[row] : offsets[row + 1]].decode("utf-8")
                source = store.sources[part["source"]]["name"].lower()
                if "boxable" in source:
                    lists.setdefault("boxable", part_mids)
        t = store.tables.get("class_lists")
        if t is not None:
            codes = t.column("LabelName").values
            for k, part in enumerate(t.parts):
                name = store.sources[part["source"]].get("list_name") or f"list{k}"
                lists[name] = [mids[int(c)] for c in np.asarray(codes)[t.part_positions(k)].tolist()]
        return cls(mids, names, lists)

    def __len__(self) -> int:
        return sum(1 for n in self.names_by_code if n is not None)

    def code_of_mid(self, mid: str) -> int | None:
        return self._code.get(mid)

    def name(self, mid: str) -> str:
        """The display name of a MID (``KeyError`` when it has none)."""
        code = self._code.get(mid)
        if code is None or self.names_by_code[code] is None:
            raise KeyError(f"{mid!r} has no display name in this release")
        return self.names_by_code[code]

    def mid(self, name: str) -> str:
        """The MID of a display name: exact, then case-insensitive without surrounding spaces."""
        if name in self._code:
            return name
        codes = self._by_name.get(name) or self._by_folded.get(_fold(name))
        if not codes:
            close = close_names(name, self._by_name, n=5)
            hint = f"; close names: {', '.join(repr(c) for c in close)}" if close else ""
            raise KeyError(f"no class named {name!r}{hint}")
        if len(codes) > 1:
            raise AmbiguousLabelError(name, [(self.mids[c], self.names_by_code[c]) for c in codes])
        return self.mids[codes[0]]

    def __repr__(self) -> str:
        return f"<Classes: {len(self)} named of {len(self.mids)} MIDs; lists {sorted(self.lists)}>"


def _fold(name: str) -> str:
    return name.strip().casefold()


class _Lists(dict):
    """Class lists by name; unknown names raise KeyError listing the known ones."""

    def __missing__(self, key):
        alias = _LIST_ALIASES.get(key)
        if alias is not None and alias in self:
            return self[alias]
        raise KeyError(f"no class list {key!r}; this release has {sorted(self)}")
