"""``python -m bench``: run the tasks, check every answer, time interleaved rounds, report.

Before anything is written, the disk the run needs is estimated from its scale (``bench.disk``) and the run
refuses to start when there is not enough. Every worker runs under an address-space limit (20 GB,
``bench.memory_limit``); one that hits it is reported as "out of memory".

For each task:

1. the input files are read once, so that every system starts from a warm page cache;
2. each system's optional ``prepare`` runs once, in its own process;
3. **check**: each system runs once in a fresh process, which measures its peak
   memory and fingerprints its answer; the answers must all be equal (a system
   that disagrees with the majority, ties going to oicore, is marked WRONG and
   never timed, and the run exits with status 1);
4. **time**: ``--repeat`` rounds; in each round every system runs in a fresh
   process (one untimed warm-up run, then one timed run), in an order that
   rotates from round to round. Timing rounds interleaved across systems
   spreads machine noise evenly instead of letting it land on one system.

Below scale 0.1 (the small-scale mode, a smoke test) workers are forked from a pre-imported parent
(``bench.launch``); a task without cold first calls keeps one worker per system for its check and its
rounds (``bench.serving``), still interleaved; each round makes one timed run; a convert's check run is
its first round; and the slow peers make fewer single calls (``tasks/_lookups.py``).

Results: ``<out>/<timestamp>.json`` and ``.md``, copied to ``latest.json`` and
``latest.md``; the Markdown also goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import data, disk, launch, memory_limit, report, tasks
from bench.report import REPO
from bench.serving import ServingWorker, died

RESULTS = Path(__file__).resolve().parent / "results"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def child_env() -> dict:
    """The environment for workers: ours, plus ``src/`` on PYTHONPATH when oicore is not importable otherwise,
    and one OpenBLAS thread unless set.

    No task makes a BLAS call, but OpenBLAS starts a thread per core when numpy is first imported, and they
    spin (about 0.1 s of CPU each) before they sleep: a call timed right after a setup that imported numpy
    lost a core to them, the more the shorter it was. Every system gets the same setting, and the report
    records it."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    env = dict(os.environ)
    src = REPO / "src"
    if importlib.util.find_spec("oicore") is None and (src / "oicore" / "__init__.py").is_file():
        sys.path.insert(0, str(src))
        env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
        log(f"oicore is not installed; using {src} (PYTHONPATH)")
    return env


def warm(path: Path) -> float:
    """Read ``path`` once (into one reused buffer) so that it sits in the page cache; the seconds it took."""
    buffer = bytearray(16 << 20)
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buffer):
            pass
    return time.perf_counter() - t0


class Runner:
    def __init__(self, args, launcher, data_dir: Path, scratch: Path):
        self.args = args
        self.launcher = launcher
        self.data_dir = data_dir
        self.scratch = scratch
        self.count = 0
        self.serving: dict = {}  # system -> ServingWorker, for the task being run
        self.prepared: dict = {}  # prepare function -> its report (each runs once per benchmark run)

    def serves(self, task) -> bool:
        """Whether the task's check runs in a serving worker (the small-scale mode; not for converts, whose
        every round is a fresh command): it then serves every round, or round 1 when the task has cold calls."""
        return self.args.small_scale and task.warmup

    def _argv(self, task, system) -> list[str]:
        work = data.DATA_ROOT / "work" / self.data_dir.name / task.name / system.name
        if system.prepare is not None:
            work.mkdir(parents=True, exist_ok=True)
        argv = [
            "--task", task.name, "--system", system.name,
            "--data", str(self.data_dir), "--work", str(work), "--scale", repr(self.args.scale),
            "--memory-limit", str(self.args.memory_limit),
        ]  # fmt: skip
        if self.args.small_scale:
            argv += ["--runs", "1"]  # the smoke test: one timed run per round (the rounds give the median)
        return argv

    def _report(self, task, system, mode: str) -> Path:
        self.count += 1
        return self.scratch / f"{self.count:04d}-{task.name}-{system.name}-{mode}.json"

    def _serving(self, task, system, out: Path) -> ServingWorker:
        if system.name not in self.serving:
            self.serving[system.name] = ServingWorker(self.launcher, self._argv(task, system), self.scratch, out.stem)
        return self.serving[system.name]

    def worker(self, task, system, mode: str) -> dict:
        """Run one worker process (or a command of a serving one); its report, or a failure that says how it died."""
        out = self._report(task, system, mode)
        timeout = self.args.timeout or task.timeout
        if mode != "prepare" and self.serves(task) and (mode == "check" or system.name in self.serving):
            return self._serving(task, system, out).request(mode, out, timeout)
        argv = [*self._argv(task, system), "--mode", mode, "--out", str(out)]
        done = self.launcher.run(argv, timeout, out.with_suffix(".log"))
        if done.returncode is None:
            return {"status": "failed", "error": f"timed out after {timeout:g} s ({mode})"}
        if out.is_file():
            result = json.loads(out.read_text())
            if done.returncode != 0:
                result.setdefault("stderr_tail", done.output[-2000:])
            return result
        return died(done.returncode, done.output, mode)

    def set_up_round(self, task, systems) -> dict[str, dict]:
        """Fresh serving workers for one round of a task with cold calls, all set up before the round starts
        (their setups overlap each other, never a timed run); the failures, by system."""
        timeout = self.args.timeout or task.timeout
        sent = []
        for s in systems:
            out = self._report(task, s, "setup")
            self._serving(task, s, out).send("setup", out)
            sent.append((s, out))
        failed = {}
        for s, out in sent:
            r = self.serving[s.name].reply(out, timeout)
            if r["status"] != "ok":
                failed[s.name] = r
                self.close_serving(s.name)
        return failed

    def close_serving(self, name: str | None = None) -> None:
        """Close the serving worker of system ``name``, or every one."""
        for key in [name] if name is not None else list(self.serving):
            worker = self.serving.pop(key, None)
            if worker is not None:
                worker.close()

    def prepare(self, task, system) -> dict:
        """Run the system's ``prepare`` once per benchmark run: the prepare functions build shared stores, and
        many systems and tasks name the same one."""
        key = (system.prepare.__module__, system.prepare.__qualname__)
        if key not in self.prepared:
            log(f"[{task.name}] {system.name}: prepare ...")
            self.prepared[key] = self.worker(task, system, "prepare")
        return self.prepared[key]

    def run_task(self, task, systems) -> dict:
        entry: dict = {
            "title": task.title,
            "throughput": task.throughput,
            "input": {},
            "systems": {s.name: {"status": "pending", "call": s.call} for s in systems},
        }
        results = entry["systems"]

        # 1. inputs, warmed into the page cache
        total = 0
        for relative in task.inputs:
            path = self.data_dir / relative
            if not path.is_file():
                for r in results.values():
                    r.update(status="failed", error=f"input {path} is missing")
                return entry
            total += path.stat().st_size
            seconds = warm(path)
            log(f"[{task.name}] warmed {relative} ({path.stat().st_size / 1e6:.1f} MB in {seconds:.2f} s)")
        entry["input"] = {"files": list(task.inputs), "bytes": total}

        # systems whose modules are missing are never started
        active = []
        for s in systems:
            missing = [m for m in s.modules if importlib.util.find_spec(m) is None]
            if missing:
                results[s.name].update(status="not installed", error=f"no module {', '.join(missing)}")
                log(f"[{task.name}] {s.name}: not installed ({', '.join(missing)})")
            else:
                active.append(s)

        # 2. prepare
        for s in [s for s in active if s.prepare is not None]:
            r = self.prepare(task, s)
            results[s.name]["prepare_s"] = r.get("prepare_s")
            if r["status"] != "ok":
                results[s.name].update(status=r["status"], error=r.get("error"), traceback=r.get("traceback"))
                log(f"[{task.name}] {s.name}: prepare {r['status']}: {r.get('error')}")
        active = [s for s in active if results[s.name]["status"] == "pending"]

        # 3. check (and peak memory)
        for s in active:
            r = self.worker(task, s, "check")
            res = results[s.name]
            res["status"] = r["status"]
            for key in ("error", "stage", "traceback", "stderr_tail"):
                if r.get(key):
                    res[key] = r[key]
            for key in ("versions", "setup_s", "first_run_s", "result_type", "fingerprint", "quick", "notes"):
                if key in r:
                    res[key] = r[key]
            if r.get("result_bytes") is not None:
                res["result_bytes"] = r["result_bytes"]
            memory = ("rss_after_setup_kib", "vmhwm_kib", "ru_maxrss_kib", "rss_after_run_kib", "peak_extra_kib")
            for key in (*memory, "peak_source"):
                if r.get(key) is not None:
                    res[key] = r[key]
            if r.get("peak_extra_kib") is not None:
                res["peak_extra_bytes"] = r["peak_extra_kib"] * 1024
            if r["status"] == "ok":
                log(
                    f"[{task.name}] {s.name}: checked; first run {report.seconds(r['first_run_s'])}, "
                    f"peak extra {report.megabytes(res.get('peak_extra_bytes'))}, "
                    f"result {report.megabytes(res.get('result_bytes'))}"
                )
            else:
                log(f"[{task.name}] {s.name}: {r['status']}: {r.get('error')}")
        self.compare(task, entry)
        active = [s for s in active if results[s.name]["status"] == "ok"]

        # 4. interleaved timing rounds
        rounds = min(self.args.repeat, task.max_rounds or self.args.repeat)
        entry["rounds"] = rounds
        for s in active:
            results[s.name]["times"] = []
            if task.cold:
                results[s.name]["cold_times"] = []
        latencies: dict[str, list[int]] = {s.name: [] for s in active}
        first = 0
        if self.args.small_scale and not task.warmup and task.runs == 1:
            # A convert's check run is a fresh process converting once, exactly as a timed round: in the
            # small-scale mode it counts as round 1 (in the systems' order), to save a convert per system.
            for s in active:
                results[s.name]["times"].append(results[s.name]["first_run_s"])
            entry["first_round_from_check"] = True
            first = 1
        def lost(s, r, round_) -> None:
            res = results[s.name]
            res.update(status="oom" if r["status"] == "oom" else "failed", error=f"round {round_ + 1}: {r.get('error')}")
            for key in ("traceback", "stderr_tail"):
                if r.get(key):
                    res[key] = r[key]
            log(f"[{task.name}] {s.name}: round {round_ + 1} {r['status']}: {r.get('error')}")

        fresh_rounds = self.serves(task) and task.cold  # round 1 in the check's process, then fresh ones
        for round_ in range(first, rounds):
            k = round_ % len(active) if active else 0
            order = active[k:] + active[:k]
            if fresh_rounds and round_ > 0:
                ready = [s for s in order if results[s.name]["status"] == "ok"]
                for name, r in self.set_up_round(task, ready).items():
                    lost(task.system(name), r, round_)
            for s in order:
                res = results[s.name]
                if res["status"] != "ok":
                    continue
                r = self.worker(task, s, "time")
                if fresh_rounds:
                    self.close_serving(s.name)
                if r["status"] != "ok":
                    lost(s, r, round_)
                    continue
                expected = {key: entry["reference_fingerprint"].get(key) for key in r["quick"]}
                if r["quick"] != expected:
                    res.update(status="wrong", mismatch_summary=f"round {round_ + 1}: {r['quick']} != {expected}")
                    log(f"[{task.name}] WRONG ANSWER from {s.name} in round {round_ + 1}: {r['quick']} != {expected}")
                    continue
                res["times"] += r["times"]
                if task.cold and r.get("cold_s") is not None:
                    res["cold_times"].append(r["cold_s"])
                latencies[s.name] += r.get("latency_ns") or []
                log(
                    f"[{task.name}] round {round_ + 1}/{rounds} {s.name}: "
                    + ", ".join(report.seconds(t) for t in r["times"])
                    + (f" (first call {report.seconds(r['cold_s'])})" if task.cold and r.get("cold_s") else "")
                )

        # statistics and ratios
        for name, res in results.items():
            times = res.get("times")
            if times:
                res.update(median=statistics.median(times), min=min(times), max=max(times))
                calls = task.calls_per_run(self.data_dir, name)
                if calls:
                    res["timed_calls"] = calls
                    res["per_call_s"] = res["median"] / calls
                    res["calls_per_s"] = calls / res["median"]
            if res.get("cold_times"):
                res["cold_median"] = statistics.median(res["cold_times"])
            lat = sorted(latencies.get(name) or [])
            if lat:
                res["latency"] = {
                    "samples": len(lat),
                    "p50_s": lat[len(lat) // 2] / 1e9,
                    "p90_s": lat[min(len(lat) - 1, int(len(lat) * 0.90))] / 1e9,
                    "p99_s": lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e9,
                    "max_s": lat[-1] / 1e9,
                }
            if task.stored and res.get("result_bytes") is not None:
                res["stored_bytes"] = res["result_bytes"]
        entry["calls"] = task.calls_per_run(self.data_dir)
        entry["rate"] = task.rate
        entry["cold"] = task.cold
        entry["stored"] = task.stored
        entry["note"] = task.note
        base = results.get("oicore", {})
        for name, res in results.items():
            if name == "oicore" or base.get("status") != "ok":
                continue
            if res.get("per_call_s") and base.get("per_call_s"):
                res["oicore_speedup"] = res["per_call_s"] / base["per_call_s"]
                res["verdict"] = report.verdict(res["oicore_speedup"])
            elif res.get("median") and base.get("median"):
                res["oicore_speedup"] = res["median"] / base["median"]
                res["verdict"] = report.verdict(res["oicore_speedup"])
            if res.get("cold_median") and base.get("cold_median"):
                res["oicore_cold_speedup"] = res["cold_median"] / base["cold_median"]
            if res.get("stored_bytes") and base.get("stored_bytes"):
                res["oicore_size_ratio"] = base["stored_bytes"] / res["stored_bytes"]
        return entry

    def compare(self, task, entry: dict) -> None:
        """Require equal fingerprints; whoever disagrees with the largest group (ties: oicore's) is WRONG."""
        results = entry["systems"]
        ok = [name for name, r in results.items() if r["status"] == "ok"]
        groups: dict[str, list[str]] = {}
        for name in ok:
            groups.setdefault(json.dumps(results[name]["fingerprint"], sort_keys=True), []).append(name)
        if not groups:
            entry["check"] = {"summary": "no system produced an answer"}
            return
        ranked = sorted(groups.values(), key=lambda names: (-len(names), "oicore" not in names, ok.index(names[0])))
        reference = ranked[0]
        ref_fp = results[reference[0]]["fingerprint"]
        entry["reference_fingerprint"] = ref_fp
        entry["rows"] = ref_fp.get("rows")
        if len(ok) == 1:
            summary = f"answer of {ok[0]} not cross-checked (no other system ran)"
        elif len(groups) == 1:
            summary = f"answers checked: {', '.join(ok)} agree"
        else:
            others = [n for names in ranked[1:] for n in names]
            summary = (
                f"ANSWERS DIFFER: {' = '.join(reference)} is taken as the reference; "
                f"{', '.join(others)} {'differs' if len(others) == 1 else 'differ'}"
            )
        entry["check"] = {"summary": summary, "reference": reference}
        for names in ranked[1:]:
            for name in names:
                fp = results[name]["fingerprint"]
                diff = {
                    key: {"got": fp.get(key), "expected": ref_fp.get(key)}
                    for key in sorted(set(fp) | set(ref_fp))
                    if fp.get(key) != ref_fp.get(key)
                }
                shown = "; ".join(f"{k} {d['got']!r} != {d['expected']!r}" for k, d in diff.items())
                results[name].update(
                    status="wrong",
                    mismatch=diff,
                    mismatch_summary=f"differs from {reference[0]}: {shown}",
                )
                log(f"[{task.name}] WRONG ANSWER from {name} (reference {', '.join(reference)}): {shown}")


WORKER_MODES = {
    "fork": "forked from a pre-imported parent",
    "exec": "a fresh interpreter each",
}


def enough_disk(args) -> bool:
    """Print the disk the run will need and the free disk; False (refuse) when there is not enough."""
    if args.data is not None:
        sources = args.data.resolve()
        e = disk.estimate(None, sources, data.DATA_ROOT / "work" / sources.name, source_bytes=disk._bytes_under(sources))
    else:
        sources = data.release_dir(args.scale)
        e = disk.estimate(args.scale, sources, data.DATA_ROOT / "work" / sources.name)
    log(disk.describe(e, None if args.data is not None else args.scale))
    if e["needed"] > e["free"]:
        log(
            f"error: not enough free disk: {e['needed'] / 1e9:.1f} GB more are needed and {e['free'] / 1e9:.1f} GB "
            f"are free on {e['where']}; free some space, or choose a smaller --scale"
        )
        return False
    return True


def run_tasks(runner, args, all_tasks, record) -> None:
    for name in args.tasks:
        task = all_tasks[name]
        systems = [s for s in task.systems if args.systems is None or s.name in args.systems]
        if not systems:
            log(f"[{name}] skipped: none of the chosen systems implements it")
            continue
        log(f"[{name}] {task.title}: {', '.join(s.name for s in systems)}")
        t0 = time.time()
        try:
            record["tasks"][name] = runner.run_task(task, systems)
        finally:
            runner.close_serving()
        record["tasks"][name]["wall_s"] = round(time.time() - t0, 1)


def parse_args(argv):
    all_tasks = tasks.load_all()
    all_systems = sorted({s for t in all_tasks.values() for s in t.system_names})
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark oicore against its peers on a synthetic Open Images release.",
        epilog=f"tasks: {', '.join(all_tasks)}; systems: {', '.join(all_systems)}",
    )
    p.add_argument("--scale", type=float, default=0.1, help="synthetic release scale (default 0.1)")
    p.add_argument("--tasks", nargs="+", default=list(all_tasks), metavar="TASK", help="default: all")
    p.add_argument("--systems", nargs="+", metavar="SYSTEM", help="default: all (oicore and every peer)")
    p.add_argument(
        "--repeat", type=int, default=None,
        help="interleaved timing rounds (default 5; converts at most 3)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results directory (default {RESULTS.relative_to(REPO)})")
    p.add_argument("--data", type=Path, help="use this release directory as is instead of the synthetic one")
    p.add_argument("--regenerate", action="store_true", help="generate the synthetic release again")
    p.add_argument("--timeout", type=float, help="seconds allowed to one worker process (default: per task)")
    p.add_argument(
        "--workers", choices=("fork", "exec"), default=None,
        help="fork: workers forked from a pre-imported parent (default below scale 0.1); "
        "exec: a fresh interpreter per worker (default from 0.1 on, and with --data)",
    )  # fmt: skip
    # RLIMIT_AS of every worker (20 GB); hidden: a small value tests the "out of memory" path at a small scale
    p.add_argument("--memory-limit", type=memory_limit.parse_size, default=memory_limit.DEFAULT, help=argparse.SUPPRESS)
    p.add_argument("--list", action="store_true", help="list the tasks and their systems, then exit")
    args = p.parse_args(argv)
    # The small-scale mode (below 0.1): forked workers, a convert's check run as its first round
    args.small_scale = args.scale < 0.1 and args.data is None
    if args.workers is None:
        args.workers = "fork" if args.small_scale and launch.FORK_AVAILABLE else "exec"
    if args.workers == "fork" and not launch.FORK_AVAILABLE:
        p.error("--workers fork needs Linux (os.fork and os.pidfd_open)")
    args.tasks = [n for item in args.tasks for n in item.split(",") if n]
    args.systems = [n for item in args.systems for n in item.split(",") if n] if args.systems else None
    for name in args.tasks:
        if name not in all_tasks:
            p.error(f"unknown task {name!r}; known tasks: {', '.join(all_tasks)}")
    for name in args.systems or ():
        if name not in all_systems:
            p.error(f"unknown system {name!r}; known systems: {', '.join(all_systems)}")
    if args.repeat is None:
        args.repeat = 5
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.scale <= 0:
        p.error("--scale must be positive")
    return args, all_tasks


def main(argv=None) -> int:
    args, all_tasks = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        for name, task in all_tasks.items():
            print(f"{name}: {task.title}")
            for s in task.systems:
                print(f"  {s.name:16} {s.call}")
        return 0
    env = child_env()
    started = time.time()
    if not enough_disk(args):
        return 2
    launcher = launch.launcher(args.workers, REPO, env)
    launcher.preload()  # the fork server imports the libraries while the data is generated
    if args.data is not None:
        data_dir = args.data.resolve()
        marker = data.read_marker(data_dir)
    else:
        try:
            data_dir = data.ensure_release(args.scale, regenerate=args.regenerate, env=env, log=log)
        except RuntimeError as exc:
            log(f"error: {exc}")
            launcher.close()
            return 2
        marker = data.read_marker(data_dir)
    record = {
        "format": 1,
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        "command": ["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)],
        "scale": marker["scale"] if marker else None if args.data is not None else args.scale,
        "repeat": args.repeat,
        "data_dir": str(data_dir),
        "data": {k: marker.get(k) for k in ("release", "scale", "seed", "synth_sources_sha256", "created")}
        if marker
        else None,
        "workers": args.workers,
        "small_scale": args.small_scale,
        "memory_limit_bytes": args.memory_limit,
        "machine": report.machine(),
        "versions": report.versions(),
        "oicore": report.oicore_info(),
        "tasks": {},
    }
    log(
        f"workers: {args.workers} ({WORKER_MODES[args.workers]}); "
        + ("small-scale mode: one worker per system serves a task without cold calls; " if args.small_scale else "")
        + f"memory limit {memory_limit.shown(args.memory_limit)}"
    )
    with tempfile.TemporaryDirectory(prefix="oicore-bench-") as scratch:
        runner = Runner(args, launcher, data_dir, Path(scratch))
        try:
            run_tasks(runner, args, all_tasks, record)
        finally:
            runner.launcher.close()
    record["duration_s"] = round(time.time() - started, 1)

    text = report.markdown(record)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    (args.out / f"{stamp}.json").write_text(json.dumps(record, indent=1) + "\n")
    (args.out / f"{stamp}.md").write_text(text)
    shutil.copyfile(args.out / f"{stamp}.json", args.out / "latest.json")
    shutil.copyfile(args.out / f"{stamp}.md", args.out / "latest.md")
    print(text)
    log(f"results: {args.out / f'{stamp}.json'} (and latest.json, latest.md) in {record['duration_s']} s")
    chart = report.chart(record, args.out / f"{stamp}.png")
    if chart is None:
        log("chart: skipped (matplotlib is not installed; pip install matplotlib, or the bench extra)")
    elif isinstance(chart, str):
        log(f"chart: skipped ({chart})")
    else:
        shutil.copyfile(chart, args.out / "latest.png")
        log(f"chart: {chart} (and latest.png)")

    wrong = [
        f"{task}/{system}"
        for task, entry in record["tasks"].items()
        for system, r in entry["systems"].items()
        if r["status"] == "wrong"
    ]
    if wrong:
        log(f"WRONG ANSWERS: {', '.join(wrong)}")
        return 1
    return 0
