"""Run one system of one task in this fresh process; write what happened as JSON.

The runner starts one of these per measurement::

    python -m bench._worker --task parse --system pandas --data DIR --work DIR \
        --scale 0.1 --mode check --out report.json

Modes:

``prepare``  run the system's ``prepare`` once (untimed artifacts in ``--work``).
``check``    one run in a fresh process: peak memory, then the answer's
             fingerprint, the result's size and type, and the system's own
             validation. Peak extra memory is the resident high-water mark
             during the run (``VmHWM``, reset to the current size right after
             ``setup``) minus the resident size after ``setup``. ``ru_maxrss``
             is recorded too, but it is not used: Linux carries it over from
             the parent across fork+exec, and it includes the imports' peaks.
``time``     for a task with ``cold=True``, first one call (the system's
             ``first``, else ``run``) timed alone as ``cold_s``: the first call
             in a fresh process; then one untimed warm-up run (unless the task
             has ``warmup=False``), then ``--runs`` timed runs (default: the
             task's ``runs``); a system's ``sample`` of single calls, if any,
             runs last (``latency_ns``).

A system's ``before`` hook runs, untimed, before every run; its ``normalize``
turns the raw result into the task's canonical form before ``fingerprint`` and
``quick`` (untimed). ``setup`` may record what it measured in ``ctx.notes``
(load and build time, memory), which is reported as ``notes``.

The report's ``status`` is ``ok``, ``unavailable`` (an import failed in setup)
or ``failed`` (anything else raised). A worker that dies (killed, out of
memory) leaves no report; the runner says so. Memory figures are in KiB and
read from ``/proc/self/status``, so they are Linux-only (null elsewhere).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in KiB, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset this process's resident high-water mark (VmHWM) to its current size; False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _error(exc: BaseException) -> dict:
    return {
        "error": f"{type(exc).__name__}: {exc}".strip(),
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._worker")
    p.add_argument("--task", required=True)
    p.add_argument("--system", required=True)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--scale", required=True, type=float)
    p.add_argument("--mode", required=True, choices=("prepare", "check", "time"))
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)

    report: dict = {"task": args.task, "system": args.system, "mode": args.mode, "pid": os.getpid()}

    def finish(status: str, **fields) -> int:
        report.update(status=status, **fields)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        os.replace(tmp, args.out)
        return 0

    from bench import tasks
    from bench.task import Context

    task = tasks.load(args.task)
    system = task.system(args.system)
    ctx = Context(data_dir=args.data, work_dir=args.work, scale=args.scale, mode=args.mode)
    runs = args.runs if args.runs is not None else task.runs

    if args.mode == "prepare":
        t0 = time.perf_counter()
        try:
            if system.prepare is not None:
                system.prepare(ctx)
        except ImportError as exc:
            return finish("unavailable", **_error(exc))
        except Exception as exc:
            return finish("failed", **_error(exc))
        return finish("ok", prepare_s=time.perf_counter() - t0, notes=ctx.notes)

    def before(state) -> None:
        if system.before is not None:
            system.before(state)

    def canonical(result):
        return system.normalize(result) if system.normalize is not None else result

    t0 = time.perf_counter()
    try:
        state = system.setup(ctx)
    except ImportError as exc:
        return finish("unavailable", **_error(exc))
    except Exception as exc:
        return finish("failed", stage="setup", **_error(exc))
    report["setup_s"] = time.perf_counter() - t0
    report["notes"] = ctx.notes
    report["versions"] = {
        m: getattr(sys.modules.get(m), "__version__", None) for m in system.modules if m in sys.modules
    }
    gc.collect()
    rss0 = _status_kib("VmRSS")
    report["rss_after_setup_kib"] = rss0
    # ru_maxrss survives fork+exec (a child starts with its parent's peak) and includes transient
    # peaks of the imports; VmHWM reset here measures the run alone. ru_maxrss is kept as a cross-check.
    report["peak_reset"] = args.mode == "check" and _reset_peak()

    if args.mode == "check":
        try:
            before(state)
            t0 = time.perf_counter()
            result = system.run(state)
            report["first_run_s"] = time.perf_counter() - t0
        except Exception as exc:
            return finish("failed", stage="run", **_error(exc))
        # Read the high-water marks before anything else allocates.
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        report["ru_maxrss_kib"] = maxrss
        report["vmhwm_kib"] = _status_kib("VmHWM")
        report["rss_after_run_kib"] = _status_kib("VmRSS")
        peak = report["vmhwm_kib"] if report["vmhwm_kib"] is not None else maxrss
        if report["vmhwm_kib"] is None:
            report["peak_source"] = "ru_maxrss"
        else:
            report["peak_source"] = "VmHWM reset after setup" if report["peak_reset"] else "VmHWM"
        report["peak_extra_kib"] = peak - rss0 if rss0 is not None else None
        try:
            report["result_bytes"] = task.result_bytes(result)
            report["result_type"] = task.describe(result) if task.describe else type(result).__name__
            if system.validate is not None:
                system.validate(result)
            view = canonical(result)
            report["fingerprint"] = task.fingerprint(view)
            report["quick"] = task.quick(view)
        except AssertionError as exc:
            return finish("wrong", stage="validate", **_error(exc))
        except Exception as exc:
            return finish("failed", stage="fingerprint", **_error(exc))
        return finish("ok")

    # mode == "time"
    try:
        if task.cold:
            # the first call in this fresh process, after setup: the "cold" figure
            before(state)
            t0 = time.perf_counter()
            result = (system.first or system.run)(state)
            report["cold_s"] = time.perf_counter() - t0
            del result
            gc.collect()
        if task.warmup:
            before(state)
            t0 = time.perf_counter()
            result = system.run(state)
            report["warm_s"] = time.perf_counter() - t0
            del result
            gc.collect()
        times, quick = [], None
        for _ in range(runs):
            before(state)
            t0 = time.perf_counter()
            result = system.run(state)
            times.append(time.perf_counter() - t0)
            quick = task.quick(canonical(result))
            del result
            gc.collect()
        if system.sample is not None:
            report["latency_ns"] = [int(x) for x in system.sample(state)]
    except Exception as exc:
        return finish("failed", stage="run", **_error(exc))
    return finish("ok", times=times, quick=quick)


if __name__ == "__main__":
    sys.exit(main())
