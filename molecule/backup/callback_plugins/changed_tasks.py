# The backup scenario's record of the tasks that changed something, so that converge can check that
# the role's run in check mode predicted its real run: with MB_CHANGED_LOG set, one line per changed
# task, "<play name>\t<task name>".

from __future__ import annotations

import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: changed_tasks
type: notification
short_description: Record the tasks that changed something (the backup scenario's)
description:
  - Appends "<play>\\t<task>" for each changed task to the file named by E(MB_CHANGED_LOG).
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "changed_tasks"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self):
        super().__init__()
        self._log = os.environ.get("MB_CHANGED_LOG")
        self._play = ""

    def v2_playbook_on_play_start(self, play):
        self._play = play.get_name()

    def v2_runner_on_ok(self, result):
        if self._log and result._result.get("changed"):
            with open(self._log, "a") as handle:
                handle.write("%s\t%s\n" % (self._play, result._task.get_name()))
