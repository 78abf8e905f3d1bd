"""oicore's benchmark harness: ``python -m bench`` from the repository root.

Not part of the installed package and never collected by the test suite. It
never decides pass/fail on speed; it does fail loudly when a system returns a
wrong answer. See ``bench/README.md``.

Layout:

- ``task.py``      what a task and a system are (dataclasses only);
- ``tasks/``       one module per task, registered in ``tasks/__init__.py``;
- ``data.py``      the synthetic release each run reads, cached in ``bench/data/``;
- ``_worker.py``   runs one system of one task in a fresh process and reports JSON;
- ``runner.py``    the command line: spawns workers, interleaves rounds, checks answers;
- ``report.py``    machine facts, the JSON record and the Markdown table.

The runner process itself imports no data library (no numpy, pyarrow, pandas),
so every worker it spawns starts from a small, equal footing.
"""
