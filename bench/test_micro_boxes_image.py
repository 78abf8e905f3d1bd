"""Micro-benchmark of the ``boxes_image`` task (bench/tasks/boxes_image.py) over every system."""

import pytest

from bench import tasks
from bench.conftest import run_micro

TASK = tasks.load("boxes_image")


@pytest.mark.benchmark(group=TASK.name)
@pytest.mark.parametrize("system", TASK.systems, ids=TASK.system_names)
def test_boxes_image(benchmark, micro, system):
    run_micro(benchmark, micro, TASK, system)
