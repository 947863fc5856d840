# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The connection options every module of this collection shares. The names,
    # defaults and environment fallbacks are those of community.docker.
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The URL or Unix socket path of the Docker daemon, for example V(unix:///var/run/docker.sock)
        or V(tcp://192.0.2.23:2376).
      - If not set, the value of the E(DOCKER_HOST) environment variable is used, and if that is
        not set either, the local socket V(unix:///var/run/docker.sock).
    type: str
    default: unix:///var/run/docker.sock
    aliases: [docker_url]
  tls:
    description:
      - Secure the connection to the daemon with TLS without verifying the daemon's certificate.
        Ignored when O(validate_certs=true).
      - If not set, the value of the E(DOCKER_TLS) environment variable is used.
    type: bool
    default: false
  validate_certs:
    description:
      - Secure the connection with TLS and verify the daemon's certificate against O(ca_path).
      - If not set, the value of the E(DOCKER_TLS_VERIFY) environment variable is used.
    type: bool
    default: false
    aliases: [tls_verify]
  ca_path:
    description:
      - A CA certificate file that signed the daemon's certificate.
      - If not set and E(DOCKER_CERT_PATH) is set, V(ca.pem) in that directory is used.
    type: path
    aliases: [ca_cert, tls_ca_cert, cacert_path]
  client_cert:
    description:
      - The client certificate file for TLS client authentication.
      - If not set and E(DOCKER_CERT_PATH) is set, V(cert.pem) in that directory is used.
    type: path
    aliases: [tls_client_cert, cert_path]
  client_key:
    description:
      - The key of O(client_cert).
      - If not set and E(DOCKER_CERT_PATH) is set, V(key.pem) in that directory is used.
    type: path
    aliases: [tls_client_key, key_path]
  api_version:
    description:
      - The Docker API version to speak, for example V(1.41). V(auto) asks the daemon for the
        newest version it supports.
      - If not set, the value of the E(DOCKER_API_VERSION) environment variable is used.
    type: str
    default: auto
    aliases: [docker_api_version]
  timeout:
    description:
      - Seconds to wait for an answer from the Docker daemon.
      - If not set, the value of the E(DOCKER_TIMEOUT) environment variable is used.
    type: int
    default: 60
  tls_hostname:
    description:
      - The name the daemon's certificate must carry when O(validate_certs=true), where it differs from the
        host name in O(docker_host) (for example a daemon reached as V(tcp://127.0.0.1:2376) through a tunnel).
      - If not set, the value of the E(DOCKER_TLS_HOSTNAME) environment variable is used, and if that is not
        set either, the host name of O(docker_host).
    type: str
  use_ssh_client:
    description:
      - For an O(docker_host) of the form V(ssh://user@host[:port]), run the system's C(ssh) client (with its
        configuration, keys and agent) instead of the Python SSH library C(paramiko).
      - The remote host needs the C(docker) command line client either way (C(docker system dial-stdio)).
    type: bool
    default: false
notes:
  - The modules talk to the Docker Engine API through the Docker SDK for Python (C(docker) >= 7),
    which must be installed on the managed host together with C(requests).
  - All modules of this collection are in the action group C(persist.docker.docker), so
    C(module_defaults) can set O(docker_host) and the TLS options once for all of them.
  - O(docker_host) may be V(ssh://user@host:port); give the port, since the Docker SDK does not read it from
    the ssh configuration. Without O(use_ssh_client), the SDK connects with C(paramiko), which reads
    C(~/.ssh/config) (host name, user, identity file) and refuses host keys that C(~/.ssh/known_hosts) lacks.
requirements:
  - docker >= 7.0.0
  - requests
  - paramiko (for O(docker_host=ssh://...) without O(use_ssh_client))
"""
