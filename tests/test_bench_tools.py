"""bench.compare_layouts, run as its users run it (``python -m`` from the repository root)."""

import os
import pathlib
import subprocess
import sys

import oicore

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _run(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "bench.compare_layouts", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_compare_layouts_times_two_files_of_one_release(tmp_path):
    oicore.synth(tmp_path / "src", scale=0.0002, seed=3, release="v3")
    a, b = tmp_path / "a.oic", tmp_path / "b.oic"
    oicore.convert(tmp_path / "src", a)
    oicore.convert(tmp_path / "src", b, level=1)  # another file of the same images
    for lookup in ("labels", "boxes_for_image"):
        done = _run(a, b, "--rounds", 2, "--calls", 50, "--seed", 1, "--lookup", lookup)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith(f"A {a}: median ") and lines[1].startswith(f"B {b}: median ")
        assert lines[2].startswith("B - A per pair of rounds: median ")


def test_compare_layouts_refuses_files_of_different_releases(tmp_path):
    for seed in (3, 4):
        oicore.synth(tmp_path / f"src{seed}", scale=0.0002, seed=seed, release="v3")
        oicore.convert(tmp_path / f"src{seed}", tmp_path / f"{seed}.oic")
    done = _run(tmp_path / "3.oic", tmp_path / "4.oic", "--rounds", 1, "--calls", 10)
    assert done.returncode == 2
    assert "the two files hold different images" in done.stderr
