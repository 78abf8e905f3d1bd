"""Micro-benchmark of the ``boxes_class_rare`` task (bench/tasks/boxes_class_rare.py) over every system."""

import pytest

from bench import tasks
from bench.conftest import run_micro

TASK = tasks.load("boxes_class_rare")


@pytest.mark.benchmark(group=TASK.name)
@pytest.mark.parametrize("system", TASK.systems, ids=TASK.system_names)
def test_boxes_class_rare(benchmark, micro, system):
    run_micro(benchmark, micro, TASK, system)
