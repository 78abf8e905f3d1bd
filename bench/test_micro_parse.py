"""Micro-benchmark of the ``parse`` task (bench/tasks/parse.py) over every system."""

import pytest

from bench import tasks

TASK = tasks.load("parse")


@pytest.mark.benchmark(group=TASK.name)
@pytest.mark.parametrize("system", TASK.systems, ids=TASK.system_names)
def test_parse(benchmark, micro, system):
    state = micro.setup(TASK, system)
    micro.check(TASK, system, system.run(state))  # the answer is checked once, before any timing
    benchmark.extra_info["call"] = system.call
    benchmark(system.run, state)
