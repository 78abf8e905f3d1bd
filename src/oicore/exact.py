"""Byte-identical export: how a part's text was written, and the rows that follow no rule.

At convert time ``learn_rules`` reads a sample of the source's records to
choose, per column, the quoting and the number spelling, and the line
terminator. ``find_exceptions`` then renders every row from the stored column
values (C, ``oicore._render``) and compares it with the source's bytes; a row
that differs is kept as its raw bytes. ``render_part`` writes a part back:
prefix (BOM, header), rendered rows with the exceptions spliced in, suffix.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from oicore import _render
from oicore.columns import MAX_FIXED_DECIMALS, Decoded

__all__ = ["learn_rules", "find_exceptions", "column_specs", "render_part", "sample_fields"]

QUOTE_MINIMAL, QUOTE_ALL, QUOTE_NEVER = 0, 1, 2
_FIELD = re.compile(rb'"(?:[^"]|"")*"|[^,\r\n]*')
_SAMPLE_RECORDS = 200
_TERMINATORS = {b"\n": "\n", b"\r\n": "\r\n", b"\r": "\r"}


def _split_record(record: bytes) -> tuple[list[bytes], bytes]:
    """The raw fields of one record (quotes kept) and its terminator."""
    body = record.rstrip(b"\r\n")
    term = record[len(body) :]
    fields, pos = [], 0
    while True:
        m = _FIELD.match(body, pos)
        fields.append(m.group())
        pos = m.end()
        if pos >= len(body):
            break
        pos += 1  # the comma
        if pos == len(body):
            fields.append(b"")
            break
    return fields, term


def sample_fields(source, start: int, n_rows: int, limit: int = _SAMPLE_RECORDS, *, whole: bool = True):
    """Raw fields and terminators of up to ``limit`` records from ``start``; when ``source`` is only the
    file's beginning (``whole`` false), the records that reach its end are left out (they may go on)."""
    records, pos = [], start
    for _ in range(min(n_rows, limit)):
        if pos >= len(source):
            break
        end = _render.record_end(source, pos)
        if end == len(source) and not whole:
            break
        records.append(_split_record(bytes(source[pos:end])))
        pos = end
    return records


def _needs_quotes(text: bytes) -> bool:
    return any(c in text for c in (b",", b'"', b"\r", b"\n"))


def _decimals(text: bytes) -> int | None:
    """Digits after the point of a plain decimal, 0 without a point, None for other spellings."""
    if re.fullmatch(rb"-?[0-9]+", text):
        return 0
    m = re.fullmatch(rb"-?[0-9]+\.([0-9]+)", text)
    return len(m.group(1)) if m else None


def _number_style(texts: list[bytes]) -> tuple[str, int | None]:
    """The spelling most sampled numbers follow: ``fixed`` (with its digits), ``trim1`` or ``trim``.

    A spelling with more than ``MAX_FIXED_DECIMALS`` digits is no plain decimal here: its rows are exceptions.
    """
    spelled = [(t, d) for t in texts if (d := _decimals(t)) is not None and d <= MAX_FIXED_DECIMALS]
    if not spelled:
        return "fixed", None
    plain = [t for t, _ in spelled]
    digits = Counter(d for _, d in spelled)
    fixed_digits, fixed_ok = digits.most_common(1)[0]
    trim_ok = sum(1 for t in plain if b"." not in t or not t.endswith(b"0"))  # 0.5, 1
    trim1_ok = sum(1 for t in plain if b"." in t and (not t.endswith(b"0") or t.endswith(b".0")))  # 0.5, 1.0
    # On a tie the spelling that does not depend on the column's scale wins: the scale is the table's,
    # chosen over every part, and "fixed" renders exactly that many digits. Integers ("1") are "trim" and
    # one-decimal text ("1.0", "0.5") "trim1" at any scale; "fixed" there would make every row of this part
    # an exception beside a part with more digits (V7 human labels: "1" in train, "1.0" in validation).
    best = max([(fixed_ok, 0, "fixed"), (trim1_ok, 1, "trim1"), (trim_ok, 2, "trim")])[2]
    return best, fixed_digits if best == "fixed" else None


def learn_rules(sample, names: list[str], numeric: set[str]) -> dict:
    """Per-part rules from sampled records: terminator, per-column quoting, decimal spelling.

    Returns ``{"terminator", "quote": {name: 0|1}, "style": {name: str}, "decimals": {name: int}}``; the
    caller picks each decimal column's scale from ``decimals`` (fixed spellings) and the values.
    """
    terms = Counter(term for _, term in sample if term)
    terminator = terms.most_common(1)[0][0] if terms else b"\n"
    quote, style, decimals = {}, {}, {}
    for i, name in enumerate(names):
        texts = [fields[i] for fields, _ in sample if i < len(fields)]
        quoted = [t for t in texts if t.startswith(b'"')]
        needless = sum(1 for t in quoted if not _needs_quotes(t[1:-1].replace(b'""', b'"')))
        bare = sum(1 for t in texts if t and not t.startswith(b'"'))
        quote[name] = QUOTE_ALL if needless > bare else QUOTE_MINIMAL
        if name in numeric:
            style[name], fixed = _number_style([t for t in texts if t])
            if fixed is not None:
                decimals[name] = fixed
    return {"terminator": _TERMINATORS[terminator], "quote": quote, "style": style, "decimals": decimals}


def column_specs(names: list[str], columns: dict[str, Decoded], rules: dict, image_ids: np.ndarray | None, vocabulary):
    """Renderer column specs (``oicore._render``) for a part's columns, in file order.

    ``columns`` maps names to the part's decoded columns in file order; ``vocabulary`` is
    ``(offsets int64, bytes)`` of the release vocabulary, for ``code`` columns.
    """
    specs = []
    for name in names:
        q = rules["quote"].get(name, QUOTE_MINIMAL)
        if name in ("ImageID", "ImageId") and image_ids is not None:
            specs.append(("hex64", q, np.ascontiguousarray(image_ids, np.uint64), None, None, None))
            continue
        col = columns[name]
        nulls = None if col.nulls is None else np.ascontiguousarray(col.nulls, np.uint8)
        if col.encoding == "code":
            specs.append(("dict", q, np.ascontiguousarray(col.values, np.int32), None, vocabulary[0], vocabulary[1]))
        elif col.encoding == "dict":
            offsets, data = _string_table(col.dictionary)
            specs.append(("dict", q, np.ascontiguousarray(col.values, np.int32), None, offsets, data))
        elif col.encoding == "decimal":
            style = rules["style"].get(name) or "fixed"
            values, scale = np.ascontiguousarray(col.values, np.int64), int(col.scale)
            digits = rules.get("decimals", {}).get(name)
            if style == "fixed" and digits is not None and digits != scale:
                values, scale = _rescale(values, scale, digits)
            specs.append(("decimal", q, values, nulls, scale, style))
        elif col.encoding == "int":
            specs.append(("int", q, np.ascontiguousarray(col.values, np.int64), nulls, None, None))
        elif col.encoding == "float64":
            specs.append(("float", q, np.ascontiguousarray(col.values, np.float64), nulls, None, None))
        elif col.encoding == "strings":
            specs.append(("strings", q, None, None, np.ascontiguousarray(col.offsets, np.int64), np.frombuffer(col.data, np.uint8)))
        else:
            raise ValueError(f"column {name!r}: cannot render encoding {col.encoding!r}")
    return specs


def _rescale(values: np.ndarray, scale: int, digits: int):
    """Integers ``k`` at ``scale`` as integers at ``digits`` (a part that spells fewer or more decimals than the
    column's scale). Rows whose value has more digits than ``digits`` render wrongly, and so are exceptions."""
    if digits > scale:
        factor = 10 ** (digits - scale)
        if len(values) and np.abs(values).max() >= 2**62 // factor:
            return values, scale  # would overflow: keep the column's scale (rows become exceptions)
        return values * factor, digits
    return values // 10 ** (scale - digits), digits


def _string_table(values: list[str]):
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return offsets, np.frombuffer(b"".join(encoded), np.uint8) if encoded and offsets[-1] else np.zeros(0, np.uint8)


def find_exceptions(specs, n_rows: int, source, data_offset: int, terminator: str):
    """Compare every rendered row with the source; returns ``(rows, spans, suffix_offset)``."""
    end, exc = _render.compare(specs, n_rows, source, data_offset, terminator.encode())
    return exc, end


def render_part(out, specs, n_rows: int, prefix: bytes, terminator: str, exc_rows: np.ndarray, exc_texts: list[bytes], suffix: bytes, *, chunk_rows: int = 1 << 16):
    """Write a part's bytes to ``out`` (a binary file or anything with ``write``)."""
    out.write(prefix)
    render_rows(out, specs, n_rows, terminator, exc_rows, exc_texts, chunk_rows=chunk_rows)
    out.write(suffix)


def render_rows(out, specs, n_rows: int, terminator: str, exc_rows, exc_texts, *, chunk_rows: int = 1 << 16):
    """Write rows ``[0, n_rows)`` of ``specs``: each rendered with its terminator, or, for the rows
    ``exc_rows`` (increasing, relative to these rows), the matching raw text."""
    term = terminator.encode()
    row, k = 0, 0
    while row < n_rows:
        stop = min(row + chunk_rows, n_rows)
        while k < len(exc_rows) and exc_rows[k] < stop:
            r = int(exc_rows[k])
            if r > row:
                out.write(_render.render(specs, row, r, term))
            out.write(exc_texts[k])
            row, k = r + 1, k + 1
        if row < stop:
            out.write(_render.render(specs, row, stop, term))
            row = stop
