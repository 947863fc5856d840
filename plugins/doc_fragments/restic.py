# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The options of a restic repository's credentials (module_utils/restic.py); each module documents
    # its own option repository (required or not).
    DOCUMENTATION = r"""
options:
  repository_password:
    description:
      - The repository's password (given to restic as C(RESTIC_PASSWORD), never on its command line). Exactly one
        of this and O(repository_password_file) goes with O(repository).
    type: str
  repository_password_file:
    description:
      - A file on the managed host that holds the repository's password (C(RESTIC_PASSWORD_FILE)).
    type: path
  repository_env:
    description:
      - More environment for restic, such as C(AWS_ACCESS_KEY_ID), C(AWS_SECRET_ACCESS_KEY) and
        C(AWS_DEFAULT_REGION) for S3, or C(RESTIC_CACHE_DIR). The values are kept out of logs and results.
      - C(RESTIC_REPOSITORY*) and C(RESTIC_PASSWORD*) are refused; use the options above.
    type: dict
    default: {}
  restic_timeout:
    description: Seconds each restic run may take before it is killed and the module fails.
    type: int
    default: 3600
"""
