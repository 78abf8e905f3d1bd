"""Micro-benchmark of the ``boxes_class`` task (bench/tasks/boxes_class.py) over every system."""

import pytest

from bench import tasks
from bench.conftest import run_micro

TASK = tasks.load("boxes_class")


@pytest.mark.benchmark(group=TASK.name)
@pytest.mark.parametrize("system", TASK.systems, ids=TASK.system_names)
def test_boxes_class(benchmark, micro, system):
    run_micro(benchmark, micro, TASK, system)
