# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The manager base: what a run did (``actions``), whether it changed anything, and its diff.

Every module's manager derives from :class:`Manager`: it gets the module
(``self.dm``), its parameters and check mode, records each change it makes (or
would make in check mode) with :meth:`Manager.act`, and ends with
:meth:`Manager.finish`, which adds ``changed``, ``actions`` and, in diff mode
only, ``diff``. A diff is built by :func:`diff_of`, one shape for all modules:
``{before, after}`` (dicts of the state, or texts of a file with its name as
header); a module that changes several files gives a list of them.

This file imports no Docker SDK.
"""

from __future__ import annotations


def diff_of(before, after, header=None):
    """The diff Ansible shows with --diff (pure).

    before and after are dicts (a state) or texts (a file's content, then ``header`` names the file).
    """
    diff = dict(before=before, after=after)
    if header is not None:
        diff.update(before_header=header, after_header=header)
    return diff


class Manager:
    """The base of a module's manager: run() reads, plans, acts unless in check mode, and returns finish()."""

    def __init__(self, dm):
        self.dm = dm
        self.params = dm.params
        self.check_mode = dm.check_mode
        self.actions = []

    @property
    def api(self):
        """The module's Docker client (client.DockerModule), connected on first use."""
        return self.dm.api

    def act(self, text):
        """Record one change made (or, in check mode, that a real run would make)."""
        self.actions.append(text)

    def finish(self, result, before=None, after=None, diffs=None, changed=None):
        """result with ``changed`` (by default: any action), ``actions`` and, in diff mode, ``diff``.

        The diff is :func:`diff_of` (before, after), or ``diffs``, a list of them, when given.
        """
        result["changed"] = bool(self.actions) if changed is None else changed
        result["actions"] = self.actions
        if self.dm.diff_mode:
            result["diff"] = diff_of(before, after) if diffs is None else diffs
        return result
