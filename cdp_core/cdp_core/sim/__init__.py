"""Simulated FR3 precision tasks on franky-sim's MuJoCo FR3 model (needs the ``sim`` extra).

The same task definition (scene fragment, randomisation, observation, success test, time
limit) serves the fast in-process path here and the robot-in-the-loop path, where
franky-sim's libfranka-protocol server steps the same MuJoCo scene.
"""

from .tasks import TASKS, Task, UnknownTaskError, get_task

__all__ = ["TASKS", "Task", "UnknownTaskError", "get_task"]
