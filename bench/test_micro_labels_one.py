"""Micro-benchmark of the ``labels_one`` task (bench/tasks/labels_one.py) over every system."""

import pytest

from bench import tasks
from bench.conftest import run_micro

TASK = tasks.load("labels_one")


@pytest.mark.benchmark(group=TASK.name)
@pytest.mark.parametrize("system", TASK.systems, ids=TASK.system_names)
def test_labels_one(benchmark, micro, system):
    run_micro(benchmark, micro, TASK, system)
