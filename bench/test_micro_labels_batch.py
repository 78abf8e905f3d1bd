"""Micro-benchmark of the ``labels_batch`` task (bench/tasks/labels_batch.py) over every system."""

import pytest

from bench import tasks
from bench.conftest import run_micro

TASK = tasks.load("labels_batch")


@pytest.mark.benchmark(group=TASK.name)
@pytest.mark.parametrize("system", TASK.systems, ids=TASK.system_names)
def test_labels_batch(benchmark, micro, system):
    run_micro(benchmark, micro, TASK, system)
