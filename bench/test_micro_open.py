"""Micro-benchmark of the ``open`` task (bench/tasks/open.py) over every system."""

import pytest

from bench import tasks
from bench.conftest import run_micro

TASK = tasks.load("open")


@pytest.mark.benchmark(group=TASK.name)
@pytest.mark.parametrize("system", TASK.systems, ids=TASK.system_names)
def test_open(benchmark, micro, system):
    run_micro(benchmark, micro, TASK, system)
