"""Micro-benchmark of the ``convert`` task (bench/tasks/convert.py) over every system."""

import pytest

from bench import tasks
from bench.conftest import run_micro

TASK = tasks.load("convert")


@pytest.mark.benchmark(group=TASK.name)
@pytest.mark.parametrize("system", TASK.systems, ids=TASK.system_names)
def test_convert(benchmark, micro, system):
    run_micro(benchmark, micro, TASK, system)
