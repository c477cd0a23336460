"""Per-task wall times of every playbook run, appended as one JSON line per run to the file KGW_TASK_TIMES names.

Neither of Ansible's own timing callbacks is installed here (`profile_tasks` and `timer` live in the ansible.posix
collection, not in ansible-core), and the suite's timing tables need the figures as data, not as printed text.
A playbook started by a task of another one (the check-mode runs in verify) inherits the environment and records
itself with a larger `depth`, so its tasks are not counted twice under the outer task that ran it.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_times
type: aggregate
short_description: append each playbook run's per-task wall times to the JSON-lines file $KGW_TASK_TIMES
description: One line per run - the playbook, its nesting depth, start and end, and each task's seconds.
requirements: [the environment variable KGW_TASK_TIMES names the file; without it nothing is written]
"""

DEPTH_VARIABLE = "KGW_TASK_TIMES_DEPTH"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("KGW_TASK_TIMES")
        self._depth = int(os.environ.get(DEPTH_VARIABLE, "0"))
        # children (a playbook run by a task) see one level more
        os.environ[DEPTH_VARIABLE] = str(self._depth + 1)
        self._playbook = ""
        self._began = time.time()
        self._tasks: list[dict[str, object]] = []
        self._current: tuple[str, str, float] | None = None

    def _close_task(self) -> None:
        if self._current is not None:
            name, role, started = self._current
            self._tasks.append({"task": name, "role": role, "seconds": round(time.monotonic() - started, 3)})
            self._current = None

    def _open_task(self, task) -> None:
        self._close_task()
        role = task._role.get_name() if getattr(task, "_role", None) else ""
        self._current = (task.get_name().strip(), role, time.monotonic())

    def v2_playbook_on_start(self, playbook) -> None:
        self._playbook = os.path.basename(playbook._file_name)

    def v2_playbook_on_play_start(self, play) -> None:
        self._close_task()

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._open_task(task)

    def v2_playbook_on_handler_task_start(self, task) -> None:
        self._open_task(task)

    def v2_playbook_on_stats(self, stats) -> None:
        self._close_task()
        if not self._path:
            return
        record = {"playbook": self._playbook, "depth": self._depth, "began": round(self._began, 3),
                  "ended": round(time.time(), 3), "tasks": self._tasks}
        with open(self._path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
