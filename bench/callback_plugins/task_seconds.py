# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark helper: write each task's wall time to $TASK_SECONDS_FILE (JSON lines)."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: task_seconds
type: aggregate
short_description: Record task durations for the benchmarks
description: Appends one JSON line per finished task, with its name and seconds, to E(TASK_SECONDS_FILE).
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_seconds"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._start = None
        self._path = os.environ.get("TASK_SECONDS_FILE")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start = (task.get_name(), time.perf_counter())

    def v2_runner_on_ok(self, result):
        if self._path and self._start:
            name, start = self._start
            with open(self._path, "a") as handle:
                handle.write(json.dumps({"task": name, "seconds": time.perf_counter() - start,
                                         "changed": bool(result._result.get("changed"))}) + "\n")
