"""The task table: one module per task, in report order.

To add a task, write ``bench/tasks/<name>.py`` defining ``TASK = Task(...)``
and add its name here. Nothing else in the harness needs to change.
"""

from __future__ import annotations

import importlib

from bench.task import Task

TASK_MODULES: tuple[str, ...] = (
    "parse",
    "convert",
    "open",
    "labels_one",
    "labels_batch",
    "boxes_image",
    "boxes_class",
    "boxes_class_rare",
    "images_with",
    "class_counts",
)


def load(name: str) -> Task:
    """The task called ``name``; a KeyError lists the known ones."""
    if name not in TASK_MODULES:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(TASK_MODULES)}")
    task = importlib.import_module(f"bench.tasks.{name}").TASK
    assert task.name == name, f"bench/tasks/{name}.py defines task {task.name!r}"
    return task


def load_all() -> dict[str, Task]:
    return {name: load(name) for name in TASK_MODULES}
