"""Micro-benchmark of the ``class_counts`` task (bench/tasks/class_counts.py) over every system."""

import pytest

from bench import tasks
from bench.conftest import run_micro

TASK = tasks.load("class_counts")


@pytest.mark.benchmark(group=TASK.name)
@pytest.mark.parametrize("system", TASK.systems, ids=TASK.system_names)
def test_class_counts(benchmark, micro, system):
    run_micro(benchmark, micro, TASK, system)
