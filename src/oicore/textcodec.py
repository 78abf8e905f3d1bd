"""Compact, exact encodings of text columns (FORMAT.md, "Text encodings"): URL templates, MD5s, dictionaries.

``encode_text`` stores one text column and picks, for that column, the smallest of:

* ``template`` (the Flickr URL columns): each row is one of a few templates (literal text and typed fields:
  decimal integers, fixed-width hex, a choice among a few strings, a dictionary entry) or an exception kept
  as text. Every field is an array of bit-packed integers. A field that repeats one of an earlier column of
  the same rows (the landing URL's photo ID is the original URL's) is stored as the difference from that
  column's array, which costs nothing where they agree;
* ``md5`` (``OriginalMD5``): the 16 bytes of each canonical base64 MD5, raw, plus exceptions;
* ``text_dict`` (``Author``, ``Title``, other text): a code per row into a sorted dictionary of the distinct
  values. ``Author`` may be stored as a function of the user of the landing and profile URLs: a map from
  user to author, plus differences;
* ``strings`` (``oicore.columns.encode_strings``) when none of these is smaller.

Before anything is written, every row is decoded again from the bytes about to be written and compared
with the input; a difference falls back to ``strings``, so a stored column is always exact.

``decode_text`` decodes a whole column; ``text_row`` one row, reading only that row's packed values (raw,
memory-mapped) and at most one zstd frame per array, through the caller's cache.

Columns find what earlier columns of the same rows offer through a registry kept per writer: encode the
columns of one table in header order, one after another (``OriginalURL``, ``OriginalLandingURL``,
``AuthorProfileURL``, ``Author``, ..., ``Thumbnail300KURL``). Any order is exact; only the savings change.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from oicore import _textcodec as _tc
from oicore.columns import Decoded, encode_strings, ints_layout, parse_block, read_strings, string_blocks, stride_problem, strings_range
from oicore.columns import is_int as _is_int
from oicore.errors import FormatError

__all__ = ["encode_text", "decode_text", "text_decoder", "text_row", "ENCODINGS", "TEMPLATES"]

ENCODINGS = ("template", "md5", "text_dict")

# ---- the templates the encoder tries -------------------------------------------------------------------

# Field kinds: ("dec",) decimal without leading zeros, at most 15 digits; ("hex", w) exactly w lowercase hex
# digits; ("choice", values) one of a few strings; ("dict", stop) the bytes up to the next `stop`, as an
# entry of a dictionary. A field's name is its role: a field of a shared role in two columns of the same
# rows may be stored as the difference from the earlier column's.
_FIELD_KINDS = {
    "scheme": ("choice", ("https://", "http://")),
    "farm": ("dec",),
    "chost": ("dec",),
    "server": ("dec",),
    "photo": ("dec",),
    "secret": ("hex", 10),
    "size": ("choice", ("_o", "_z", "_b", "_c", "_n", "_m", "_q", "_s", "_t", "_h", "_k", "_w", "")),
    "ext": ("choice", ("jpg", "png", "gif", "jpeg")),
    "query": ("choice", ("", "?zz=1")),
    "fhost": ("choice", ("www.flickr.com", "flickr.com")),
    "user": ("dict", "/"),
    "trail": ("choice", ("/", "")),
}
_SHARED_ROLES = ("farm", "server", "photo", "user")
_STATIC = (
    "{scheme}farm{farm}.staticflickr.com/{server}/{photo}_{secret}{size}.{ext}{query}",
    "{scheme}c{chost}.staticflickr.com/{farm}/{server}/{photo}_{secret}{size}.{ext}{query}",
    "{scheme}live.staticflickr.com/{server}/{photo}_{secret}{size}.{ext}{query}",
    "",
)
TEMPLATES = {
    "OriginalURL": _STATIC,
    "Thumbnail300KURL": _STATIC,
    "OriginalLandingURL": ("{scheme}{fhost}/photos/{user}/{photo}{trail}", ""),
    "AuthorProfileURL": ("{scheme}{fhost}/people/{user}{trail}", ""),
}
MD5_COLUMNS = ("OriginalMD5",)
# text_dict columns that may be stored as a function of a dictionary field of an earlier column.
DICT_REFS = {"Author": "user"}

FRAME = 64 << 10  # raw bytes per zstd frame (FORMAT.md: frames of about 64 KiB, at most 1 MiB)
MAX_ENTRY = 256 << 10  # longer values are exceptions, not dictionary entries
ZSTD_GAIN = 0.9  # zstd is kept only when it saves at least 10%
MAX_TEMPLATES = 1 << 16
_BASE_LIMIT = 1 << 62
_E8 = np.zeros(0, np.uint8)
_E64 = np.zeros(0, np.int64)


# ---- encoding ------------------------------------------------------------------------------------------


def encode_text(writer, name: str, offsets: np.ndarray, data, *, level: int = 3, pool=None, shared: dict | None = None):
    """Store text column ``name`` with the smallest exact encoding; return ``(entry, Decoded)``.

    Parameters
    ----------
    writer : oicore.format.ContainerWriter
    name : str
        The column's name; it selects the encodings tried (URL templates, MD5, dictionary).
    offsets : numpy.ndarray
        int64, ``rows + 1`` entries from 0: row ``r`` is ``data[offsets[r]:offsets[r + 1]]``.
    data : bytes-like
        The UTF-8 bytes of every row.
    level : int
        zstd level of every compressed part.
    pool : concurrent.futures.Executor, optional
        Threads for matching, checking and compressing (the C parts release the GIL).
    shared : dict, optional
        What earlier columns of the same rows offer later ones; by default one per writer and row count.

    Returns
    -------
    entry : dict
        The column's directory entry (FORMAT.md): encoding ``template``, ``md5``, ``text_dict`` or ``strings``.
    decoded : oicore.columns.Decoded
        ``Decoded("strings", offsets, data)`` of exactly the input.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from oicore.format import ContainerWriter, Container
    >>> urls = [b"https://farm7.staticflickr.com/5769/21094803716_da3cea21b8_o.jpg"] * 3
    >>> offsets = np.cumsum([0] + [len(u) for u in urls]).astype(np.int64)
    >>> path = os.path.join(tempfile.mkdtemp(), "t.oic")
    >>> with ContainerWriter(path) as w:
    ...     entry, _ = encode_text(w, "OriginalURL", offsets, b"".join(urls))
    ...     _ = w.finish({"columns": [entry]})
    >>> entry["encoding"]
    'template'
    >>> text_row(Container(path), entry, 3, 1, {})
    'https://farm7.staticflickr.com/5769/21094803716_da3cea21b8_o.jpg'
    """
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    view = memoryview(data if data is not None else b"").cast("B")
    rows = len(offsets) - 1
    if rows < 0 or offsets[0] != 0 or int(offsets[-1]) != len(view) or (rows and (np.diff(offsets) < 0).any()):
        raise ValueError(f"column {name!r}: offsets must rise from 0 to the data's {len(view)} bytes")

    def strings():
        return encode_strings(writer, name, offsets, view, level=level, pool=pool)

    if rows == 0:
        return strings()
    text = np.frombuffer(view, np.uint8) if len(view) else np.zeros(0, np.uint8)
    job = _Job(offsets, text, level, pool, _shared_for(writer, rows) if shared is None else shared)
    if name in TEMPLATES:
        plan = _plan_template(job, name)
    elif name in MD5_COLUMNS:
        plan = _plan_md5(job)
    else:
        plan = _plan_text_dict(job, name)
    if plan is None or plan.size >= _strings_estimate(job):
        return strings()
    entry = {"name": name}
    entry.update(plan.write(writer))
    entry["rows"] = rows
    return entry, Decoded("strings", offsets=offsets, data=view)


class _Job:
    """One column being encoded: its text, the zstd level, the pool, and the registry of shared arrays."""

    def __init__(self, offsets, text, level, pool, shared):
        self.offsets = offsets
        self.text = text
        self.rows = len(offsets) - 1
        self.level = level
        self.pool = pool
        self.shared = shared

    def map(self, fn, items):
        items = list(items)
        if self.pool is None or len(items) < 2:
            return [fn(x) for x in items]
        return list(self.pool.map(fn, items))

    def compress(self, pieces) -> list:
        level = self.level
        return self.map(lambda p: (_compress(p, level), len(p)), pieces)

    def chunks(self):
        """Row ranges for parallel passes (one per worker)."""
        n = self.rows
        k = 1 if self.pool is None or n < 32768 else max(2, getattr(self.pool, "_max_workers", 2))
        cuts = [n * i // k for i in range(k + 1)]
        return [(cuts[i], cuts[i + 1]) for i in range(k) if cuts[i + 1] > cuts[i]]

    def check(self, run) -> bool:
        """``run(sink)`` over every chunk in compare mode; True when every row matched."""
        results = self.map(lambda c: run(_tc.Sink(2, c[0], c[1], cmp=self.text, cmp_off=self.offsets)), self.chunks())
        return all(st == 0 for st, _ in results)


def _compress(piece, level: int) -> bytes:
    from oicore.format import _compress as compress  # one compressor per thread and level, shared

    return compress(piece, level)


_registry: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def _shared_for(writer, rows: int) -> dict:
    """The registry of what columns of ``rows`` rows written by ``writer`` offer to later columns."""
    with _registry_lock:
        try:
            per_writer = _registry.setdefault(writer, {})
        except TypeError:  # not weak-referenceable: nothing is shared
            return {}
        return per_writer.setdefault(rows, {})


# ---- packed integers -----------------------------------------------------------------------------------


class _Ints:
    """A planned packed integer array: its descriptor (the segment still missing), the packed stream, its
    stored form (raw, or zstd frames) and what a decoder adds to each value (a decoded reference)."""

    def __init__(self, desc, stream, frames=None, add=None):
        self.desc = desc
        self.stream = stream
        self.frames = frames
        self.add = add
        if desc["bits"] == 0:
            self.size = 0
        elif frames is not None:
            self.size = sum(len(f) for f, _ in frames)
        else:
            self.size = len(stream)

    def reader(self):
        """``(stream, bits, base, add)`` for ``_tc.IntsSet``."""
        return (self.stream, self.desc["bits"], self.desc["base"], self.add)

    def write(self, writer) -> dict:
        desc = dict(self.desc)
        if desc["bits"] == 0:
            desc["segment"] = None
        elif self.frames is not None:
            desc["segment"] = writer.add_frames(self.frames)
        else:
            desc["segment"] = writer.add_raw(self.stream)
        return desc


def _block_rows(bits: int) -> int:
    """Values per zstd frame: about 64 KiB of packed values, a multiple of 8 (frames end on a byte)."""
    return max(8, (FRAME * 8 // max(bits, 1)) // 8 * 8)


def _frames_of(stream, bits: int, K: int):
    step = K * bits // 8
    return [stream[i : i + step].tobytes() for i in range(0, len(stream), step)]


def _plan_ints(job: _Job, values: np.ndarray, lo: int, hi: int, *, ref=None, add=None, allow_zstd: bool = True):
    """Frame of reference ``lo`` and bit packing of ``values`` (all in [lo, hi]), zstd frames on top when
    they save at least 10%. ``ref`` is recorded in the descriptor; ``add`` is what a decoder adds to each
    value (the referenced values). None when the values do not fit."""
    if abs(lo) >= _BASE_LIMIT or abs(hi) >= _BASE_LIMIT:
        return None
    bits = (hi - lo).bit_length()
    if bits > _tc.BITS_MAX:
        return None
    desc = {"bits": bits, "base": int(lo)}
    if ref is not None:
        desc["ref"] = ref
    if bits == 0:
        return _Ints(desc, _E8, add=add)
    values = np.ascontiguousarray(values, np.int64)
    stream = _tc.pack(values, lo, bits)
    raw_size = len(stream)
    if not allow_zstd or raw_size < 4096:
        return _Ints(desc, stream, add=add)
    # zstd at the packed width, or at whole bytes (which zstd models better), estimated on two frames.
    best = None
    for w in sorted({bits, min(-(-bits // 8) * 8, _tc.BITS_MAX)}):
        K = _block_rows(w)
        sample = values[: 2 * K]
        packed = stream[: _bits_bytes(len(sample), w)] if w == bits else _tc.pack(np.ascontiguousarray(sample), lo, w)
        est = sum(len(_compress(p, job.level)) for p in _frames_of(packed, w, K)) * len(values) / max(len(sample), 1)
        if best is None or est < best[0]:
            best = (est, w, K)
    est, w, K = best
    if est > ZSTD_GAIN * raw_size:
        return _Ints(desc, stream, add=add)
    if w != bits:
        stream = _tc.pack(values, lo, w)
    frames = job.compress(_frames_of(stream, w, K))
    if sum(len(f) for f, _ in frames) > ZSTD_GAIN * raw_size:
        return _Ints(desc, _tc.pack(values, lo, bits) if w != bits else stream, add=add)
    desc["bits"] = w
    desc["block_rows"] = K
    return _Ints(desc, stream, frames, add=add)


def _plan_field(job: _Job, v: np.ndarray, lo: int, hi: int, count: int, ref=None):
    """The smaller of storing field values ``v`` (-1 where a row lacks the field; the others in [lo, hi],
    ``count`` of them) plainly or as differences from ``ref`` = (values, descriptor); None if neither fits.
    ``v`` is filled in place."""
    rows = len(v)
    alt = None
    if ref is not None:
        diff = np.empty(rows, np.int64)
        dlo, dhi = _tc.difference(v, ref[0], diff)
        alt = _plan_ints(job, diff, dlo, dhi, ref={"ints": ref[1]}, add=ref[0])
        if alt is not None and alt.size == 0:
            return alt
    if count < rows:
        _tc.fill_missing(v, lo)
    plain = _plan_ints(job, v, lo, hi)
    if plain is None or (alt is not None and alt.size < plain.size):
        return alt
    return plain


def _bits_bytes(n: int, bits: int) -> int:
    return (n * bits + 7) // 8


class _Shared:
    """What a column offers later ones for a role: its decoded values (kept in the narrowest dtype, int64
    on access) and descriptor; for a dictionary field, also the dictionary."""

    def __init__(self, values, desc, dictionary=None):
        hi = int(values.max()) if len(values) else 0
        self._values = values.astype(np.min_scalar_type(hi)) if len(values) and int(values.min()) >= 0 else values
        self.rows = len(values)
        self.desc = desc
        self.dictionary = dictionary

    @property
    def values(self) -> np.ndarray:
        return self._values.astype(np.int64)


# ---- text frames: dictionaries and exceptions ------------------------------------------------------------


def _nul_pieces(starts: np.ndarray, payload: np.ndarray):
    """NUL-terminated entries (``starts``: where each begins, then the end) cut into frames of about 64 KiB."""
    n = len(starts) - 1
    pieces, block_rows, i = [], [], 0
    while i < n:
        stop = int(np.searchsorted(starts, starts[i] + FRAME, side="left"))
        stop = min(max(stop, i + 1), n)
        pieces.append(payload[starts[i] : starts[stop]].tobytes())
        block_rows.append(stop - i)
        i = stop
    return pieces, block_rows


def _nul_decode(pieces, block_rows, what="dictionary", path=None):
    """NUL-terminated frames back to int64 offsets (count + 1) and the entries' bytes (uint8, no NULs)."""
    count = sum(block_rows)
    offsets = np.zeros(count + 1, np.int64)
    chunks, at = [], 0
    for k, (piece, n) in enumerate(zip(pieces, block_rows)):
        local = np.empty(n + 1, np.int64)
        block = np.frombuffer(piece, np.uint8)
        if not _tc.nul_split(block, n, local):
            raise FormatError(f"{what}: frame {k} does not hold {n} NUL-terminated entries", path=path)
        offsets[at + 1 : at + n + 1] = local[1:] - np.arange(1, n + 1) + offsets[at]
        chunks.append(block[block != 0])
        at += n
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    return offsets, data


class _Dictionary:
    """A sorted dictionary planned from grouped spans: frames of NUL-terminated entries, and the entries as
    a reader decodes them (``offsets``, ``data``)."""

    def __init__(self, job, data, starts, lens, n, first):
        payload, where = _tc.gather(data, starts, lens, n, first, True)
        pieces, self.block_rows = _nul_pieces(where, payload)
        self.count = len(first)
        self.frames = job.compress(pieces)
        self.size = sum(len(f) for f, _ in self.frames)
        self.offsets, self.data = _nul_decode(pieces, self.block_rows)
        self.desc = None

    def write(self, writer):
        if self.desc is None:
            seg = writer.add_frames(self.frames) if self.frames else None
            self.desc = {"count": self.count, "segment": seg, "block_rows": self.block_rows}
        return self.desc


class _Exceptions:
    """Planned exceptions: sorted rows (packed, raw) and their texts (``strings`` frames)."""

    def __init__(self, job, rows_idx: np.ndarray):
        self.rows = np.ascontiguousarray(rows_idx, np.int64)
        n = len(self.rows)
        data, where = _tc.gather(job.text, job.offsets, None, job.rows, self.rows, False)
        self.offsets, self.data = where, data
        self.frames, self.block_rows = [], []
        if n:
            pieces = []
            for first, stop, payload in string_blocks(where, data):
                pieces.append(payload)
                self.block_rows.append(stop - first)
            self.frames = job.compress(pieces)
        lo, hi = (int(self.rows[0]), int(self.rows[-1])) if n else (0, 0)
        self.ints = _plan_ints(job, self.rows, lo, hi, allow_zstd=False)
        self.size = sum(len(f) for f, _ in self.frames) + self.ints.size

    def exc(self):
        return _tc.Exc(self.rows, self.offsets, self.data)

    def write(self, writer):
        if not len(self.rows):
            return None
        return {"rows": self.ints.write(writer), "segment": writer.add_frames(self.frames), "block_rows": self.block_rows}


class _Plan:
    """A column's entry, planned and checked: ``size`` stored bytes, ``write(writer)`` the entry's keys."""

    def __init__(self, size, write):
        self.size = size
        self.write = write


# ---- template plan -------------------------------------------------------------------------------------


def _parse_template(text: str, names: list[str]) -> list:
    """``"a{x}b"`` -> ``["a", index of x, "b"]``, adding new field names to ``names``."""
    items, i = [], 0
    while i < len(text):
        j = text.find("{", i)
        if j < 0:
            items.append(text[i:])
            break
        if j > i:
            items.append(text[i:j])
        k = text.index("}", j)
        name = text[j + 1 : k]
        if name not in names:
            names.append(name)
        items.append(names.index(name))
        i = k + 1
    return items


def _field_json(name: str) -> dict:
    kind = _FIELD_KINDS[name]
    out = {"kind": kind[0], "role": name}
    if kind[0] == "hex":
        out["width"] = kind[1]
    elif kind[0] == "choice":
        out["values"] = list(kind[1])
    return out


def _compile(templates: list, fields: list[dict], dicts=(), stops=None) -> _tc.Program:
    """A Program from templates (lists of literal str and field indexes) and field descriptions."""
    pool = bytearray()
    alt_first, alt_off, alt_len, alt_try = {}, [], [], []
    for f, fd in enumerate(fields):
        if fd["kind"] == "choice":
            alt_first[f] = len(alt_off)
            values = [v.encode("utf-8") for v in fd["values"]]
            for v in values:
                alt_off.append(len(pool))
                alt_len.append(len(v))
                pool += v
            alt_try += sorted(range(len(values)), key=lambda i: -len(values[i]))  # longest first
    slots = {f: i for i, f in enumerate(f for f, fd in enumerate(fields) if fd["kind"] == "dict")}
    ops, start = [], [0]
    for items in templates:
        for it in items:
            if isinstance(it, str):
                b = it.encode("utf-8")
                if b:
                    ops.append((0, -1, len(pool), len(b)))
                    pool += b
                continue
            fd = fields[it]
            kind = fd["kind"]
            if kind == "dec":
                ops.append((1, it, 0, 0))
            elif kind == "hex":
                ops.append((2, it, fd["width"], 0))
            elif kind == "choice":
                ops.append((3, it, alt_first[it], len(fd["values"])))
            else:
                ops.append((4, it, 0, slots[it]))
        start.append(len(ops))
    stop = [(stops or {}).get(f, -1) for f in range(len(fields))]
    return _tc.Program(np.array(start, np.int32), np.array(ops, np.int32).reshape(-1, 4), bytes(pool),
                       np.array(alt_off, np.int32), np.array(alt_len, np.int32), np.array(alt_try, np.int32),
                       np.array(stop, np.int32), len(fields), list(dicts))


def _plan_template(job: _Job, name: str) -> _Plan | None:
    rows, shared = job.rows, job.shared
    names: list[str] = []
    templates = [_parse_template(t, names) for t in TEMPLATES[name]]
    fields = [_field_json(n) for n in names]
    dict_fields = [f for f, fd in enumerate(fields) if fd["kind"] == "dict"]
    stops = {f: ord(_FIELD_KINDS[names[f]][1]) for f in dict_fields}
    nf = len(fields)
    prog = _compile(templates, fields, [(np.zeros(1, np.int64), _E8)] * len(dict_fields), stops)
    tpl = np.empty(rows, np.int32)
    vals = np.empty((nf, rows), np.int64)
    lens = np.empty((len(dict_fields), rows), np.int32)
    chunks = job.chunks()
    stats = [np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min, 0] * nf, np.int64) for _ in chunks]
    job.map(lambda i: prog.match(job.text, job.offsets, chunks[i][0], chunks[i][1], tpl, vals, lens, stats[i]), range(len(chunks)))
    st = np.stack(stats).reshape(len(chunks), nf, 3)
    field_stats = [(int(st[:, f, 0].min()), int(st[:, f, 1].max()), int(st[:, f, 2].sum())) for f in range(nf)]

    # Dictionary fields: codes into this column's sorted dictionary, or into an earlier column's.
    dictionaries = {}
    for slot, f in enumerate(dict_fields):
        role = fields[f]["role"]
        reg = shared.get(("ints", role))
        if reg is not None and reg.dictionary is not None and reg.rows == rows:
            # An earlier column's dictionary: most rows hold the entry that column has in the same row.
            d = reg.dictionary
            codes, misses = _tc.same_as(job.text, vals[f], lens[slot], rows, reg.values, d.offsets, d.data)
            if misses:
                rest = np.where(codes < 0, vals[f], -1)
                own, first = _tc.group(job.text, rest, lens[slot], rows, MAX_ENTRY)
                entries = _tc.gather(job.text, rest, lens[slot], rows, first, False)
                tr = _tc.translate(d.offsets, d.data, entries[1], entries[0])
                codes = np.where(own >= 0, tr[np.maximum(own, 0)], codes).astype(np.int32)
        else:
            codes, first = _tc.group(job.text, vals[f], lens[slot], rows, MAX_ENTRY)
            d = _Dictionary(job, job.text, vals[f], lens[slot], rows, first)
        lost = (vals[f] >= 0) & (codes < 0)
        if lost.any():  # a NUL, too long, or not in the earlier dictionary: the row becomes an exception
            tpl[lost] = -1
            vals[:, lost] = -1
        vals[f] = np.where(vals[f] >= 0, codes, -1)
        lo, hi, count = _tc.min_max(vals[f], True)
        field_stats[f] = (lo, hi, count)
        dictionaries[f] = d

    exc = tpl < 0
    n_exc = int(np.count_nonzero(exc))
    if n_exc * 2 > rows:
        return None
    counts = np.bincount(tpl[~exc], minlength=len(templates)) if n_exc < rows else np.zeros(len(templates), np.int64)
    kept = [t for t in range(len(templates)) if counts[t]]
    if not kept:
        return None
    remap = np.full(len(templates) + 1, len(kept), np.int64)  # remap[-1]: an exception
    for i, t in enumerate(kept):
        remap[t] = i
    codes = remap[tpl]
    used = sorted({it for t in kept for it in templates[t] if isinstance(it, int)})
    index = {f: i for i, f in enumerate(used)}
    out_templates = [[it if isinstance(it, str) else index[it] for it in templates[t]] for t in kept]
    if n_exc:  # rows that became exceptions may have lowered a count: recount
        for f in used:
            field_stats[f] = _tc.min_max(vals[f], True)

    plans, registered = [], []
    for f in used:
        fd = fields[f]
        role = fd["role"]
        lo, hi, count = field_stats[f]
        reg = shared.get(("ints", role)) if role in _SHARED_ROLES else None
        ref = None
        if reg is not None and reg.rows == rows and (fd["kind"] != "dict" or reg.dictionary is dictionaries[f]):
            ref = (reg.values, reg.desc)
        plan = _plan_field(job, vals[f], lo, hi, count, ref)
        if plan is None:
            return None
        plans.append(plan)
        if role in _SHARED_ROLES and plan.add is None and ("ints", role) not in shared:
            registered.append(f)
    lo, hi, _ = _tc.min_max(codes)
    tpl_plan = _plan_ints(job, codes, lo, hi)
    exceptions = _Exceptions(job, np.flatnonzero(exc))
    dict_list = [dictionaries[f] for f in used if f in dictionaries]

    # The check: decode every row from the planned bytes and compare it with the input.
    check = _compile(out_templates, [fields[f] for f in used], [(d.offsets, d.data) for d in dict_list])
    tpl_set = _tc.IntsSet([tpl_plan.reader()])
    field_set = _tc.IntsSet([p.reader() for p in plans])
    exc_c = exceptions.exc()
    if not job.check(lambda sink: check.decode(sink, tpl_set, field_set, exc_c)):
        return None

    size = sum(p.size for p in plans) + tpl_plan.size + exceptions.size
    size += sum(d.size for d in set(dict_list) if d.desc is None)  # an earlier column's is written already
    registry_values = {f: _tc.unpack(plans[index[f]].stream, rows, plans[index[f]].desc["bits"], plans[index[f]].desc["base"]) for f in registered}

    def write(writer):
        out = []
        for f, plan in zip(used, plans):
            fd = dict(fields[f])
            if fd["kind"] == "dict":
                fd["dictionary"] = dictionaries[f].write(writer)
            fd["ints"] = plan.write(writer)
            out.append(fd)
        entry = {"encoding": "template", "templates": out_templates, "fields": out,
                 "template": tpl_plan.write(writer), "exceptions": exceptions.write(writer)}
        for fd, f in zip(out, used):
            if f in registered:
                shared.setdefault(("ints", fd["role"]), _Shared(registry_values[f], fd["ints"], dictionaries.get(f)))
        return entry

    return _Plan(size, write)


# ---- md5 plan ------------------------------------------------------------------------------------------


def _plan_md5(job: _Job) -> _Plan | None:
    rows = job.rows
    md5 = np.empty(16 * rows, np.uint8)
    exc = np.empty(rows, np.uint8)
    misses = sum(job.map(lambda c: _tc.md5_encode(job.text, job.offsets, c[0], c[1], md5, exc), job.chunks()))
    if misses * 2 > rows:
        return None
    exceptions = _Exceptions(job, np.flatnonzero(exc))
    exc_c = exceptions.exc()
    if not job.check(lambda sink: _tc.md5_decode(sink, md5, exc_c)):
        return None

    def write(writer):
        return {"encoding": "md5", "segment": writer.add_raw(md5), "exceptions": exceptions.write(writer)}

    return _Plan(len(md5) + exceptions.size, write)


# ---- text_dict plan --------------------------------------------------------------------------------------


def _plan_text_dict(job: _Job, name: str) -> _Plan | None:
    rows, shared = job.rows, job.shared
    codes, first = _tc.group(job.text, job.offsets, None, rows, MAX_ENTRY)
    count = len(first)
    if count > 0.9 * rows:
        return None
    codes = codes.astype(np.int64)
    exc = codes < 0
    n_exc = int(np.count_nonzero(exc))
    if n_exc * 2 > rows:
        return None
    if n_exc:
        codes[exc] = count
    d = _Dictionary(job, job.text, job.offsets, None, rows, first)
    lo, hi, _ = _tc.min_max(codes)
    best = _plan_ints(job, codes, lo, hi)
    best_map = None
    role = DICT_REFS.get(name)
    reg = shared.get(("ints", role)) if role else None
    if best is not None and reg is not None and reg.dictionary is not None and reg.rows == rows:
        # A function of the user: map[user] is the value of the user's first row; store the differences.
        users = reg.values
        n_users = reg.dictionary.count
        if len(users) and 0 <= int(users.min()) and int(users.max()) < n_users:
            first_row = np.full(n_users, -1, np.int64)
            first_row[users[::-1]] = np.arange(rows - 1, -1, -1)  # any choice is exact; this is the first row
            mapping = np.where(first_row >= 0, codes[np.maximum(first_row, 0)], 0)
            map_plan = _plan_ints(job, mapping, int(mapping.min()), int(mapping.max()))
            if map_plan is not None:
                mapped = mapping[users]
                diff = np.empty(rows, np.int64)
                dlo, dhi = _tc.difference(codes, mapped, diff)
                plan = _plan_ints(job, diff, dlo, dhi, ref={"ints": reg.desc}, add=mapped)
                if plan is not None and plan.size + map_plan.size < best.size:
                    best, best_map = plan, (map_plan, n_users, mapping)
    if best is None:
        return None
    exceptions = _Exceptions(job, np.flatnonzero(exc))
    codes_set = _tc.IntsSet([best.reader()])
    exc_c = exceptions.exc()
    if not job.check(lambda sink: _tc.dict_decode(sink, codes_set, d.offsets, d.data, exc_c)):
        return None
    if best_map is not None:
        map_plan, n_users, mapping = best_map
        if not np.array_equal(_tc.unpack(map_plan.stream, n_users, map_plan.desc["bits"], map_plan.desc["base"]), mapping):
            return None
    size = best.size + d.size + exceptions.size + (best_map[0].size if best_map else 0)

    def write(writer):
        codes_desc = best.write(writer)
        if best_map is not None:
            codes_desc["ref"] = dict(codes_desc["ref"], map=best_map[0].write(writer), count=best_map[1])
        return {"encoding": "text_dict", "dictionary": d.write(writer), "codes": codes_desc,
                "exceptions": exceptions.write(writer)}

    return _Plan(size, write)


def _strings_estimate(job: _Job) -> float:
    """The bytes ``encode_strings`` would store, from up to 8 of its blocks spread over the column."""
    offsets, text, rows = job.offsets, job.text, job.rows
    total = int(offsets[-1]) + 4 * rows + 8 * (int(offsets[-1]) // FRAME + 1)
    raw = comp = 0
    r = 0
    for i in range(8):
        r0 = max(rows * i // 8, r)
        if r0 >= rows:
            break
        r = min(max(int(np.searchsorted(offsets, offsets[r0] + FRAME, side="right")) - 1, r0 + 1), rows)
        local = (offsets[r0 : r + 1] - offsets[r0]).astype(np.uint32)
        payload = np.uint32(r - r0).tobytes() + local.tobytes() + text[offsets[r0] : offsets[r]].tobytes()
        raw += len(payload)
        comp += len(_compress(payload, job.level))
    return total * comp / max(raw, 1)


# ---- reading: checks of the directory entry --------------------------------------------------------------


def _fail(container, what, reason, segment=None):
    offset = None
    if _is_int(segment) and 0 <= segment < len(container.segments):
        offset = container.segments[segment]["offset"]
    raise FormatError(f"{what}: {reason}", path=container.path, byte_offset=offset)


def _block_count(container, seg: int) -> int:
    count = getattr(container, "block_count", None)
    return count(seg) if count is not None else len(container.segments[seg]["blocks"])


def _raw_length(container, seg: int, k: int) -> int:
    block = getattr(container, "block", None)
    return int(block(seg, k)[1]) if block is not None else container.segments[seg]["blocks"][k][1]


def _segment(container, seg, what, codec=None):
    if not _is_int(seg) or not 0 <= seg < len(container.segments):
        _fail(container, what, f"segment {seg!r} is not one of the file's {len(container.segments)}")
    if codec is not None and container.segments[seg]["codec"] != codec:
        _fail(container, what, f"segment {seg} is {container.segments[seg]['codec']}, expected {codec}", seg)
    return seg


def _check_ints(container, desc, n: int, what: str, *, allow_ref: bool = True, allow_stride: bool = False):
    """Checks a packed-integer descriptor for ``n`` values: ``(bits, base, segment or None, block_rows, ref)``.
    ``stride`` and ``shift`` are allowed only in columns' ints (``allow_stride``), on raw segments."""
    if not isinstance(desc, dict):
        _fail(container, what, "expected a packed-integer object")
    bits, base, seg = desc.get("bits"), desc.get("base"), desc.get("segment")
    if not _is_int(bits) or not 0 <= bits <= _tc.BITS_MAX:
        _fail(container, what, f"bits {bits!r} outside 0..{_tc.BITS_MAX}")
    problem = stride_problem(desc, bits, allow_stride)
    if problem:
        _fail(container, what, problem)
    stride = ints_layout(desc)[0]
    if not _is_int(base) or abs(base) >= _BASE_LIMIT:
        _fail(container, what, f"base {base!r} is not an integer below 2^62")
    K = 0
    if bits and seg is None:
        _fail(container, what, f"{bits}-bit values without a segment")
    if bits:
        _segment(container, seg, what)
        info = container.segments[seg]
        if info["codec"] == "raw":
            if info["length"] != _bits_bytes(n, stride):
                _fail(container, what, f"expected {_bits_bytes(n, stride)} bytes of {n} {bits}-bit values every {stride} bits, segment {seg} holds {info['length']}", seg)
        elif stride != bits:
            _fail(container, what, "a stride on a zstd segment")
        else:
            K = desc.get("block_rows")
            if not _is_int(K) or K < 8 or K % 8:
                _fail(container, what, f"block_rows {K!r} is not a positive multiple of 8", seg)
            frames = _block_count(container, seg)
            if frames != -(-n // K):
                _fail(container, what, f"expected {-(-n // K)} frames of {K} values, segment {seg} has {frames}", seg)
            for k in range(frames):
                raw, want = _raw_length(container, seg, k), _bits_bytes(min(K, n - k * K), bits)
                if raw != want:
                    _fail(container, what, f"frame {k} of segment {seg} holds {raw} bytes, expected {want}", seg)
    ref = desc.get("ref")
    if ref is not None:
        if not allow_ref or not isinstance(ref, dict) or "ints" not in ref:
            _fail(container, what, "a reference must be an object with 'ints', and cannot be nested")
        _check_ints(container, ref["ints"], n, what + " reference", allow_ref=False)
        if ref.get("map") is not None:
            count = ref.get("count")
            if not _is_int(count) or count < 0:
                _fail(container, what, f"a map needs its count, got {count!r}")
            _check_ints(container, ref["map"], count, what + " map", allow_ref=False)
    return bits, base, (seg if bits else None), K, ref


def _read_ints(container, desc, n: int, what: str, *, allow_ref: bool = True, allow_stride: bool = False) -> np.ndarray:
    """A whole packed-integer array as int64, its reference (and map) added."""
    if allow_stride and isinstance(desc, dict) and ("stride" in desc or "shift" in desc):  # a field of records (no ref)
        bits, base, seg, _, _ = _check_ints(container, desc, n, what, allow_ref=False, allow_stride=True)
        stride, shift = ints_layout(desc)
        return _tc.unpack_at(np.frombuffer(container.data(seg), np.uint8), shift, n, bits, base, stride)
    stream, bits, base, add = _ints_parts(container, desc, n, what, allow_ref=allow_ref)
    out = _tc.unpack(stream, n, bits, base)
    return out + add if add is not None else out


def _ints_parts(container, desc, n: int, what: str, *, allow_ref: bool = True):
    """``(stream, bits, base, add)`` of a packed-integer array: its packed bytes and the decoded reference."""
    bits, base, seg, K, ref = _check_ints(container, desc, n, what, allow_ref=allow_ref)
    stream = _E8 if seg is None else np.frombuffer(container.data(seg), np.uint8)
    add = None
    if ref is not None:
        add = _read_ints(container, ref["ints"], n, what + " reference", allow_ref=False)
        if ref.get("map") is not None:
            count = ref["count"]
            if len(add) and (int(add.min()) < 0 or int(add.max()) >= count):
                _fail(container, what, f"a reference outside its map of {count} entries")
            add = _read_ints(container, ref["map"], count, what + " map", allow_ref=False)[add]
    return stream, bits, base, add


def _ints_reader(container, desc, n: int, what: str, cache, *, allow_ref: bool = True):
    bits, base, seg, K, ref = _check_ints(container, desc, n, what, allow_ref=allow_ref)
    ref_reader = map_reader = None
    if ref is not None:
        ref_reader = _ints_reader(container, ref["ints"], n, what, cache, allow_ref=False)
        if ref.get("map") is not None:
            map_reader = _ints_reader(container, ref["map"], ref["count"], what, cache, allow_ref=False)
    return _tc.Ints(container, cache, bits, base, n, seg, K, ref_reader, map_reader)


def _check_rows(container, entry, rows, what):
    if entry.get("encoding") in ENCODINGS and entry.get("rows") != rows:
        _fail(container, what, f"the entry holds {entry.get('rows')!r} rows, the table {rows}")


def _check_blocks(container, desc, what):
    """A text-frames object (``segment``, ``block_rows``): ``(segment or None, block_rows)``."""
    if not isinstance(desc, dict):
        _fail(container, what, "expected an object")
    block_rows, seg = desc.get("block_rows"), desc.get("segment")
    if not isinstance(block_rows, list) or not all(_is_int(b) and b >= 0 for b in block_rows):
        _fail(container, what, "block_rows must be a list of counts")
    if seg is None:
        if block_rows:
            _fail(container, what, "frames without a segment")
        return None, block_rows
    _segment(container, seg, what, "zstd")
    if _block_count(container, seg) != len(block_rows):
        _fail(container, what, f"{len(block_rows)} frame counts for {_block_count(container, seg)} frames", seg)
    for k, n in enumerate(block_rows):
        # Every entry takes at least one byte of its frame: this bounds what a damaged count can allocate.
        if n > _raw_length(container, seg, k):
            _fail(container, what, f"frame {k} claims {n} entries in {_raw_length(container, seg, k)} bytes", seg)
    return seg, block_rows


def _dictionary(container, desc, what):
    seg, block_rows = _check_blocks(container, desc, what)
    count = desc.get("count")
    if not _is_int(count) or count != sum(block_rows):
        _fail(container, what, f"count {count!r} differs from its frames' {sum(block_rows)} entries", seg)
    return seg, block_rows, count


def _read_dictionary(container, desc, what):
    seg, block_rows, count = _dictionary(container, desc, what)
    pieces = [container.frame_data(seg, k) for k in range(len(block_rows))] if seg is not None else []
    return _nul_decode(pieces, block_rows, what, container.path)


def _exception_parts(container, desc, what):
    """Checked exceptions: ``(rows descriptor, segment, block_rows, count)``, or None."""
    if desc is None:
        return None
    seg, block_rows = _check_blocks(container, desc, what)
    if seg is None:
        _fail(container, what, "exceptions without a segment")
    return desc.get("rows"), seg, block_rows, sum(block_rows)


def _read_exceptions(container, desc, rows, what) -> _tc.Exc:
    parts = _exception_parts(container, desc, what)
    if parts is None:
        return _tc.Exc(_E64, np.zeros(1, np.int64), _E8)
    rows_desc, seg, block_rows, count = parts
    exc_rows = _read_ints(container, rows_desc, count, what + " rows", allow_ref=False)
    if count and (int(exc_rows[0]) < 0 or int(exc_rows[-1]) >= rows or (np.diff(exc_rows) <= 0).any()):
        _fail(container, what, f"exception rows must rise strictly within 0..{rows - 1}", seg)
    off, data = read_strings(container, {"segment": seg, "block_rows": block_rows}, count, what)
    return _tc.Exc(exc_rows, off, np.frombuffer(data, np.uint8))


def _exception_reader(container, desc, rows, what, cache):
    parts = _exception_parts(container, desc, what)
    if parts is None:
        return None
    rows_desc, seg, block_rows, count = parts
    exc_rows = _read_ints(container, rows_desc, count, what + " rows", allow_ref=False)
    if count and (int(exc_rows[0]) < 0 or int(exc_rows[-1]) >= rows or (np.diff(exc_rows) <= 0).any()):
        _fail(container, what, f"exception rows must rise strictly within 0..{rows - 1}", seg)
    ints = _ints_reader(container, rows_desc, count, what + " rows", cache, allow_ref=False)
    return _tc.Exceptions(ints, _tc.Blocks(container, cache, seg, block_rows, 0, _strings_parser(container, what)))


def _strings_parser(container, what):
    return lambda payload: parse_block(payload, what, container.path)


def _template_parts(container, entry, what):
    """Checked templates and fields: ``(templates, fields)``."""
    templates, fields = entry.get("templates"), entry.get("fields")
    if not isinstance(fields, list) or len(fields) > _tc.MAX_FIELDS:
        _fail(container, what, f"expected a list of at most {_tc.MAX_FIELDS} fields")
    if not isinstance(templates, list) or not 0 < len(templates) < MAX_TEMPLATES:
        _fail(container, what, "expected a non-empty list of templates")
    for fd in fields:
        kind = fd.get("kind") if isinstance(fd, dict) else None
        if kind == "hex" and not (_is_int(fd.get("width")) and 1 <= fd["width"] <= 13):
            _fail(container, what, f"a hex field of width {fd.get('width')!r}")
        elif kind == "choice" and not (isinstance(fd.get("values"), list) and fd["values"] and all(isinstance(v, str) for v in fd["values"])):
            _fail(container, what, "a choice field needs a non-empty list of strings")
        elif kind == "dict" and not isinstance(fd.get("dictionary"), dict):
            _fail(container, what, "a dict field needs its dictionary")
        elif kind not in ("dec", "hex", "choice", "dict"):
            _fail(container, what, f"unknown field kind {kind!r}")
    for t in templates:
        if not isinstance(t, list):
            _fail(container, what, "a template must be a list")
        seen = set()
        for it in t:
            if isinstance(it, str):
                continue
            if not _is_int(it) or not 0 <= it < len(fields) or it in seen:
                _fail(container, what, f"template item {it!r} is not a field index (0..{len(fields) - 1}) used once")
            seen.add(it)
    return templates, fields


# ---- decoding -------------------------------------------------------------------------------------------


def _run_passes(container, what, lo, hi, run, pool=None) -> tuple[np.ndarray, bytes]:
    """Pass 0 (lengths) then pass 1 (write) of a decoder ``run(sink)`` over rows ``[lo, hi)``, cut into row
    chunks (run in ``pool``). Returns the rows' offsets (from 0) and bytes."""
    rows = hi - lo
    k = 1 if pool is None or rows < 32768 else max(2, getattr(pool, "_max_workers", 2))
    cuts = [lo + rows * i // k for i in range(k + 1)]
    chunks = [(cuts[i], cuts[i + 1]) for i in range(k)]
    lens = np.empty(rows, np.int64)

    def each(fn):
        results = list(pool.map(fn, chunks)) if pool is not None and k > 1 else [fn(c) for c in chunks]
        for st, bad in results:
            if st != 0:
                _fail(container, what, f"row {bad}: {_tc.STATUS[st]}")

    each(lambda c: run(_tc.Sink(0, c[0], c[1], lens[c[0] - lo : c[1] - lo])))
    offsets = np.zeros(rows + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    out = np.empty(int(offsets[-1]), np.uint8)
    each(lambda c: run(_tc.Sink(1, c[0], c[1], offsets[c[0] - lo : c[1] - lo + 1], out)))
    return offsets, out.tobytes()


def decode_text(container, entry: dict, rows: int, *, pool=None) -> tuple[np.ndarray, bytes]:
    """A whole text column: int64 offsets (``rows + 1``) and the UTF-8 bytes.

    Reads ``strings`` columns too. ``pool`` (an executor) decodes row ranges in parallel. A structural
    problem raises ``FormatError``.
    """
    return text_decoder(container, entry, rows, pool=pool)(0, rows)


def text_decoder(container, entry: dict, rows: int, *, pool=None):
    """``decode(lo, hi) -> (offsets, bytes)``: rows ``[lo, hi)`` of a text column (offsets from 0). The
    column's packed values, dictionaries and exceptions are read once, here; each call decodes only its rows,
    so a long column can be exported a chunk at a time. Structural problems raise ``FormatError``."""
    what = f"column {entry.get('name')!r}" if isinstance(entry, dict) else "column"
    if not isinstance(entry, dict):
        _fail(container, what, "expected an object")
    enc = entry.get("encoding")
    _check_rows(container, entry, rows, what)

    def passes(run):
        def decode(lo: int, hi: int):
            if not 0 <= lo <= hi <= rows:
                _fail(container, what, f"rows [{lo}, {hi}) outside its {rows}")
            try:
                return _run_passes(container, what, lo, hi, run, pool)
            except (KeyError, TypeError, ValueError, IndexError) as e:
                if isinstance(e, FormatError):
                    raise
                _fail(container, what, f"inconsistent entry ({type(e).__name__}: {e})")

        return decode

    try:
        if enc == "strings":
            seg, block_rows = _check_blocks(container, entry, what)
            if seg is None:
                if rows:
                    _fail(container, what, f"no frames for {rows} rows")
                return lambda lo, hi: (np.zeros(hi - lo + 1, np.int64), b"")
            return lambda lo, hi: strings_range(container, entry, rows, lo, hi, what)
        if enc == "md5":
            seg = _segment(container, entry.get("segment"), what, "raw")
            if container.segments[seg]["length"] != 16 * rows:
                _fail(container, what, f"expected {16 * rows} bytes of MD5s, segment {seg} holds {container.segments[seg]['length']}", seg)
            md5 = np.frombuffer(container.raw(seg), np.uint8)
            exc = _read_exceptions(container, entry.get("exceptions"), rows, what)
            return passes(lambda sink: _tc.md5_decode(sink, md5, exc))
        if enc == "text_dict":
            dict_off, dict_data = _read_dictionary(container, entry.get("dictionary"), what + " dictionary")
            codes = _tc.IntsSet([_ints_parts(container, entry.get("codes"), rows, what + " codes")])
            exc = _read_exceptions(container, entry.get("exceptions"), rows, what)
            return passes(lambda sink: _tc.dict_decode(sink, codes, dict_off, dict_data, exc))
        if enc == "template":
            templates, fields = _template_parts(container, entry, what)
            tpl = _tc.IntsSet([_ints_parts(container, entry.get("template"), rows, what + " template codes")])
            parts, dicts = [], []
            for i, fd in enumerate(fields):
                parts.append(_ints_parts(container, fd.get("ints"), rows, f"{what} field {i}"))
                if fd["kind"] == "dict":
                    dicts.append(_read_dictionary(container, fd["dictionary"], f"{what} field {i} dictionary"))
            field_set = _tc.IntsSet(parts)
            exc = _read_exceptions(container, entry.get("exceptions"), rows, what)
            prog = _compile(templates, fields, dicts)
            return passes(lambda sink: prog.decode(sink, tpl, field_set, exc))
    except (KeyError, TypeError, ValueError, IndexError) as e:
        if isinstance(e, FormatError):
            raise
        _fail(container, what, f"inconsistent entry ({type(e).__name__}: {e})")
    _fail(container, what, f"unknown text encoding {enc!r}")


def text_row(container, entry: dict, rows: int, row: int, cache: dict) -> str:
    """Row ``row`` of a text column, decoding only what that row needs.

    ``cache`` is a dict-like the caller keeps per open file (it may evict entries): it holds a prepared
    reader per column and decoded zstd frames, so that a warm lookup costs a few microseconds.
    """
    if not 0 <= row < rows:
        raise IndexError(f"row {row} outside 0..{rows - 1}")
    key = ("oic-text-reader", id(entry))
    hit = cache.get(key)
    if hit is None or hit[0] is not entry:
        hit = (entry, _prepare(container, entry, rows, cache))
        cache[key] = hit
    return hit[1].row(row)


def _prepare(container, entry, rows, cache):
    what = f"column {entry.get('name')!r}" if isinstance(entry, dict) else "column"
    if not isinstance(entry, dict):
        _fail(container, what, "expected an object")
    enc = entry.get("encoding")
    _check_rows(container, entry, rows, what)
    try:
        if enc == "strings":
            seg, block_rows = _check_blocks(container, entry, what)
            if sum(block_rows) != rows:
                _fail(container, what, f"its frames hold {sum(block_rows)} rows, expected {rows}", seg)
            return _tc.StringsRows(_tc.Blocks(container, cache, seg if seg is not None else -1, block_rows, 0, _strings_parser(container, what)))
        if enc == "md5":
            seg = _segment(container, entry.get("segment"), what, "raw")
            if container.segments[seg]["length"] != 16 * rows:
                _fail(container, what, f"expected {16 * rows} bytes of MD5s, segment {seg} holds {container.segments[seg]['length']}", seg)
            return _tc.Md5Rows(container, seg, _exception_reader(container, entry.get("exceptions"), rows, what, cache))
        if enc == "text_dict":
            seg, block_rows, count = _dictionary(container, entry.get("dictionary"), what + " dictionary")
            values = _tc.Blocks(container, cache, seg if seg is not None else -1, block_rows, 1)
            codes = _ints_reader(container, entry.get("codes"), rows, what + " codes", cache)
            return _tc.DictRows(codes, values, _exception_reader(container, entry.get("exceptions"), rows, what, cache))
        if enc == "template":
            templates, fields = _template_parts(container, entry, what)
            tpl = _ints_reader(container, entry.get("template"), rows, what + " template codes", cache)
            readers, dicts = [], []
            for i, fd in enumerate(fields):
                readers.append(_ints_reader(container, fd.get("ints"), rows, f"{what} field {i}", cache))
                if fd["kind"] == "dict":
                    seg, block_rows, count = _dictionary(container, fd["dictionary"], f"{what} field {i} dictionary")
                    dicts.append(_tc.Blocks(container, cache, seg if seg is not None else -1, block_rows, 1))
            prog = _compile(templates, fields, [(np.zeros(1, np.int64), _E8)] * len(dicts))
            exc = _exception_reader(container, entry.get("exceptions"), rows, what, cache)
            return _tc.TemplateRows(container, prog, tpl, readers, dicts, exc)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        if isinstance(e, FormatError):
            raise
        _fail(container, what, f"inconsistent entry ({type(e).__name__}: {e})")
    _fail(container, what, f"unknown text encoding {enc!r}")
