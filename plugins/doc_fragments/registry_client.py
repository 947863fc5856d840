# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # How the registry modules reach a registry's HTTP API v2 (with requests, from the managed host).
    DOCUMENTATION = r"""
options:
  username:
    description:
      - User name at the registry (htpasswd or token authentication).
    type: str
  password:
    description:
      - Password of O(username).
    type: str
  registry_ca_path:
    description:
      - CA certificate file that signed the registry's TLS certificate, to verify it.
    type: path
  registry_validate_certs:
    description:
      - Verify the registry's TLS certificate. Set to V(false) only for tests; the module then warns that the
        connection can be intercepted.
      - The module also warns when O(tls=true) reaches the Docker daemon with O(validate_certs=false).
    type: bool
    default: true
  registry_scheme:
    description:
      - How to reach the registry. V(auto) uses HTTPS, and plain HTTP only for a registry on a loopback
        address (V(localhost), V(127.0.0.1)) that does not speak TLS, as Docker does.
    type: str
    default: auto
    choices: [auto, https, http]
"""
