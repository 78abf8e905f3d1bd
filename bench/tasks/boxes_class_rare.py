"""boxes_class_rare: every box of one of the rarest classes (``boxes(label)``), warm and cold.

The same task as ``boxes_class`` (see there), for the class with the fewest boxes (ties: the smallest MID):
oicore and numpy read only that class's rows, while a mask or a filter still scans every row.
"""

from __future__ import annotations

from bench.tasks.boxes_class import make_task

TASK = make_task("boxes_class_rare", "rare")
