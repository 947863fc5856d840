# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The attributes every module of this collection documents. A module gives each one's
    # support and, where it has more to say, its own description (which replaces this one).
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and then predicts the change a real run would make, without making it.
  diff_mode:
    description: With C(--diff), returns the state before and after the change (or the change that check mode
      predicts).
  idempotent:
    description: A second run with the same options, on a state that nothing else changed, reports no change.
"""

    # Membership of the action group that meta/runtime.yml declares, so that module_defaults can set the
    # connection options (docker_host, TLS, ...) once for all modules of the collection.
    ACTIONGROUP_DOCKER = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/persist.docker.docker) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - persist.docker.docker
"""
