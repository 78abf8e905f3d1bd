"""``read_csv``: any supported Open Images CSV into a typed pyarrow table, fast and exact.

The file is read in blocks and cut into chunks of whole records. The first
chunk is cut exactly (``_csv.find_split``: the last terminator outside
quotes); a regular file is then mapped whole and cut at the last LF of each
block without looking at quotes, and a parse that finds the cut inside a
quoted field says so, and reading goes on from there cutting exactly. Each
chunk is parsed by C code with the GIL released, on a pool of threads, each
with its own vocabularies and output regions, and the per-chunk buffers become
the chunks of the table's columns without a copy. Memory is the output columns
plus a few blocks of text, whatever the file's size.

Reading conventions (lines, columns, byte offsets of errors) are those of the
README's "CSV dialect" section; ``oicore.reference`` is the slow twin used as
the test oracle.
"""

from __future__ import annotations

import codecs
import mmap
import os
import stat
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from oicore import _csv, schema
from oicore.errors import CSVError, UnknownHeaderError
from oicore.schema import ColumnType, HeaderRule
from oicore.threads import resolve as _resolve_threads

__all__ = ["read_csv", "DEFAULT_BLOCK_SIZE"]

DEFAULT_BLOCK_SIZE = 4 << 20
_BOM = codecs.BOM_UTF8
_S = _csv.STATUS


def read_csv(path, kind: str | None = None, *, block_size: int | None = None, threads: int | None = None):
    """Read an Open Images CSV file into a :class:`pyarrow.Table`.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        The file to read.
    kind : str, optional
        One of ``oicore.schema.KINDS`` (``"images"``, ``"image_labels"``,
        ``"boxes"``, ``"class_descriptions"``, ``"class_lists"``, ``"points"``,
        ``"vrd"``, ``"segmentation"``, ``"relationship_descriptions"``,
        ``"attribute_descriptions"``, ``"relationship_triplets"`` or
        ``"strings"``). By default the kind is recognised from the header.
    block_size : int, optional
        Bytes read at a time (default 4 MiB). Records longer than a block are
        read whole.
    threads : int, optional
        Parsing threads; default ``oicore.threads.get_num_threads()``.

    Returns
    -------
    pyarrow.Table
        Columns in file order with the types of ``oicore.schema``: ImageID as
        ``uint64``, labels and sources as ``dictionary<int32, string>``,
        numbers as ``float64``/``int*`` (null where an optional field is
        empty), text exactly as in the file. ``table.schema.metadata[b"oicore.kind"]``
        names the kind; ``b"oicore.data_offset"`` is the byte offset of the first
        record after the header (and BOM); ``b"oicore.checkpoints"`` holds int64
        ``(row, byte offset)`` pairs where records start (one per block read), so a
        later pass over the text can start in the middle.

    Raises
    ------
    CSVError
        The file breaks the dialect or a column's grammar; ``line``,
        ``column``, ``column_name`` and ``byte_offset`` say where.
    UnknownHeaderError
        The header matches no known kind.

    Examples
    --------
    >>> import oicore
    >>> t = oicore.read_csv("train/annotations-human-bbox.csv")  # doctest: +SKIP
    >>> t.column("ImageID").type  # doctest: +SKIP
    DataType(uint64)
    """
    if block_size is None:
        block_size = DEFAULT_BLOCK_SIZE
    block_size = int(block_size)
    if block_size < 1:
        raise ValueError(f"expected block_size >= 1, got {block_size}")
    nthreads = _resolve_threads(threads)
    if kind is not None:
        schema.kind(kind)  # a clear ValueError for an unknown name

    if hasattr(path, "readinto") or hasattr(path, "read"):
        return _Reader(path, getattr(path, "name", None), kind, block_size, nthreads).run()
    with open(path, "rb") as f:
        return _Reader(f, os.fspath(path), kind, block_size, nthreads).run()


class _Chunk:
    """A run of whole records and where it sits in the file."""

    __slots__ = ("buf", "start", "end", "file_offset", "at_eof", "owner", "guessed")

    def __init__(self, buf, start, end, file_offset, at_eof, owner=None, guessed=False):
        # buf[start:end] is parsed; buf keeps _csv.PAD readable bytes after end for the fast path.
        # buf[0] is at file_offset in the file; owner is the _FileMap behind buf, if any. A `guessed`
        # end is the last LF, found without looking at quotes: the parse says NEED_MORE if it
        # was inside a quoted field.
        self.buf, self.start, self.end, self.file_offset, self.at_eof = buf, start, end, file_offset, at_eof
        self.owner = owner
        self.guessed = guessed


def _read_full(f, view) -> int:
    """Fill ``view`` from ``f``; fewer bytes only at end of file."""
    got = 0
    readinto = getattr(f, "readinto", None)
    while got < len(view):
        if readinto is not None:
            n = readinto(view[got:])
        else:
            data = f.read(len(view) - got)
            n = len(data)
            view[got : got + n] = data
        if not n:
            break
        got += n
    return got


class _FileMap:
    """A regular file mapped whole, read-only: chunks are slices of it, without copies.

    Pages of the prefix already parsed are given back (MADV_DONTNEED) a batch
    at a time, so the process holds a few blocks of the file, and the mapping
    is changed (which interrupts every thread of the process to flush its
    TLB) a few times per read instead of once per chunk.
    """

    def __init__(self, f, size):
        self.map = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
        self.view = memoryview(self.map)
        self.released = 0  # pages before this offset are given back
        self.batch = min(max(size // 16, 4 << 20), 32 << 20)  # bytes given back at a time

    def release_before(self, offset):
        end = offset - offset % mmap.PAGESIZE
        if end - self.released >= self.batch:
            if hasattr(self.map, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
                self.map.madvise(mmap.MADV_DONTNEED, self.released, end - self.released)
            self.released = end

    def close(self):
        try:
            self.view.release()
            self.map.close()
        except BufferError:  # a view still refers to it (an error's chunk): it closes when that goes
            pass


def _mapped_chunks(f, filemap, block_size, size, pos=0, guess=False):
    """_chunks for a regular file: slices of its map (_FileMap) instead of copies.

    The last piece is read into a padded buffer: a map cannot be read past the
    end of the file. With ``guess``, chunks after the first end at their
    slice's last LF (no pass over it in this thread; see _Chunk.guessed).
    """
    view = filemap.view
    first = True
    while True:
        want = block_size
        while size - pos > want + _csv.PAD:
            guessed = guess and not first  # the first chunk holds the header: cut exactly
            split = (_csv.after_last_lf if guessed else _csv.find_split)(view[pos : pos + want])
            if split:
                yield _Chunk(view[pos : pos + want + _csv.PAD], 0, split, pos, False, filemap, guessed)
                pos += split
                first = False
                break
            want *= 2  # a record longer than the block
        else:
            rest = size - pos
            buf = bytearray(rest + _csv.PAD)  # exactly: a pool buffer would be twice a block, zeroed
            view = memoryview(buf)
            f.seek(pos)
            got = _read_full(f, view[:rest])
            yield _Chunk(view, 0, got, pos, True)
            return


class _BufferPool:
    """Reuses chunk buffers, so reading faults in no fresh pages after the first few chunks."""

    def __init__(self, size):
        self.size = size
        self.free = []

    def get(self, size):
        if size <= self.size:
            return self.free.pop() if self.free else bytearray(self.size)
        return bytearray(size)  # a long record: used once

    def put(self, buf):
        if len(buf) == self.size and len(self.free) < 8:
            self.free.append(buf)


def _chunks(f, block_size, pool):
    """Yield _Chunk objects covering the file, each ending at a record boundary."""
    carry = b""
    offset = 0  # file offset of carry[0]
    while True:
        want = max(block_size, len(carry))  # grows geometrically under a long record
        buf = pool.get(len(carry) + want + _csv.PAD)
        buf[: len(carry)] = carry
        view = memoryview(buf)
        got = _read_full(f, view[len(carry) : len(carry) + want])
        total = len(carry) + got
        if got < want:
            yield _Chunk(view, 0, total, offset, True)
            return
        split = _csv.find_split(view[:total])
        if split == 0:
            carry = bytes(view[:total])
            continue
        yield _Chunk(view, 0, split, offset, False)
        carry = bytes(view[split:total])
        offset += split


class _Reader:
    def __init__(self, f, path, kind, block_size, threads):
        self.f = f
        self.path = path
        self.kind_name = kind
        self.block_size = block_size
        self.threads = threads

    # ---- the one funnel from C status to exception ----------------------------------

    def _error(self, status, chunk, line, column, rel_offset):
        """The CSVError for a C status at ``rel_offset`` in ``chunk``."""
        buf = chunk.buf[: chunk.end]
        name = None
        if column and hasattr(self, "names") and column <= len(self.names):
            name = self.names[column - 1]
        found = _describe_field(buf, rel_offset)
        col = self.columns[column - 1] if column and hasattr(self, "columns") and column <= len(self.columns) else None
        if status == _S["STRAY_QUOTE"]:
            reason = 'expected a field without quotes (or quoted from its first byte), got \'"\' inside ' + _describe_unquoted(buf, rel_offset)
        elif status == _S["AFTER_QUOTE"]:
            reason = f"expected ',' or a line break after a closing quote, got {_describe_byte(buf, rel_offset)}"
        elif status == _S["UNTERMINATED_QUOTE"]:
            reason = "expected a closing quote, got the end of the file (the quoted field opens here)"
        elif status == _S["EMPTY_LINE"]:
            reason = "expected a record, got an empty line"
        elif status == _S["TOO_MANY_FIELDS"]:
            reason = f"expected {len(self.names)} fields as in the header, got more"
        elif status == _S["TOO_FEW_FIELDS"]:
            reason = f"expected {len(self.names)} fields as in the header, got {column - 1}"
        elif status == _S["UTF8"]:
            reason = f"expected UTF-8 text, got the invalid byte {_describe_byte(buf, rel_offset)}"
        elif status == _S["IMAGE_ID"]:
            reason = f"expected 16 lowercase hex digits in {name or 'ImageID'}, got {found}"
        elif status == _S["NUMBER"]:
            reason = f"expected a number like 0.5 or 1e-05 in {name}, got {found}"
        elif status == _S["INTEGER"]:
            reason = f"expected a whole number in {name}, got {found}"
        elif status == _S["INT_RANGE"]:
            kind = col.type.arrow_name if col else "the column's type"
            reason = f"expected a whole number that fits {kind} in {name}, got {found}"
        elif status == _S["EMPTY_REQUIRED"]:
            reason = f"expected a value in {name} (it may not be empty), got an empty field"
        elif status == _S["NO_MEMORY"]:
            raise MemoryError(f"out of memory while reading {self.path}")
        else:
            raise RuntimeError(f"oicore internal error: status {status} at line {line} of {self.path}")
        return CSVError(
            reason,
            path=self.path,
            line=line,
            column=column or None,
            column_name=name,
            byte_offset=chunk.file_offset + rel_offset,
        )

    # ---- header and kind ------------------------------------------------------------

    def _header(self, chunk):
        """Decide kind, names and types from the first record; return where data starts."""
        start = len(_BOM) if chunk.end >= len(_BOM) and bytes(chunk.buf[: len(_BOM)]) == _BOM else 0
        spec = None if self.kind_name is None else schema.KINDS[self.kind_name]
        if start == chunk.end:
            if spec is not None and spec.header in (HeaderRule.NEVER, HeaderRule.OPTIONAL):
                self._set_columns(spec, spec.headerless_names)  # a header-less file with no records
                return start, 0
            raise CSVError(
                "expected a header or a record, got an empty file", path=self.path, line=1, byte_offset=0
            )
        if spec is not None and spec.header is HeaderRule.NEVER:
            self._set_columns(spec, spec.headerless_names)
            return start, 0
        status, raw, end, lines, err_line, err_col, err_off = _csv.read_record(
            chunk.buf[: chunk.end], start, chunk.at_eof
        )
        if status != _S["OK"]:
            self.names = ()  # a broken first record has no column names yet
            raise self._error(status, chunk, 1 + err_line, err_col, err_off)
        names = [field.decode("utf-8") for field, _, _ in raw]
        kind, has_header = self._decide_kind(names)
        self._set_columns(kind, names if has_header else kind.headerless_names)
        # A first record that is data is parsed again, with its column names, as data.
        return (end, lines) if has_header else (start, 0)

    def _set_columns(self, kind, names):
        self.kind = kind
        self.names = tuple(names)
        if kind.name == "strings":
            self.columns = tuple(schema.Column(n, ColumnType.STRING) for n in names)
        else:
            self.columns = tuple(schema.column(n) for n in names)

    def _decide_kind(self, names):
        if self.kind_name is None:
            found = schema.match_header(names)
            if found is not None:
                return found[0], True
            if names and schema.MID_PATTERN.fullmatch(names[0]) and len(names) in (1, 2):
                return schema.KINDS["class_lists" if len(names) == 1 else "class_descriptions"], False
            raise UnknownHeaderError(names, schema.closest_kinds(names), path=self.path)
        kind = schema.KINDS[self.kind_name]
        if kind.name == "strings":
            return kind, True
        if kind.variant_for(names) is not None:
            return kind, True
        if kind.header is HeaderRule.OPTIONAL:
            return kind, False
        closest = [c for c in schema.closest_kinds(names, n=len(schema.KINDS)) if c[0] == kind.name]
        raise UnknownHeaderError(names, closest, path=self.path)

    # ---- the pipeline ---------------------------------------------------------------

    def run(self):
        self.pool = _BufferPool(2 * self.block_size + _csv.PAD)
        size = _regular_file_size(self.f)
        self.filemap = _FileMap(self.f, size) if size else None
        if self.filemap is not None:
            chunks = _mapped_chunks(self.f, self.filemap, self.block_size, size, guess=True)
        else:
            chunks = _chunks(self.f, self.block_size, self.pool)
        try:
            return self._run(chunks, size)
        finally:
            if self.filemap is not None:
                self.filemap.close()

    def _run(self, chunks, size):
        first = next(chunks)
        data_start, header_lines = self._header(first)
        first.start = data_start
        self.data_offset = first.file_offset + data_start
        self.types = tuple(int(c.type) for c in self.columns)
        self.required = tuple(c.required for c in self.columns)

        self.terminators = header_lines  # before the chunk being consumed
        self.parts = [[] for _ in self.columns]
        self.rows, self.checkpoints = 0, []
        # Per dictionary column, the table's vocabulary: values in order of first appearance,
        # added here only, in file order.
        self.vocab = [_csv.Vocabulary() if c.type is ColumnType.DICTIONARY else None for c in self.columns]

        self.size = size or 0  # for the output regions: none for a stream
        self.states = []
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="oicore-csv") if self.threads > 1 else None
        try:
            resume = self._parse_all(_chain(first, chunks), pool)
            while resume is not None:
                # A guessed cut fell inside a quoted field: go on from the unfinished record,
                # cutting exactly from now on, with fresh per-thread vocabularies.
                chunks = _mapped_chunks(self.f, self.filemap, self.block_size, size, resume)
                resume = self._parse_all(chunks, pool)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            for state in self.states:
                state.trim()
        return self._table()

    def _parse_all(self, chunks, pool):
        """Parse the chunks (on the pool's threads, or here) and consume them in file order.

        Returns None at the end, or the file offset to go on from after a wrong guessed cut.
        Each thread codes dictionary values with its own vocabulary, kept from chunk to
        chunk (its hash table stays in that core's cache); consuming maps its codes to the table's.
        """
        local = threading.local()
        types, required = self.types, self.required

        def parse(chunk):
            state = getattr(local, "state", None)
            if state is None:
                state = local.state = _ThreadState(self.columns, _csv.output_regions(types, required, self.size))
                self.states.append(state)
            return chunk, state, _csv.parse_chunk(
                chunk.buf, chunk.start, chunk.end, chunk.at_eof, types, required, -1, state.vocabs, state.regions,
                tuple(state.maps),
            )

        if pool is None:
            for chunk in chunks:
                resume = self._consume(*parse(chunk))
                if resume is not None:
                    return resume
            return None
        pending = deque()
        try:
            for chunk in chunks:
                pending.append(pool.submit(parse, chunk))
                while len(pending) > self.threads:
                    resume = self._consume(*pending.popleft().result())
                    if resume is not None:
                        return resume
            while pending:
                resume = self._consume(*pending.popleft().result())
                if resume is not None:
                    return resume
            return None
        finally:
            # After an error or a wrong cut: let the parses still running finish, then drop them.
            for fut in pending:
                fut.cancel()
            for fut in pending:
                if not fut.cancelled():
                    try:
                        self._release(fut.result()[0])
                    except BaseException:
                        pass

    def _consume(self, chunk, state, res):
        """Fold one parsed chunk into the table parts, in file order.

        Returns None, or the file offset to go on from when the chunk's guessed end was
        inside a quoted field (its rows before the unfinished record are kept).
        """
        resume = None
        if res.status != _S["OK"]:
            if res.status == _S["NEED_MORE"] and chunk.guessed:
                resume = chunk.file_offset + res.pos
            elif res.status == _S["NEED_MORE"]:
                raise RuntimeError(f"oicore internal error: a chunk of {self.path} ends inside a record")
            else:
                line = 1 + self.terminators + res.err_line
                raise self._error(res.status, chunk, line, res.err_column, res.err_offset)
        self.terminators += res.lines
        if res.rows:  # where this chunk's first record starts, and its row number
            self.checkpoints.append((self.rows, chunk.file_offset + chunk.start))
            self.rows += res.rows
        for i, col in enumerate(self.columns):
            part = res.columns[i]
            if col.type is ColumnType.DICTIONARY:
                codes, new_values, first_code, local_rows = part
                mapping = state.map_codes(i, first_code, self.vocab[i].intern_all(new_values))
                if mapping is None:
                    pass  # the thread's codes are the table's
                elif local_rows is None:
                    _csv.remap_codes(codes, mapping, 0)
                elif len(local_rows):
                    _csv.remap_rows(codes, local_rows, mapping)
                part = (codes,)
            self.parts[i].append((res.rows, part))
        self._release(chunk, consumed=resume is None)
        return resume

    def _release(self, chunk, consumed=False):
        """The text is no longer needed: its slice of the map goes (and, once ``consumed``, the
        pages before its end may be given back), or its buffer back to the pool."""
        if chunk.buf is None:
            return
        if chunk.owner is not None:
            chunk.buf.release()
            if consumed:
                chunk.owner.release_before(chunk.file_offset + chunk.end)
        elif isinstance(chunk.buf.obj, bytearray):
            self.pool.put(chunk.buf.obj)
        chunk.buf = None

    def _table(self):
        import pyarrow as pa

        arrays = []
        fields = []
        for i, col in enumerate(self.columns):
            if col.type is ColumnType.DICTIONARY:
                # From buffers: pa.array() on Python objects would import pandas.
                offsets, data = self.vocab[i].string_buffers()
                dictionary = _to_arrow(pa, ColumnType.STRING, len(offsets) - 1, (offsets, data), None)
            chunks = []
            for rows, part in self.parts[i]:
                chunks.append(_to_arrow(pa, col.type, rows, part, dictionary if col.type is ColumnType.DICTIONARY else None))
            atype = _arrow_type(pa, col.type)
            arrays.append(pa.chunked_array(chunks, type=atype))
            fields.append(pa.field(col.name, atype, nullable=True))
        meta = {
            b"oicore.kind": self.kind.name.encode(),
            b"oicore.data_offset": str(self.data_offset).encode(),
            # (row, byte offset) pairs of record starts, int64: where a pass over the text can start
            b"oicore.checkpoints": np.array(self.checkpoints, np.int64).reshape(-1, 2).tobytes(),
        }
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=meta))


class _ThreadState:
    """One reading thread's vocabularies (per dictionary column), their codes in the table's,
    and the regions its chunks write their columns to (_csv.output_regions, or None).

    Chunks of one thread are parsed and consumed in the same (file) order, so
    the values a chunk added to the thread's vocabulary are the next ones to map.
    """

    def __init__(self, columns, regions):
        self.regions = regions
        dicts = [c.type is ColumnType.DICTIONARY for c in columns]
        self.vocabs = tuple(_csv.Vocabulary() if d else None for d in dicts)
        # Per dictionary column, the table's codes of this thread's codes, as far as consumed: a
        # new array each time it grows, as parses on the thread read the one they were given.
        self.maps = [np.empty(0, dtype=np.int32) if d else None for d in dicts]
        self.identity = [True for _ in columns]  # thread codes == table codes so far

    def trim(self):
        """Give back the unused end of each region: no chunk will take from them any more."""
        for r in self.regions or ():
            for region in r if isinstance(r, tuple) else (r,):
                region.trim()

    def map_codes(self, i, first_code, table_codes):
        """Record the table codes of this thread's codes ``first_code`` and up; return the
        map from thread codes to table codes, or None when they are the same."""
        m = self.maps[i]
        if first_code != len(m):
            raise RuntimeError("oicore internal error: chunks of a thread consumed out of order")
        if len(table_codes):
            if self.identity[i] and not np.array_equal(table_codes, np.arange(len(m), len(m) + len(table_codes))):
                self.identity[i] = False
            self.maps[i] = m = np.concatenate([m, table_codes])
        return None if self.identity[i] else m


def _regular_file_size(f):
    """The size of ``f`` when it is a regular file at offset 0 that can be mapped, else None."""
    try:
        fd = f.fileno()
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or f.tell() != 0:
            return None
        return st.st_size
    except (AttributeError, OSError, ValueError):
        return None


def _chain(first, rest):
    yield first
    yield from rest


def _arrow_type(pa, t: ColumnType):
    return {
        ColumnType.STRING: pa.string(),
        ColumnType.IMAGE_ID: pa.uint64(),
        ColumnType.DICTIONARY: pa.dictionary(pa.int32(), pa.string()),
        ColumnType.FLOAT64: pa.float64(),
        ColumnType.INT8: pa.int8(),
        ColumnType.INT32: pa.int32(),
        ColumnType.INT64: pa.int64(),
    }[t]


def _to_arrow(pa, t, rows, part, dictionary):
    """One chunk's numpy buffers as a pyarrow array, without copying."""
    if t is ColumnType.STRING:
        offsets, data = part
        return pa.Array.from_buffers(pa.string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    if t is ColumnType.DICTIONARY:
        (codes,) = part
        indices = pa.Array.from_buffers(pa.int32(), rows, [None, pa.py_buffer(codes)])
        return pa.DictionaryArray.from_arrays(indices, dictionary, safe=False)
    values, validity, null_count = part
    validity_buf = pa.py_buffer(validity) if null_count else None
    return pa.Array.from_buffers(
        _arrow_type(pa, t), rows, [validity_buf, pa.py_buffer(values)], null_count=null_count
    )


def _describe_byte(buf, at) -> str:
    if at >= len(buf):
        return "the end of the file"
    b = buf[at]
    if b == 0x0A:
        return "a line feed"
    if b == 0x0D:
        return "a carriage return"
    if 0x20 <= b < 0x7F:
        return repr(chr(b))
    return f"0x{b:02x}"


def _describe_unquoted(buf, at, limit=60) -> str:
    """The unquoted field around byte ``at`` (from the delimiter or line start before it to the next), for
    messages (shortened, repr'd)."""
    start = at
    while start > 0 and buf[start - 1] not in (0x2C, 0x0A, 0x0D) and at - start < limit:
        start -= 1
    end, n = at, len(buf)
    while end < n and buf[end] not in (0x2C, 0x0A, 0x0D) and end - start < limit + 1:
        end += 1
    text = bytes(buf[start:end]).decode("utf-8", "backslashreplace")
    return repr(text[:limit] + "..." if len(text) > limit else text)


def _describe_field(buf, at, limit=60) -> str:
    """The field text starting at ``at``, for messages (shortened, repr'd)."""
    end = at
    n = len(buf)
    quoted = at < n and buf[at] == 0x22
    while end < n and end - at < limit + 1:
        b = buf[end]
        if b in (0x0A, 0x0D) or (b == 0x2C and not quoted):
            break
        end += 1
        if quoted and b == 0x22 and end - at > 1:
            break
    text = bytes(buf[at:end]).decode("utf-8", "backslashreplace")
    if not text:
        return "an empty field"
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)
