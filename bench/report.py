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
LIBRARIES = ("numpy", "pyarrow", "pandas", "polars", "duckdb", "pytest-benchmark", "Cython")


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

    info["commit"] = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--", "src", "include", "setup.py", "pyproject.toml")
    info["dirty"] = None if status is None else bool(status)
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


def task_markdown(name: str, entry: dict) -> str:
    lines = [f"## {name}: {entry['title']}", ""]
    inp = entry.get("input", {})
    facts = []
    if inp.get("bytes") is not None:
        facts.append(f"input {megabytes(inp['bytes'])}")
    if entry.get("rows") is not None:
        facts.append(f"{entry['rows']:,} rows")
    check = entry.get("check", {})
    if check.get("summary"):
        facts.append(check["summary"])
    if facts:
        lines += ["; ".join(facts) + ".", ""]
    throughput = entry.get("throughput") and inp.get("bytes")
    ratios = any(s.get("oicore_speedup") for s in entry["systems"].values())
    header = ["system", "median", "min – max", "MB/s" if throughput else None, "peak extra", "result"]
    header += ["vs oicore"] if ratios else []
    header = [h for h in header if h is not None]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" if h in ("system", "vs oicore") else "--:" for h in header) + "|")
    for system, s in entry["systems"].items():
        status = s["status"]
        label = f"**{system}**" if system == "oicore" else system
        if status != "ok" or not s.get("times"):
            what = {
                "unavailable": "not available",
                "failed": "failed",
                "wrong": "**WRONG ANSWER**",
                "not installed": "not installed",
                "skipped": "skipped",
            }.get(status, status)
            detail = s.get("mismatch_summary") or s.get("error")
            text = f"{what}: {_short(detail)}" if detail else what
            lines.append(f"| {label} | {_cell(text)} |" + " |" * (len(header) - 2))
            continue
        row = [label, seconds(s["median"]), f"{seconds(s['min'])} – {seconds(s['max'])}"]
        if throughput:
            row.append(f"{inp['bytes'] / s['median'] / 1e6:,.0f}")
        row += [megabytes(s.get("peak_extra_bytes")), megabytes(s.get("result_bytes"))]
        if ratios:
            row.append("" if system == "oicore" else verdict(s.get("oicore_speedup")) or "–")
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    calls = [f"`{system}`: `{s['call']}`" for system, s in entry["systems"].items() if s.get("call")]
    if calls:
        lines += ["", "Calls timed: " + "; ".join(calls) + "."]
    return "\n".join(lines)


def _data(record: dict) -> str:
    d = record.get("data")
    if d and d.get("scale") is not None:
        return f"synthetic {d.get('release')} release at scale {d['scale']:g} (seed {d.get('seed')})"
    return f"data `{record['data_dir']}`"


def markdown(record: dict) -> str:
    m, v, o = record["machine"], record["versions"], record["oicore"]
    commit = o["commit"][:10] if o.get("commit") else "no git commit"
    commit += " + uncommitted changes" if o.get("dirty") else ""
    libs = " · ".join(f"{k} {val}" for k, val in v.items() if val and k not in ("pytest-benchmark", "Cython"))
    rounds = f"{record['repeat']} interleaved round{'s' if record['repeat'] != 1 else ''}"
    lines = [
        "# oicore benchmarks",
        "",
        f"{record['started']} · {_data(record)} · {rounds}, "
        f"one fresh process per system and round (median of the rounds; peak memory from a separate process)",
        "",
        f"{m['cpu_model']}, {m['cores_usable']} of {m['cores']} cores, {m['memory_gib']} GiB"
        + (f", load {m['load_average_at_start'][0]:.1f} at start" if m.get("load_average_at_start") else "")
        + " · "
        f"Python {m['python']} · oicore {o.get('version')} ({commit}) · {libs}"
        + "".join(f" · {k}={val}" for k, val in m.get("environment", {}).items()),
        "",
        "peak extra = resident high-water mark during one run (VmHWM, reset after the imports) "
        "minus resident memory after the imports; "
        "result = the result's buffers; "
        f"medians within {TIE - 1:.0%} of each other are a tie.",
    ]
    for name, entry in record["tasks"].items():
        lines += ["", task_markdown(name, entry)]
    return "\n".join(lines) + "\n"
