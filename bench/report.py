"""Facts about the run (machine, versions, commit) and the Markdown report.

Everything here runs in the runner, so it finds library versions through
package metadata rather than by importing the libraries.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIE = 1.25  # medians within 25% of each other are a tie (PERFORMANCE_NOTES: runs vary by up to 3x)
THREAD_VARIABLES = (
    "OICORE_NUM_THREADS",
    "POLARS_MAX_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "ARROW_NUM_THREADS",
    "ARROW_IO_THREADS",
)
LIBRARIES = ("numpy", "pyarrow", "pandas", "polars", "duckdb", "pylance", "matplotlib", "pytest-benchmark", "Cython")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def machine() -> dict:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or None,
    )
    mem_kib = next(
        (int(line.split()[1]) for line in _read("/proc/meminfo").splitlines() if line.startswith("MemTotal:")), None
    )
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_gib": round(mem_kib / 2**20, 1) if mem_kib else None,
        "load_average_at_start": load,
        # Thread settings change every result; record the ones that are set.
        "environment": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }


def versions() -> dict:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def oicore_info() -> dict:
    """oicore's version, location and git commit; every failure is tolerated and recorded as None."""
    info: dict = {"version": None, "path": None, "commit": None, "dirty": None}
    spec = importlib.util.find_spec("oicore")
    if spec is not None and spec.origin:
        info["path"] = str(Path(spec.origin).parent)
        try:
            import oicore  # cheap by design: no pandas, no pyarrow

            info["version"] = oicore.__version__
        except Exception as exc:  # a broken checkout still gets benchmarked (and reported)
            info["version"] = f"import failed: {type(exc).__name__}: {exc}"

    def git(*args):
        try:
            proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    if info["path"] is not None and not Path(info["path"]).resolve().is_relative_to((REPO / "src").resolve()):
        # oicore comes from elsewhere (an installed wheel, a snapshot): this checkout's commit says nothing
        snapshot = Path(info["path"]).resolve().parent.parent / "COMMIT"
        info["commit"] = snapshot.read_text().strip() if snapshot.is_file() else None
        info["outside_checkout"] = True
        return info
    info["commit"] = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--", "src", "include", "setup.py", "pyproject.toml")
    info["dirty"] = None if status is None else bool(status)
    if info["commit"] is None and (REPO / "COMMIT").is_file():  # an exported snapshot (git archive)
        info["commit"] = (REPO / "COMMIT").read_text().strip()
    return info


# ---------------------------------------------------------------------------------------------- formatting


def seconds(t: float | None) -> str:
    if t is None:
        return "–"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.0f} ms" if t >= 0.1 else f"{t * 1e3:.1f} ms"
    return f"{t * 1e6:.1f} µs"


def megabytes(n_bytes: float | None) -> str:
    return "–" if n_bytes is None else f"{n_bytes / 1e6:,.0f} MB" if n_bytes >= 1e7 else f"{n_bytes / 1e6:,.1f} MB"


def verdict(speedup: float | None) -> str:
    """How oicore compares, from ``speedup`` = peer median / oicore median."""
    if speedup is None:
        return ""
    if speedup >= TIE:
        return f"oicore is {speedup:.1f}× faster"
    if speedup <= 1 / TIE:
        return f"oicore is {1 / speedup:.1f}× slower"
    return f"tie ({speedup:.2f}×)"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _short(error: str | None, limit: int = 90) -> str:
    error = " ".join((error or "").split())
    return error if len(error) <= limit else error[: limit - 1] + "…"


def _rate(x: float | None) -> str:
    if x is None:
        return "–"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.3g} {unit}"
    return f"{x:.3g}"


def _setup_cell(s: dict) -> str:
    """Load + build time recorded by a system's setup (``notes``), e.g. "0.41 s + 2.30 s"."""
    n = s.get("notes") or {}
    load, build = n.get("load_s"), n.get("build_s")
    if load is None and build is None:
        return "–"
    if build is None or build < 5e-4 and load is not None:
        return seconds(load)
    return f"{seconds(load or 0.0)} + {seconds(build)}"


def _size_ratio(r: float | None) -> str:
    return "" if r is None else f"{r:.2f}×"


def task_markdown(name: str, entry: dict) -> str:
    lines = [f"## {name}: {entry['title']}", ""]
    inp = entry.get("input", {})
    calls, rate = entry.get("calls"), entry.get("rate")
    facts = []
    if inp.get("bytes"):
        facts.append(f"input {megabytes(inp['bytes'])}")
    if entry.get("rows") is not None:
        facts.append(f"{entry['rows']:,} rows")
    if calls:
        facts.append(f"{calls:,} {'IDs' if rate else 'calls'} per run")
    if entry.get("rounds") is not None:
        facts.append(f"{entry['rounds']} round{'s' if entry['rounds'] != 1 else ''}")
        if entry.get("first_round_from_check"):
            facts[-1] += " (the first is the check run)"
    if entry.get("wall_s") is not None:
        facts.append(f"task took {entry['wall_s']:.0f} s")
    check = entry.get("check", {})
    if check.get("summary"):
        facts.append(check["summary"])
    if facts:
        lines += ["; ".join(facts) + ".", ""]
    systems = entry["systems"]
    per_call = bool(calls) and not rate
    throughput = entry.get("throughput") and inp.get("bytes")
    ratios = any(s.get("oicore_speedup") for s in systems.values())
    latency = any(s.get("latency") for s in systems.values())
    setup = any((s.get("notes") or {}).get("load_s") is not None for s in systems.values())
    cold = entry.get("cold")
    stored = entry.get("stored")

    columns: list[tuple[str, callable]] = []  # (header, cell(s) -> str)
    if per_call:
        columns.append(("per call", lambda s: seconds(s["per_call_s"])))
        if latency:
            columns.append(("p50", lambda s: seconds((s.get("latency") or {}).get("p50_s"))))
            columns.append(("p99", lambda s: seconds((s.get("latency") or {}).get("p99_s"))))
        columns.append(("min – max", lambda s: f"{seconds(s['min'] / s['timed_calls'])} – {seconds(s['max'] / s['timed_calls'])}"))
        if any(s.get("timed_calls") not in (None, calls) for s in systems.values()):
            columns.append(("calls timed", lambda s: f"{s['timed_calls']:,}"))
    else:
        columns.append(("warm" if cold else "median", lambda s: seconds(s["median"])))
        columns.append(("min – max", lambda s: f"{seconds(s['min'])} – {seconds(s['max'])}"))
        if rate:
            columns.append((rate, lambda s: _rate(s.get("calls_per_s"))))
    if cold:
        columns.append(("cold (1st call)", lambda s: seconds(s.get("cold_median"))))
    if throughput:
        columns.append(("MB/s", lambda s: f"{inp['bytes'] / s['median'] / 1e6:,.0f}"))
    if stored:
        columns.append(("stored", lambda s: megabytes(s.get("stored_bytes"))))
        if inp.get("bytes"):
            columns.append(("of CSV", lambda s: f"{100 * s['stored_bytes'] / inp['bytes']:.1f}%" if s.get("stored_bytes") else "–"))
        columns.append(("oicore ÷ this size", lambda s: _size_ratio(s.get("oicore_size_ratio"))))
    if setup:
        columns.append(("setup: load + build", _setup_cell))
        columns.append(("setup memory", lambda s: megabytes((s.get("notes") or {}).get("build_bytes"))))
    columns.append(("peak extra", lambda s: megabytes(s.get("peak_extra_bytes"))))
    if not stored and any(s.get("result_bytes") is not None for s in systems.values()):
        columns.append(("result", lambda s: megabytes(s.get("result_bytes"))))
    if ratios:
        columns.append(("vs oicore", lambda s: verdict(s.get("oicore_speedup")) or "–"))
    if cold and any(s.get("oicore_cold_speedup") for s in systems.values()):
        columns.append(("cold vs oicore", lambda s: verdict(s.get("oicore_cold_speedup")) or "–"))

    header = ["system"] + [h for h, _ in columns]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" if h in ("system", "vs oicore", "cold vs oicore") else "--:" for h in header) + "|")
    for system, s in systems.items():
        status = s["status"]
        label = f"**{system}**" if system == "oicore" else system
        if status != "ok" or not s.get("times"):
            what = {
                "unavailable": "not available",
                "failed": "failed",
                "wrong": "**WRONG ANSWER**",
                "oom": "out of memory",
                "not installed": "not installed",
                "skipped": "skipped",
            }.get(status, status)
            detail = s.get("mismatch_summary") or s.get("error")
            text = f"{what}: {_short(detail)}" if detail else what
            lines.append(f"| {label} | {_cell(text)} |" + " |" * (len(header) - 2))
            continue
        row = [label]
        for h, cell in columns:
            if system == "oicore" and h in ("vs oicore", "cold vs oicore", "oicore ÷ this size"):
                row.append("")
                continue
            try:
                row.append(cell(s))
            except (KeyError, TypeError, ZeroDivisionError):
                row.append("–")
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    calls_text = [f"`{system}`: `{s['call']}`" for system, s in systems.items() if s.get("call")]
    if calls_text:
        lines += ["", "Calls timed: " + "; ".join(calls_text) + "."]
    if entry.get("note"):
        lines += ["", entry["note"]]
    return "\n".join(lines)


def summary_markdown(record: dict) -> str:
    """One line per task and peer: the oicore/peer ratios the chart shows, and the judged goals."""
    rows = []
    for name, entry in record["tasks"].items():
        for system, s in entry["systems"].items():
            if system == "oicore":
                continue
            if s.get("oicore_speedup"):
                rows.append(f"| {name} | {system} | {verdict(s['oicore_speedup'])} |")
            if s.get("oicore_cold_speedup"):
                rows.append(f"| {name} (cold) | {system} | {verdict(s['oicore_cold_speedup'])} |")
            if s.get("oicore_size_ratio"):
                rows.append(f"| {name} (size) | {system} | oicore's file is {s['oicore_size_ratio']:.2f}× this one |")
    if not rows:
        return ""
    return "\n".join(["## Summary: oicore against each peer", "", "| task | peer | oicore |", "|---|---|---|", *rows])


GOALS = (
    # (measure, goal text, task, system, field, comparison, threshold, how to show the value)
    ("read", "≥ 3× pyarrow", "parse", "pyarrow", "oicore_speedup", ">=", 3.0, "ratio"),
    ("read", "≥ 2.5× pandas", "parse", "pandas", "oicore_speedup", ">=", 2.5, "ratio"),
    ("file size", "≤ 0.75× Parquet+zstd", "convert", "parquet", "oicore_size_ratio", "<=", 0.75, "ratio"),
    ("convert", "≥ 3× Parquet's path", "convert", "parquet", "oicore_speedup", ">=", 3.0, "ratio"),
    ("`labels()`", "≤ 1.5 µs", "labels_one", "oicore", "per_call_s", "<=", 1.5e-6, "seconds"),
    ("`labels()`", "≥ 25× pandas `.loc`", "labels_one", "pandas", "oicore_speedup", ">=", 25.0, "ratio"),
    ("batched lookup", "≥ 10 M IDs/s", "labels_batch", "oicore", "calls_per_s", ">=", 10e6, "rate"),
    ("per-class boxes", "≥ 20× a pandas mask", "boxes_class", "pandas", "oicore_speedup", ">=", 20.0, "ratio"),
    ("open", "≤ 5 ms", "open", "oicore", "median", "<=", 5e-3, "seconds"),
)


def goals_markdown(record: dict) -> str:
    """The judged goals of the reader, format and lookup issues, against this run's figures."""
    rows = []
    for measure, goal, task, system, field, op, threshold, how in GOALS:
        value = record["tasks"].get(task, {}).get("systems", {}).get(system, {}).get(field)
        if value is None:
            continue
        shown = {"ratio": f"{value:.2f}×", "seconds": seconds(value), "rate": f"{_rate(value)} IDs/s"}[how]
        met = value >= threshold if op == ">=" else value <= threshold
        rows.append(f"| {measure} | {goal} | {shown} | {'yes' if met else '**no**'} |")
    if not rows:
        return ""
    head = ['## Goals (issue 5, "How it will be judged")', "", "| measure | goal | this run | met |", "|---|---|--:|---|"]
    return "\n".join(head + rows)


def chart(record: dict, path: Path):
    """A PNG of the oicore/peer ratios (peer time ÷ oicore time, log scale; size: peer bytes ÷ oicore bytes).

    Returns the path, None when matplotlib is not installed, or a string saying why nothing was drawn.
    """
    if importlib.util.find_spec("matplotlib") is None:
        return None
    bars = []  # (task, peer, ratio)
    for name, entry in record["tasks"].items():
        for system, s in entry["systems"].items():
            if system == "oicore":
                continue
            if s.get("oicore_speedup"):
                bars.append((name, system, s["oicore_speedup"]))
            if s.get("oicore_cold_speedup"):
                bars.append((f"{name} cold", system, s["oicore_cold_speedup"]))
            if s.get("oicore_size_ratio"):
                bars.append((f"{name} size", system, 1 / s["oicore_size_ratio"]))
    if not bars:
        return "no ratios to draw"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(t for t, _, _ in bars))
    peers = sorted({p for _, p, _ in bars})
    colours = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(peers)}
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(bars) + 1.6 + 0.25 * len(tasks)))
    y, ticks, labels = 0.0, [], []
    for t in tasks:
        for task_name, peer, ratio in bars:
            if task_name != t:
                continue
            ax.barh(y, ratio, color=colours[peer], height=0.8)
            ax.text(ratio * 1.06, y, f"{ratio:.3g}×", va="center", ha="left", fontsize=7)
            ticks.append(y)
            labels.append(f"{t} · {peer}")
            y += 1
        y += 0.6
    ax.set_xscale("log", base=10)
    ax.axvline(1, color="black", linewidth=0.8)
    ax.axvspan(1 / TIE, TIE, color="grey", alpha=0.15, label=f"tie (within {TIE - 1:.0%})")
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("peer ÷ oicore (time, or size for 'size' rows): > 1 means oicore is faster / smaller")
    scale = (record.get("data") or {}).get("scale")
    ax.set_title(f"oicore against its peers · scale {scale:g}" if scale is not None else "oicore against its peers",
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _data(record: dict) -> str:
    d = record.get("data")
    if d and d.get("scale") is not None:
        return f"synthetic {d.get('release')} release at scale {d['scale']:g} (seed {d.get('seed')})"
    return f"data `{record['data_dir']}`"


def markdown(record: dict) -> str:
    m, v, o = record["machine"], record["versions"], record["oicore"]
    commit = o["commit"][:10] if o.get("commit") else "no git commit"
    commit += " + uncommitted changes" if o.get("dirty") else ""
    if o.get("outside_checkout"):
        commit += f", from {o.get('path')}"
    libs = " · ".join(f"{k} {val}" for k, val in v.items() if val and k not in ("pytest-benchmark", "Cython", "matplotlib"))
    rounds = f"{record['repeat']} interleaved round{'s' if record['repeat'] != 1 else ''}"
    if record.get("small_scale"):
        process = (
            "small-scale mode: "
            + ("workers forked from a parent that imported the libraries; " if record.get("workers") == "fork" else "")
            + "one worker per system serves a task's check and rounds (a fresh one per round for cold calls and "
            "converts); one timed run per round"
        )
    else:
        process = "one fresh interpreter per system and round" if record.get("workers", "exec") == "exec" else (
            "one process per system and round, forked from a parent that imported the libraries"
        )
    limit = record.get("memory_limit_bytes")
    lines = [
        "# oicore benchmarks",
        "",
        f"{record['started']} · {_data(record)} · {rounds}, "
        f"{process} (median of the rounds; peak memory from a separate process)"
        + (f"; every worker under a {limit / 1e9:g} GB address-space limit (RLIMIT_AS)" if limit else ""),
        "",
        f"{m['cpu_model']}, {m['cores_usable']} of {m['cores']} cores, {m['memory_gib']} GiB"
        + (f", load {m['load_average_at_start'][0]:.1f} at start" if m.get("load_average_at_start") else "")
        + " · "
        f"Python {m['python']} · oicore {o.get('version')} ({commit}) · {libs}"
        + "".join(f" · {k}={val}" for k, val in m.get("environment", {}).items()),
        "",
        f"threads: each library's default on {m['cores_usable']} cores (oicore, pyarrow, polars, duckdb and lance "
        "one per core; pandas and numpy one). "
        "peak extra = resident high-water mark during one run (VmHWM, reset after setup) "
        "minus resident memory after setup (imports, and the load and build a system needs before it can answer); "
        "result = the result's buffers; "
        f"medians within {TIE - 1:.0%} of each other are a tie.",
    ]
    for extra in (goals_markdown(record), summary_markdown(record)):
        if extra:
            lines += ["", extra]
    for name, entry in record["tasks"].items():
        lines += ["", task_markdown(name, entry)]
    return "\n".join(lines) + "\n"
