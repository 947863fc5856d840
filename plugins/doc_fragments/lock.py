# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The lock of modules that change a volume's data or a registry's state (module_utils/locking.py).
    DOCUMENTATION = r"""
options:
  lock_timeout:
    description:
      - How many seconds to wait for another run of this collection that changes the same volume or
        registry on the same engine (a relocation, a backup, a restore, a garbage collection) to finish.
      - After that the module fails, names the object and changes nothing. Runs on the same managing host
        exclude each other through a lock file below C(/run/lock/persist-docker); the lock goes with the
        process that held it, so a killed run never leaves one behind.
    type: int
    default: 300
"""
