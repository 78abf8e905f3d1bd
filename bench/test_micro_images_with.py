"""Micro-benchmark of the ``images_with`` task (bench/tasks/images_with.py) over every system."""

import pytest

from bench import tasks
from bench.conftest import run_micro

TASK = tasks.load("images_with")


@pytest.mark.benchmark(group=TASK.name)
@pytest.mark.parametrize("system", TASK.systems, ids=TASK.system_names)
def test_images_with(benchmark, micro, system):
    run_micro(benchmark, micro, TASK, system)
