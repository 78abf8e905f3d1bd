"""What a benchmark task is: one question, answered by oicore and by each peer.

A task module (``bench/tasks/<name>.py``) builds one :class:`Task` called
``TASK``. Its systems are the competing implementations, oicore first. Every
system's answer is reduced by the task's ``fingerprint`` to a small dict that
does not depend on how the system represents it (types, dictionary encoding,
chunking); the runner requires the fingerprints of all systems to be equal.

Functions stored here run inside a worker process. Keep the task modules free
of top-level imports of data libraries: a system imports what it needs in its
``setup``, so the runner stays small and each worker pays only for its own
imports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Context:
    """Where a system finds its inputs and keeps its prepared artifacts."""

    data_dir: Path  # the release, e.g. bench/data/v3-scale0.1
    work_dir: Path  # scratch space for this task and system (created by the runner)
    scale: float
    mode: str = "check"  # the worker's mode: "prepare", "check" (answer kept) or "time"
    notes: dict = field(default_factory=dict)  # what setup measured (load_s, build_s, build_bytes, ...)

    @property
    def keep(self) -> bool:
        """Whether ``run`` must keep every answer (the check run) or may drop them (timed runs)."""
        return self.mode == "check"

    def input(self, relative: str) -> Path:
        return self.data_dir / relative


@dataclass(frozen=True)
class System:
    """One implementation of a task.

    ``modules`` are the top-level modules it needs: if one is not installed the
    system is reported as such and never started. ``prepare`` (optional) runs
    once per benchmark run in its own process, untimed, to build artifacts in
    ``ctx.work_dir`` (e.g. a converted file for an "open" task). ``setup`` runs
    in every worker, untimed, before the resident memory baseline is taken: it
    imports and resolves everything ``run`` calls (including lazily imported
    modules), and returns the state ``run`` receives. ``run`` is the timed call.
    ``validate`` (optional) checks system-specific promises about the result,
    such as oicore's column types, and raises ``AssertionError`` when broken.

    ``normalize`` (optional) turns this system's raw result into the task's
    canonical form, outside the timed region, before ``fingerprint`` and
    ``quick`` see it. ``before`` (optional) runs untimed before every run (for
    example to remove the previous run's output). ``sample`` (optional) times a
    sample of single calls after the timed runs and returns their latencies in
    nanoseconds (per-call percentiles). ``calls`` overrides the task's calls
    per timed run for a slow system that times a prefix of the same IDs (its
    check run still answers every one of them); like the task's, it may be a
    function of the release directory. ``first`` (optional) is the
    single call timed as the first call of a fresh process when the task
    reports ``cold`` figures (default: ``run``). ``adopt`` (optional) runs,
    untimed, after a check run whose answer was fingerprinted: a convert's
    output becomes the shared stored form the lookup tasks read, instead of
    being built again. ``reuse`` (optional; else the task's) turns the state
    set up for the check into the state of the timing runs, in a worker that
    serves both (the small-scale mode), instead of setting up again: the
    state itself when nothing depends on the mode (``same_state``), or one
    with the timing runs' inputs.
    """

    name: str
    modules: tuple[str, ...]
    setup: Callable[[Context], Any]
    run: Callable[[Any], Any]
    call: str = ""  # the call being timed, as shown in the README and the report
    prepare: Callable[[Context], None] | None = None
    validate: Callable[[Any], None] | None = None
    normalize: Callable[[Any], Any] | None = None
    before: Callable[[Any], None] | None = None
    sample: Callable[[Any], list] | None = None
    calls: int | Callable[[Path], int] | None = None
    first: Callable[[Any], Any] | None = None
    adopt: Callable[[Context, Any], None] | None = None
    reuse: Callable[[Any, Context], Any] | None = None


def same_state(state, ctx: Context):
    """``reuse`` for a system whose state does not depend on the mode: the check's state, as it is."""
    return state


@dataclass(frozen=True)
class Task:
    """One benchmark: a question, its inputs, and the systems that answer it.

    ``fingerprint(result)`` is the normalized answer (JSON-serializable), equal
    across correct systems. ``quick(result)`` is a cheap subset of it (e.g. the
    row count) checked after every timed run. ``result_bytes(result)`` is the
    size of the result's buffers. ``throughput`` says whether MB/s of input is a
    meaningful figure for this task.

    ``calls`` is the number of lookups one run makes (a function of the release
    directory when it depends on the data set): the report shows the time per
    call (and ``rate``, e.g. "IDs/s", as calls per second). ``warmup``
    says whether each timing process makes an untimed run first; ``runs`` is
    the number of timed runs per process; ``max_rounds`` caps ``--repeat``
    (3 for whole-release converts). ``cold`` reports the first call of each
    fresh process (a system's ``first``) beside the warm median. ``stored``
    reports the result as bytes on disk (``result_bytes``), with its ratio to
    oicore's. ``note`` is printed under the task's table. ``reuse`` is the
    systems' ``reuse`` unless they have their own.
    """

    name: str
    title: str
    inputs: tuple[str, ...]  # release-relative files it reads; warmed into the page cache first
    systems: tuple[System, ...]  # oicore first, then the peers (pandas first)
    fingerprint: Callable[[Any], dict]
    quick: Callable[[Any], dict]
    result_bytes: Callable[[Any], int]
    describe: Callable[[Any], str] | None = None  # the result's type/schema, for the record
    throughput: bool = True
    timeout: float = 900.0  # seconds for one worker process
    calls: int | Callable[[Path], int] | None = None
    rate: str | None = None
    warmup: bool = True
    runs: int = 1
    max_rounds: int | None = None
    cold: bool = False
    stored: bool = False
    note: str = ""
    reuse: Callable[[Any, Context], Any] | None = None

    def calls_per_run(self, release_dir: Path, system: str | None = None) -> int | None:
        """Calls one timed run makes on this release: the system's own count if it has one, else the task's."""
        calls = self.system(system).calls if system is not None else None
        if calls is None:
            calls = self.calls
        return calls(release_dir) if callable(calls) else calls

    def system(self, name: str) -> System:
        for s in self.systems:
            if s.name == name:
                return s
        raise KeyError(f"task {self.name!r} has no system {name!r}; it has {', '.join(self.system_names)}")

    @property
    def system_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.systems)
