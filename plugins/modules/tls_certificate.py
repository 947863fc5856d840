#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: tls_certificate
short_description: A private CA and a server certificate signed by it, kept valid
version_added: 0.2.0
description:
  - Makes, in the directory O(path), a self-signed CA (C(ca.crt), C(ca.key)) and a server certificate
    with its key (C(server.crt), C(server.key)) signed by that CA, for a registry or an engine that
    serves TLS to the hosts that trust the CA.
  - Keeps the files that are still valid. The CA is made anew when it is missing, unreadable, does
    not match its key, is not a CA, has another common name or expires within O(renew_before_days).
    The server certificate is issued anew (with a new key) when the CA is new or did not sign it,
    or when its names (O(dns_names), O(ip_addresses), O(common_name)) changed, its key does not
    match, or it expires within O(renew_before_days).
  - Keys are written 0600, certificates 0644, each atomically (a temporary file created without
    following a symlink, then renamed); the directory is created 0700 when missing. A symlink in
    place of O(path) or of one of the files is refused.
  - Uses the Python C(cryptography) package on the managed host, not the C(openssl) command.
requirements:
  - cryptography >= 40 (Python package on the managed host)
extends_documentation_fragment:
  - persist.docker.attributes
attributes:
  check_mode:
    support: full
    description: Predicts exactly what a real run makes anew, and why.
  diff_mode:
    support: full
    description: Shows the common name, issuer, names and expiry date of the CA and of the server
      certificate before and after (never a key).
  idempotent:
    support: full
    description: A second run with the same options reports no change, until a certificate comes within
      O(renew_before_days) of its expiry.
options:
  path:
    description: Directory of the four files.
    type: path
    required: true
  ca_common_name:
    description: Common name of the CA.
    type: str
    required: true
  common_name:
    description: Common name of the server certificate. Defaults to the first of O(dns_names), else the first
      of O(ip_addresses).
    type: str
  dns_names:
    description: Host names of the server (subject alternative names); a leading C(*.) makes a wildcard.
    type: list
    elements: str
    default: []
  ip_addresses:
    description: IP addresses of the server (subject alternative names).
    type: list
    elements: str
    default: []
  days:
    description: Days each new certificate is valid.
    type: int
    default: 825
  renew_before_days:
    description: A certificate that expires within this many days is made anew.
    type: int
    default: 30
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: CA and server certificate of the registry
  persist.docker.tls_certificate:
    path: /etc/docker-registry/certs
    ca_common_name: registry CA
    dns_names: [registry.example.com, localhost]
    ip_addresses: [127.0.0.1]
  register: certs

- name: The registry serves them
  persist.docker.registry:
    name: registry
    server_cert: "{{ certs.cert_path }}"
    server_key: "{{ certs.key_path }}"
    users:
      - username: ci
        password: "{{ ci_password }}"
"""

RETURN = r"""
actions:
  description: What was made anew, and why (in check mode, what would be).
  returned: always
  type: list
  elements: str
  sample: ["issued server certificate: its names changed"]
ca_path:
  description: Path of the CA certificate (give it to the clients).
  returned: always
  type: str
ca_key_path:
  description: Path of the CA key.
  returned: always
  type: str
cert_path:
  description: Path of the server certificate.
  returned: always
  type: str
key_path:
  description: Path of the server key.
  returned: always
  type: str
sans:
  description: Subject alternative names of the server certificate, as C(DNS:name) and C(IP:address).
  returned: always
  type: list
  elements: str
expires:
  description: Expiry date of the server certificate (in check mode, of the one there would be).
  returned: always
  type: str
  sample: "2027-04-01"
"""

import datetime
import errno
import os

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.persist.docker.plugins.module_utils import atomic, fdtree
from ansible_collections.persist.docker.plugins.module_utils import tls_certificate as tc
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError, os_errors
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager
from ansible_collections.persist.docker.plugins.module_utils.module import PersistModule

FILES = dict(ca_cert="ca.crt", ca_key="ca.key", cert="server.crt", key="server.key")
MODES = dict(ca_cert=0o644, ca_key=0o600, cert=0o644, key=0o600)


def read_file(directory, name, path):
    """The bytes of the regular file name in directory (a fdtree.Dir), or None when it is missing."""
    try:
        fd = fdtree.open_file(directory, name)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise DockerError("%s is a symbolic link; refusing to follow it. Remove it, and check who put it there"
                              % os.path.join(path, name)) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


class TlsCertificateManager(Manager):
    def __init__(self, dm):
        super().__init__(dm)
        self.path = self.params["path"]

    def wanted(self):
        p = self.params
        sans = tc.wanted_names(p["dns_names"], p["ip_addresses"])
        common_name = p["common_name"] or (p["dns_names"] or [None])[0] or tc.canonical_ip(p["ip_addresses"][0])
        return dict(ca_common_name=p["ca_common_name"], common_name=common_name, sans=sans, days=p["days"],
                    renew_before_days=p["renew_before_days"])

    def run(self):
        wanted = self.wanted()
        now = datetime.datetime.now(datetime.timezone.utc)
        hint = "check that %s is a directory root can write" % self.path
        with os_errors("reading the certificates in %s" % self.path, hint):
            directory = self.open_directory()
            data = dict((k, read_file(directory, n, self.path) if directory else None) for k, n in FILES.items())
        ca_key, ca_cert = tc.load_key(data["ca_key"]), tc.load_cert(data["ca_cert"])
        key, cert = tc.load_key(data["key"]), tc.load_cert(data["cert"])
        ca = tc.facts(ca_cert, ca_key) if ca_cert is not None else None
        server = tc.facts(cert, key, ca_cert) if cert is not None else None
        if ca is not None and ca_key is None:
            ca["key_matches"] = False
        if server is not None and key is None:
            server["key_matches"] = False
        for_ca, for_server = tc.plan(ca, server, wanted, now)

        if for_ca:
            self.act("made CA: %s" % ", ".join(for_ca))
        if for_server:
            self.act("issued server certificate: %s" % ", ".join(for_server))
        after_ca = tc.predicted(wanted, now, "ca") if for_ca else tc.describe(ca)
        after_server = tc.predicted(wanted, now, "server") if for_server else tc.describe(server)
        if self.actions and not self.check_mode:
            with os_errors("writing the certificates in %s" % self.path, hint):
                if directory is None:
                    os.mkdir(self.path, 0o700)
                    directory = fdtree.open_root(self.path)
                if for_ca:
                    ca_key, ca_cert = tc.make_ca(wanted, now)
                    self.write(directory, "ca_key", tc.key_pem(ca_key))
                    self.write(directory, "ca_cert", tc.cert_pem(ca_cert))
                if for_server:
                    key, cert = tc.make_server(wanted, now, ca_key, ca_cert)
                    self.write(directory, "key", tc.key_pem(key))
                    self.write(directory, "cert", tc.cert_pem(cert))
            after_ca, after_server = tc.describe(tc.facts(ca_cert)), tc.describe(tc.facts(cert))
        result = dict(sans=wanted["sans"], expires=after_server["expires"])
        result.update((k + "_path", os.path.join(self.path, FILES[k])) for k in ("ca_key", "cert", "key"))
        result["ca_path"] = os.path.join(self.path, FILES["ca_cert"])
        return self.finish(result, dict(ca=tc.describe(ca), server=tc.describe(server)),
                           dict(ca=after_ca, server=after_server))

    def open_directory(self):
        """The directory, opened without following a symlink, or None when it does not exist."""
        try:
            return fdtree.open_root(self.path)
        except FileNotFoundError:
            return None

    @staticmethod
    def write(directory, which, text):
        atomic.write_text_in(directory, FILES[which], text, MODES[which])


def main():
    pm = PersistModule(
        dict(
            path=dict(type="path", required=True),
            ca_common_name=dict(type="str", required=True),
            common_name=dict(type="str"),
            dns_names=dict(type="list", elements="str", default=[]),
            ip_addresses=dict(type="list", elements="str", default=[]),
            days=dict(type="int", default=825),
            renew_before_days=dict(type="int", default=30),
        ),
    )
    if not tc.HAS_CRYPTOGRAPHY:
        pm.fail(missing_required_lib("cryptography") + " Install it on the managed host, for example "
                "with pip install cryptography.")
    pm.run(TlsCertificateManager)


if __name__ == "__main__":
    main()
