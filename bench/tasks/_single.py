"""One call per ID, timed as a loop: what the single-lookup tasks (``labels_one``, ``boxes_image``) share.

A system of such a task states only what differs from the others, as a :class:`Lookup`:

- ``setup(ctx, keys)`` loads and builds what its call reads (recorded with ``_lookups.measure``) and returns
  the names the call uses, as a dict; ``keys`` are the IDs this process will ask for;
- ``call`` is one line of Python that looks up ``k``, assigns the answer to ``r`` and reads the columns a user
  would read, e.g. ``"r = labels(k); r.label; r.confidence"``;
- ``answer`` maps each canonical column to a function of one answer ``r`` (and the names), which turns the
  check run's answers into the canonical form (``_lookups.concat_calls``);
- ``keys`` says how the IDs are given: ``"int"`` (Python ints), ``"int64"`` (their signed view, for a pandas
  index: see the README), ``"numpy"`` (numpy's own uint64 scalars);
- ``calls``: for a slow peer, how many of the IDs a timed run asks (``_lookups.slow_calls``, ...).

From ``call`` this module compiles the timed loop and the single call of the latency sample, as ``timeit``
compiles its statement into its loop: the loop adds no function call per ID to what is measured, whatever
the system, and the report shows the very code that is timed.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

from bench.task import Context, System
from bench.tasks import _lookups as L

_CODE = """
def run(st):
{bind}
    if st.keep:
        out = []
        append = out.append
        for k in st.keys:
            {call}
            append(r)
        return st.names, out
    for k in st.keys:
        {call}
    return len(st.keys)


def one_of(st):
{bind}

    def one(k):
        {call}

    return one
"""


@dataclass(frozen=True)
class Lookup:
    name: str
    modules: tuple[str, ...]
    setup: Callable[[Context, list], dict]
    call: str
    answer: dict[str, Callable]
    keys: str = "int"
    calls: Callable | None = None
    prepare: Callable | None = L.prepare_typed
    note: str = ""  # shown after the call in the report: what the call relies on


def used_names(call: str) -> list[str]:
    """The names ``call`` reads that it neither assigns nor gets from Python (``k`` aside): the setup's."""
    tree = ast.parse(call)
    loaded, stored = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                stored.add(node.id)
            elif node.id not in loaded:
                loaded.append(node.id)
    return [n for n in loaded if n not in stored and n != "k" and not hasattr(builtins, n)]


def compile_call(call: str) -> tuple[Callable, Callable]:
    """``run(state)`` (the timed loop; in the check run it keeps every ``r``) and ``one_of(state)`` (a function
    of one ID, for the latency sample), both with ``call`` inlined."""
    bind = "\n".join(f"    {n} = st.names[{n!r}]" for n in used_names(call)) or "    pass"
    namespace: dict = {}
    exec(compile(_CODE.format(bind=bind, call=call), f"<lookup: {call}>", "exec"), namespace)
    return namespace["run"], namespace["one_of"]


def ids(ctx: Context, query: str, lookup: Lookup) -> list:
    """The IDs this process asks for, in the form the system takes them."""
    import numpy as np

    array = L.id_array(ctx, query, slow=lookup.calls or False)
    if lookup.keys == "int64":
        return array.view(np.int64).tolist()
    if lookup.keys == "numpy":
        return list(array)
    return array.tolist()


def groups_of(ctx: Context, query: str):
    """The IDs a pandas groupby dict is built for: every image in the check run from scale 0.1 on, whose
    figures the report shows; else the prefix of the queried IDs that any run of this process asks for (a
    lookup in a dict does not depend on its size; below scale 0.1 the whole dict would take most of the
    run). None means every image."""
    if ctx.keep and not L._stores.small_scale(ctx.data_dir):
        return None
    ids = L._stores.query_ids(ctx.data_dir, query)
    return ids[: max(L.check_calls(ctx.data_dir), L.slow_calls(ctx.data_dir))]


def system(query: str, lookup: Lookup) -> System:
    """The task's System for ``lookup``, answering the seeded IDs ``query``."""
    run, one_of = compile_call(lookup.call)

    def setup(ctx: Context):
        keys = ids(ctx, query, lookup)
        return SimpleNamespace(names=lookup.setup(ctx, keys), keys=keys, keep=ctx.keep)

    def reuse(state, ctx: Context):
        return SimpleNamespace(names=state.names, keys=ids(ctx, query, lookup), keep=ctx.keep)

    def normalize(result):
        if isinstance(result, int):
            return {"calls": result}
        names, out = result
        return L.concat_calls([{column: get(r, names) for column, get in lookup.answer.items()} for r in out])

    def sample(state):
        return L.latency_sample(one_of(state), state.keys)

    return System(
        lookup.name, lookup.modules, setup, run, lookup.call + (f"  ({lookup.note})" if lookup.note else ""),
        prepare=lookup.prepare, normalize=normalize, sample=sample, calls=lookup.calls, reuse=reuse,
    )  # fmt: skip


def task(name: str, title: str, query: str, lookups, note: str):
    """A single-lookup task: every lookup asks for the seeded IDs ``query``, 10,000 calls a run."""
    return L.lookup_task(
        name=name, title=title, systems=tuple(system(query, lookup) for lookup in lookups),
        result_bytes=lambda result: None,  # thousands of small answers: their size says nothing
        calls=L._stores.SINGLE_CALLS, note=note,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------ answers


def label(column: str):
    """A canonical label column from column ``column`` of an answer (a frame, a table or a dict)."""
    return lambda r, names: L.codes_of(r[column])


def numbers(*columns: str):
    """A canonical number column from one column of an answer, or an N×len(columns) array from several."""

    def get(r, names):
        import numpy as np

        if len(columns) == 1:
            return L.as_numpy(r[columns[0]])
        return np.column_stack([L.as_numpy(r[c]) for c in columns]).reshape(-1, len(columns))

    return get
