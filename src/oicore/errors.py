"""The oicore exception tree.

Every error oicore raises on purpose is an :class:`OicoreError`. Bad data is
also a :class:`ValueError`, so ``except ValueError`` keeps working for callers
that do not know oicore. I/O problems stay :class:`OSError`.

Messages say what was expected and what was found, then where:
``... (file F, line N, column C 'Name')``.
"""

from __future__ import annotations

import difflib
import os

__all__ = [
    "OicoreError",
    "OicoreWarning",
    "CSVError",
    "UnknownHeaderError",
    "InvalidImageIDError",
    "FormatError",
    "ChecksumError",
    "UnsupportedVersionError",
]


class OicoreError(Exception):
    """Root of every exception oicore raises on purpose."""


class OicoreWarning(UserWarning):
    """Something was skipped or guessed; the result is still exact for what was read."""


class CSVError(OicoreError, ValueError):
    """A CSV file broke the dialect, the header, or a column's grammar.

    Attributes
    ----------
    path : str or None
        The file, as given by the caller.
    line : int
        1 + the number of line terminators before the record's first byte
        (for an unterminated quote: before the field's first byte).
    column : int or None
        1-based index of the field in its record.
    column_name : str or None
        The header name of that field, when known.
    byte_offset : int or None
        0-based offset in the file of the offending byte.
    reason : str
        What was expected and what was found, without the location.
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | os.PathLike | None = None,
        line: int,
        column: int | None = None,
        column_name: str | None = None,
        byte_offset: int | None = None,
    ) -> None:
        self.reason = reason
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.column = column
        self.column_name = column_name
        self.byte_offset = byte_offset
        super().__init__(self._message())

    def _message(self) -> str:
        where = [f"file {self.path}" if self.path is not None else "file <memory>", f"line {self.line}"]
        if self.column is not None:
            where.append(
                f"column {self.column}" + (f" {self.column_name!r}" if self.column_name is not None else "")
            )
        return f"{self.reason} ({', '.join(where)})"

    def __reduce__(self):
        # Keyword-only arguments need a custom reduce so errors cross process boundaries.
        return (
            _rebuild_csv_error,
            (
                type(self),
                self.reason,
                self.path,
                self.line,
                self.column,
                self.column_name,
                self.byte_offset,
            ),
        )


def _rebuild_csv_error(cls, reason, path, line, column, column_name, byte_offset):
    err = cls.__new__(cls)
    CSVError.__init__(
        err,
        reason,
        path=path,
        line=line,
        column=column,
        column_name=column_name,
        byte_offset=byte_offset,
    )
    return err


class UnknownHeaderError(CSVError):
    """The first line of a file matches no known file kind.

    ``closest`` lists the nearest kinds as ``(kind, missing, extra)`` tuples,
    best first.
    """

    def __init__(self, names, closest, *, path=None) -> None:
        self.names = tuple(names)
        self.closest = tuple(closest)
        parts = []
        for kind, missing, extra in self.closest:
            bits = []
            if missing:
                bits.append("missing " + ", ".join(missing))
            if extra:
                bits.append("extra " + ", ".join(extra))
            parts.append(f"{kind} ({'; '.join(bits) or 'same names'})")
        shown = ",".join(self.names)
        if len(shown) > 200:
            shown = shown[:197] + "..."
        reason = f"expected the header of a known Open Images file, got {shown!r}"
        if parts:
            reason += "; closest kinds: " + " | ".join(parts)
        super().__init__(reason, path=path, line=1, byte_offset=0)

    def __reduce__(self):
        return (_rebuild_unknown_header, (self.names, self.closest, self.path))


def _rebuild_unknown_header(names, closest, path):
    return UnknownHeaderError(names, closest, path=path)


class InvalidImageIDError(OicoreError, ValueError):
    """An image ID that is not 16 hex digits (or an int outside uint64)."""


def close_names(word: str, candidates, n: int = 5) -> list[str]:
    """Up to ``n`` candidates that look like ``word``, best first (for 'did you mean')."""
    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.5)


class FormatError(OicoreError, ValueError):
    """An ``.oic`` file is not a valid file of the format (FORMAT.md): truncated, damaged, or not one at all.

    ``path`` is the file, ``byte_offset`` where the problem is (None when it is the file as a whole).
    """

    def __init__(self, reason: str, *, path=None, byte_offset: int | None = None) -> None:
        self.reason = reason
        self.path = None if path is None else os.fspath(path)
        self.byte_offset = byte_offset
        where = [f"file {self.path}"] if self.path is not None else []
        if byte_offset is not None:
            where.append(f"byte {byte_offset}")
        super().__init__(f"{reason} ({', '.join(where)})" if where else reason)

    def __reduce__(self):
        return (_rebuild_format_error, (type(self), self.reason, self.path, self.byte_offset, self.__dict__))


def _rebuild_format_error(cls, reason, path, byte_offset, state):
    err = cls.__new__(cls)
    FormatError.__init__(err, reason, path=path, byte_offset=byte_offset)
    err.__dict__.update(state)
    return err


class ChecksumError(FormatError):
    """Stored bytes do not match their CRC-32C: ``segment``, ``block`` and ``byte_offset`` say which."""

    def __init__(self, reason: str, *, path=None, byte_offset=None, segment=None, block=None) -> None:
        super().__init__(reason, path=path, byte_offset=byte_offset)
        self.segment = segment
        self.block = block


class UnsupportedVersionError(FormatError):
    """The file's major format version is one this oicore cannot read."""


class HierarchyError(OicoreError, ValueError):
    """A label hierarchy file that is not the JSON tree Open Images ships (``path`` names it)."""

    def __init__(self, reason: str, *, path=None) -> None:
        self.reason = reason
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{reason} (file {self.path})" if self.path else reason)

    def __reduce__(self):
        return (type(self), (self.reason,), {"path": self.path})


class AmbiguousLabelError(OicoreError, KeyError):
    """A display name shared by several MIDs; ``candidates`` lists ``(mid, name)`` pairs."""

    def __init__(self, name: str, candidates) -> None:
        self.name = name
        self.candidates = list(candidates)
        super().__init__(f"{name!r} names {len(self.candidates)} classes: " + ", ".join(m for m, _ in self.candidates) + "; pass a MID")

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        return (type(self), (self.name, self.candidates))
