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
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Context:
    """Where a system finds its inputs and keeps its prepared artifacts."""

    data_dir: Path  # the release, e.g. bench/data/v3-scale0.1
    work_dir: Path  # scratch space for this task and system (created by the runner)
    scale: float

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
    """

    name: str
    modules: tuple[str, ...]
    setup: Callable[[Context], Any]
    run: Callable[[Any], Any]
    call: str = ""  # the call being timed, as shown in the README and the report
    prepare: Callable[[Context], None] | None = None
    validate: Callable[[Any], None] | None = None


@dataclass(frozen=True)
class Task:
    """One benchmark: a question, its inputs, and the systems that answer it.

    ``fingerprint(result)`` is the normalized answer (JSON-serializable), equal
    across correct systems. ``quick(result)`` is a cheap subset of it (e.g. the
    row count) checked after every timed run. ``result_bytes(result)`` is the
    size of the result's buffers. ``throughput`` says whether MB/s of input is a
    meaningful figure for this task.
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

    def system(self, name: str) -> System:
        for s in self.systems:
            if s.name == name:
                return s
        raise KeyError(f"task {self.name!r} has no system {name!r}; it has {', '.join(self.system_names)}")

    @property
    def system_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.systems)
