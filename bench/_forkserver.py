"""A pre-imported parent that forks the workers: ``python -m bench._forkserver`` (started by ``bench.launch``).

Importing numpy, pyarrow, pandas, duckdb and oicore takes about a second, and a run at scale 0.01 starts
hundreds of workers. This process imports them once, then forks one child per worker request; the child runs
``bench._worker.main`` exactly as a fresh interpreter would. Each child is still a new process (its first call
is cold, its memory and peak are its own); it only skips the imports, and the objects they created are
frozen (``gc.freeze``), so that the child's garbage collections do not walk them again.

Only libraries that start no thread at import are preloaded: a forked child has no copy of its parent's
threads, so a pool started before the fork would deadlock in the child. polars (jemalloc and spill-cleanup
threads at import) and lance (a tokio runtime) are imported by the child itself. pyarrow's jemalloc starts a
background purging thread; jemalloc's own fork handlers reset it in the child, which is why it is allowed.

Protocol (see ``bench.launch.ForkLauncher``), one JSON object a line: ``{"fork": argv, "log": path}`` forks a
child that runs the worker with ``argv``, its stdout and stderr to ``log``, and answers ``{"pid": n}`` at
once; ``{"reap": pid}`` waits for that child and answers ``{"returncode": rc}`` (negative: the signal that
killed it). The end of input ends the server.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import sys
import traceback

PRELOAD = (
    "numpy",
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.csv",
    "pyarrow.feather",
    "pyarrow.parquet",
    "pandas",
    "duckdb",
    "oicore",
    "bench._worker",
    "bench.tasks",
)
# oicore serves these lazily; resolving them imports the modules (and extensions) behind them
OICORE_API = ("open", "read_csv", "convert")
FORK_SAFE_THREADS = {"jemalloc_bg_thd"}  # jemalloc's fork handlers restart its background thread in the child


def _threads() -> dict[int, str]:
    """This process's threads other than the main one, id -> name (Linux; empty elsewhere)."""
    try:
        ids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return {}
    out = {}
    for t in ids:
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                out[t] = f.read().strip()
        except OSError:
            pass
    out.pop(os.getpid(), None)
    return out


def _preload() -> tuple[list[str], list[str]]:
    """Import what a worker would. Returns the modules that failed (a child imports, or reports, them itself)
    and the threads started that a fork would break."""
    failed = []
    fork_safe: set[int] = set()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as exc:  # e.g. an oicore extension being rebuilt: the child will say so
            failed.append(f"{name} ({type(exc).__name__}: {exc})")
        if name == "numpy":
            fork_safe = set(_threads())  # OpenBLAS's pool: OpenBLAS stops it before a fork, a child starts its own
    oicore = sys.modules.get("oicore")
    for name in OICORE_API if oicore is not None else ():
        try:
            getattr(oicore, name)
        except Exception as exc:
            failed.append(f"oicore.{name} ({type(exc).__name__}: {exc})")
    if "bench.tasks" in sys.modules:
        sys.modules["bench.tasks"].load_all()  # every task module and its helpers
    unsafe = [n for t, n in _threads().items() if t not in fork_safe and n not in FORK_SAFE_THREADS]
    return failed, unsafe


def _child(argv: list[str], log: str) -> None:
    """In the forked child: output to ``log``, run the worker, and leave without running the parent's exit code."""
    code = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        from bench import _worker

        code = _worker.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code or 0)


def main() -> int:
    failed, unsafe = _preload()
    if failed:
        print(f"forkserver: not preloaded: {'; '.join(failed)}", file=sys.stderr, flush=True)
    if unsafe:
        print(f"forkserver: threads running before fork: {', '.join(unsafe)}", file=sys.stderr, flush=True)
    # The imports leave ~70,000 objects that every full collection would walk: ~0.15 s for each of the
    # worker's untimed gc.collect() calls between runs. Frozen, the children's collections skip them.
    gc.collect()
    gc.freeze()
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if "reap" in request:
            _, status = os.waitpid(request["reap"], 0)
            reply = {"returncode": os.waitstatus_to_exitcode(status)}
        else:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(request["fork"], request["log"])
            reply = {"pid": pid}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
