"""oicore's benchmark harness: ``python -m bench`` from the repository root.

Not part of the installed package and never collected by the test suite. It
never decides pass/fail on speed; it does fail loudly when a system returns a
wrong answer. See ``bench/README.md``.

Layout:

- ``task.py``      what a task and a system are (dataclasses only);
- ``tasks/``       one module per task, registered in ``tasks/__init__.py``;
- ``data.py``      the synthetic release each run reads, cached in ``bench/data/``;
- ``_worker.py``   runs one system of one task in a fresh process and reports JSON;
- ``launch.py``    starts workers: a fresh interpreter, or a fork of ``_forkserver.py``;
- ``serving.py``   the small-scale mode's worker that serves a task's check and rounds;
- ``disk.py``, ``memory_limit.py``  the disk a run needs; the workers' memory limit;
- ``runner.py``    the command line: spawns workers, interleaves rounds, checks answers;
- ``report.py``    machine facts, the JSON record and the Markdown table;
- ``compare_layouts.py``  two ``.oic`` files of one release, single lookups timed against each other
  in one process (``python -m bench.compare_layouts A.oic B.oic``).

The runner process itself imports no data library (no numpy, pyarrow, pandas),
so every worker it spawns starts from a small, equal footing (the fork server
imports them once, for the forked workers of the small-scale mode).
"""
