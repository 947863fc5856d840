# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The module base: argument spec, check and diff mode, the one error path, the exit.

``PersistModule(spec, **ansible_module_kwargs).run(ManagerClass)`` builds the
AnsibleModule, runs ``ManagerClass(self).run()`` and exits with the result dict
it returns. A :class:`DockerError` raised anywhere below becomes
``fail_json(msg=...)`` with its one-line message and no traceback.

This file imports no Docker SDK: the connection to an engine is
``client.DockerModule``, which builds on this class.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


class PersistModule:
    """An AnsibleModule that runs one manager and has one way out on error."""

    def __init__(self, argument_spec, **kwargs):
        kwargs.setdefault("supports_check_mode", True)
        self.module = AnsibleModule(argument_spec=argument_spec, **kwargs)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self.diff_mode = self.module._diff

    def fail(self, msg, **result):
        self.module.fail_json(msg=msg, **result)

    def warn(self, msg):
        self.module.warn(msg)

    def run(self, manager_class):
        """Run manager_class(self).run() and exit with its result dict."""
        try:
            result = manager_class(self).run()
        except DockerError as exc:
            self.fail(str(exc))
        self.module.exit_json(**result)
