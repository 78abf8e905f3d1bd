"""Run one system of one task in this process; write what happened as JSON.

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
``serve``    the small-scale mode's worker: one process takes commands one at a
             time (``check OUT``, ``setup OUT``, ``time OUT``, ``exit``, one a
             line on the ``--commands`` FIFO; ``done`` on ``--replies`` after
             each), so that the runner can interleave the rounds of several
             such processes. For a task without cold calls it does the check
             and every round of its system; it sets up once when the system can
             ``reuse`` the check's state, and only the first round warms up
             (the check's run is that warm-up when it ran on the same state).
             For a task with cold calls it does the check, whose first call is
             round 1's cold figure, and round 1; each later round is a fresh
             one, set up (``setup``) while no round is being timed.

A system's ``before`` hook runs, untimed, before every run; its ``normalize``
turns the raw result into the task's canonical form before ``fingerprint`` and
``quick`` (untimed). ``setup`` may record what it measured in ``ctx.notes``
(load and build time, memory), which is reported as ``notes``.

The worker first limits its address space (``--memory-limit`` bytes,
``RLIMIT_AS``; see ``bench.memory_limit``). The report's ``status`` is ``ok``,
``unavailable`` (an import failed in setup), ``oom`` (the limit was hit) or
``failed`` (anything else raised). A worker that dies (killed, aborted) leaves
no report; the runner says so, as "out of memory" when that is the cause.
Memory figures are in KiB and read from ``/proc/self/status``, so they are
Linux-only (null elsewhere).
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

from bench import memory_limit


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


def _failure(exc: Exception) -> str:
    """The status for an exception: out of memory, a missing library, or another failure."""
    if memory_limit.exception_is_oom(exc):
        return "oom"
    return "unavailable" if isinstance(exc, ImportError) else "failed"


class Failed(Exception):
    """A stage failed: ``fields`` are the report's (status, stage, error, traceback)."""

    def __init__(self, status: str, stage: str | None, exc: BaseException):
        super().__init__(status)
        self.fields = {"status": status, **({"stage": stage} if stage else {}), **_error(exc)}


class Worker:
    """One system of one task: its setup and the check and timing runs made on it."""

    def __init__(self, args):
        from bench import tasks

        self.args = args
        self.task = tasks.load(args.task)
        self.system = self.task.system(args.system)
        self.runs = args.runs if args.runs is not None else self.task.runs
        self.state = None
        self.state_mode = None  # the mode the state was set up for ("check" or "time")
        self.warm = False  # a run has been made on the state being timed (the warm-up)
        self.called = False  # the system has been called in this process (its next call is not cold)
        self.cold_s = None  # the check's first call, when the task has cold figures

    def context(self, mode: str):
        from bench.task import Context

        a = self.args
        return Context(data_dir=a.data, work_dir=a.work, scale=a.scale, mode=mode)

    def before(self, state) -> None:
        if self.system.before is not None:
            self.system.before(state)

    def canonical(self, result):
        return self.system.normalize(result) if self.system.normalize is not None else result

    def prepare(self, report: dict) -> None:
        ctx = self.context("prepare")
        t0 = time.perf_counter()
        try:
            if self.system.prepare is not None:
                self.system.prepare(ctx)
        except Exception as exc:
            raise Failed(_failure(exc), None, exc) from exc
        report.update(prepare_s=time.perf_counter() - t0, notes=ctx.notes)

    def setup(self, mode: str, report: dict) -> None:
        """Set the system up for ``mode`` (once per mode), recording its time, notes and versions. A serving
        worker whose system can ``reuse`` the check's state for the timing runs does not set up again."""
        if self.state_mode == mode:
            return
        ctx = self.context(mode)
        reuse = self.system.reuse or self.task.reuse
        if self.state_mode == "check" and mode == "time" and reuse is not None:
            state = reuse(self.state, ctx)
            if state is not self.state:
                self.warm = False  # the check ran on another state: the timed one still needs its warm-up
            self.state, self.state_mode = state, mode
            report["setup_s"] = 0.0
            report["notes"] = self.ctx.notes
            return
        self.state = self.state_mode = None
        self.warm = self.called = False
        gc.collect()
        t0 = time.perf_counter()
        try:
            self.state = self.system.setup(ctx)
        except Exception as exc:
            raise Failed(_failure(exc), "setup", exc) from exc
        self.state_mode = mode
        report["setup_s"] = time.perf_counter() - t0
        report["notes"] = ctx.notes
        report["versions"] = {
            m: getattr(sys.modules.get(m), "__version__", None) for m in self.system.modules if m in sys.modules
        }
        self.ctx = ctx

    def check(self, report: dict) -> None:
        self.setup("check", report)
        task, system, state = self.task, self.system, self.state
        gc.collect()
        rss0 = _status_kib("VmRSS")
        report["rss_after_setup_kib"] = rss0
        # ru_maxrss survives fork+exec (a child starts with its parent's peak) and includes transient
        # peaks of the imports; VmHWM reset here measures the run alone. ru_maxrss is kept as a cross-check.
        report["peak_reset"] = _reset_peak()
        # A task with cold figures checks its first call (the system's ``first``): that call is then the cold
        # figure of this process's timing round, should it serve one (the small-scale mode).
        call = (system.first or system.run) if task.cold else system.run
        try:
            self.before(state)
            t0 = time.perf_counter()
            result = call(state)
            report["first_run_s"] = self.cold_s = time.perf_counter() - t0
        except Exception as exc:
            raise Failed(_failure(exc), "run", exc) from exc
        self.called = True
        self.warm = call is system.run  # a whole run on the state the rounds will time is their warm-up
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
            view = self.canonical(result)
            report["fingerprint"] = task.fingerprint(view)
            report["quick"] = task.quick(view)
            if system.adopt is not None:
                system.adopt(self.ctx, result)
        except AssertionError as exc:
            raise Failed("wrong", "validate", exc) from exc
        except Exception as exc:
            raise Failed(_failure(exc), "fingerprint", exc) from exc

    def time(self, report: dict) -> None:
        self.setup("time", report)
        task, system, state = self.task, self.system, self.state
        gc.collect()
        try:
            if task.cold and self.called:
                report["cold_s"] = self.cold_s  # the check's call was this process's first
            elif task.cold:
                # the first call in this fresh process, after setup: the "cold" figure
                self.called = True
                self.before(state)
                t0 = time.perf_counter()
                result = (system.first or system.run)(state)
                report["cold_s"] = time.perf_counter() - t0
                del result
                gc.collect()
            if task.warmup and not self.warm:
                self.before(state)
                t0 = time.perf_counter()
                result = system.run(state)
                report["warm_s"] = time.perf_counter() - t0
                del result
                gc.collect()
                self.warm = True
            times, quick = [], None
            for _ in range(self.runs):
                self.before(state)
                t0 = time.perf_counter()
                result = system.run(state)
                times.append(time.perf_counter() - t0)
                quick = task.quick(self.canonical(result))
                del result
                gc.collect()
            if system.sample is not None:
                report["latency_ns"] = [int(x) for x in system.sample(state)]
        except Exception as exc:
            raise Failed(_failure(exc), "run", exc) from exc
        report.update(times=times, quick=quick)

    def do(self, mode: str, out: Path) -> None:
        """Run ``mode`` and write its report to ``out`` (atomically)."""
        report: dict = {"task": self.task.name, "system": self.system.name, "mode": mode, "pid": os.getpid()}
        run = {
            "prepare": self.prepare,
            "check": self.check,
            "time": self.time,
            "setup": lambda report: self.setup("time", report),  # a round's process, set up ahead of its turn
        }[mode]
        try:
            run(report)
            report["status"] = "ok"
        except Failed as failed:
            report.update(failed.fields)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        os.replace(tmp, out)


def serve(worker: Worker, commands: Path, replies: Path) -> None:
    """Take ``check OUT`` / ``setup OUT`` / ``time OUT`` commands until ``exit`` (or the end of input); ``done``
    after each."""
    with open(commands) as cmds, open(replies, "w") as done:
        for line in cmds:
            command, _, out = line.strip().partition(" ")
            if command == "exit":
                break
            worker.do(command, Path(out))
            done.write("done\n")
            done.flush()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._worker")
    p.add_argument("--task", required=True)
    p.add_argument("--system", required=True)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--scale", required=True, type=float)
    p.add_argument("--mode", required=True, choices=("prepare", "check", "time", "serve"))
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--out", type=Path, help="the report (modes prepare, check, time)")
    p.add_argument("--commands", type=Path, help="serve: the FIFO the commands come from")
    p.add_argument("--replies", type=Path, help="serve: the FIFO that says when each is done")
    p.add_argument("--memory-limit", type=int, default=memory_limit.DEFAULT, help="RLIMIT_AS in bytes; 0: none")
    args = p.parse_args(argv)
    memory_limit.apply(args.memory_limit)
    worker = Worker(args)
    if args.mode == "serve":
        serve(worker, args.commands, args.replies)
    else:
        worker.do(args.mode, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
