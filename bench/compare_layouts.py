"""Compare two .oic files of the same release for single-lookup speed, in one process.

    python -m bench.compare_layouts A.oic B.oic [--rounds 40] [--calls 10000] [--lookup labels]

On a shared VM the time of one ``labels()`` call moves by ±0.5 µs from run to run, more than most layout changes
are worth. Here both files are open in one process and timed in alternating rounds (A then B, then B then A), each
round over fresh random known IDs, so noise hits both alike; the paired difference (B - A per pair of rounds) is
what to read. Both files must hold the same images (for example the same sources converted by two builds).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import oicore


def _labels_round(lookup, keys: list) -> float:
    start = time.perf_counter()
    for k in keys:  # the benchmark's call: r = release.labels(id); r.label; r.confidence
        r = lookup(k)
        r.label, r.confidence
    return (time.perf_counter() - start) / len(keys)


def _boxes_round(lookup, keys: list) -> float:
    start = time.perf_counter()
    for k in keys:
        lookup(k).boxes
    return (time.perf_counter() - start) / len(keys)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare_layouts", description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="the first .oic file")
    parser.add_argument("b", help="the second .oic file (the same images)")
    parser.add_argument("--rounds", type=int, default=40, help="rounds per file (default 40)")
    parser.add_argument("--calls", type=int, default=10_000, help="random known IDs per round (default 10,000)")
    parser.add_argument("--lookup", choices=("labels", "boxes_for_image"), default="labels")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random IDs (default: from the clock)")
    args = parser.parse_args(argv)
    releases = [oicore.open(args.a), oicore.open(args.b)]
    ids = releases[0].image_ids()
    if not np.array_equal(ids, releases[1].image_ids()):
        parser.error("the two files hold different images")
    rng = np.random.default_rng(args.seed)
    lookups = [getattr(r, args.lookup) for r in releases]
    timed = _labels_round if args.lookup == "labels" else _boxes_round
    for k in rng.choice(ids, min(len(ids), 4 * args.calls)).tolist():  # warm: every block checked, pages mapped
        lookups[0](k), lookups[1](k)
    times: list[list[float]] = [[], []]
    for i in range(args.rounds):
        for w in (0, 1) if i % 2 == 0 else (1, 0):
            times[w].append(timed(lookups[w], rng.choice(ids, args.calls).tolist()))
    for w, path in enumerate((args.a, args.b)):
        t = np.array(times[w]) * 1e6
        print(f"{'AB'[w]} {path}: median {np.median(t):.3f} µs, min {t.min():.3f}, max {t.max():.3f}")
    diff = (np.array(times[1]) - np.array(times[0])) * 1e6
    print(f"B - A per pair of rounds: median {np.median(diff):+.3f} µs, mean {diff.mean():+.3f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
