# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A private CA and one server certificate signed by it, for the tls_certificate module.

``facts`` and ``plan`` decide (pure: they see parsed certificates as plain dicts and a clock);
``load``, ``make_ca`` and ``make_server`` read and make keys and certificates with the Python
``cryptography`` package. Writing the files is the module's (through ``atomic``).
"""

from __future__ import annotations

import datetime
import ipaddress

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

CA_KEY_BITS = 4096
SERVER_KEY_BITS = 2048
# Certificates start a little in the past, so that a host whose clock lags accepts them at once.
BACKDATE = datetime.timedelta(minutes=5)


def canonical_ip(address):
    """An IP address in its canonical text form, or DockerError naming it."""
    try:
        return str(ipaddress.ip_address(str(address).strip()))
    except ValueError:
        raise DockerError("ip_addresses: %r is not an IP address; give addresses such as 127.0.0.1 or ::1"
                          % (address,)) from None


def check_dns_name(name):
    """A DNS name (letters, digits, '.', '-', a leading '*.'), or DockerError naming it."""
    label_chars = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
    rest = name[2:] if name.startswith("*.") else name
    labels = rest.split(".")
    if not rest or any(not label or not set(label) <= label_chars for label in labels):
        raise DockerError("dns_names: %r is not a host name; give names of letters, digits, '.' and '-' "
                          "(a leading '*.' for a wildcard)" % (name,))
    return name.lower()


def wanted_names(dns_names, ip_addresses):
    """The subject alternative names as a sorted list of ``DNS:name`` and ``IP:address``."""
    names = ["DNS:" + check_dns_name(n) for n in dns_names or []]
    names += ["IP:" + canonical_ip(a) for a in ip_addresses or []]
    if not names:
        raise DockerError("give at least one of dns_names and ip_addresses: the server certificate needs a name "
                          "clients check")
    return sorted(set(names))


def facts(cert, key=None, issuer=None):
    """What the plan needs to know of a certificate (or None): its names, dates, issuer, and whether it
    belongs to key and was signed by issuer (both certificates of cryptography)."""
    if cert is None:
        return None
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = ["DNS:" + n.lower() for n in sans.get_values_for_type(x509.DNSName)]
        names += ["IP:" + str(a) for a in sans.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    result = dict(
        common_name=_common_name(cert.subject),
        issuer_common_name=_common_name(cert.issuer),
        sans=sorted(set(names)),
        not_after=_not_after(cert),
        is_ca=is_ca,
        key_matches=None if key is None else _public_bytes(key.public_key()) == _public_bytes(cert.public_key()),
        signed_by_issuer=None,
    )
    if issuer is not None:
        try:
            cert.verify_directly_issued_by(issuer)
            result["signed_by_issuer"] = True
        except (InvalidSignature, ValueError, TypeError):
            result["signed_by_issuer"] = False
    return result


def ca_reasons(ca, wanted, now):
    """Why the CA must be made anew (a list, empty when it is kept). ca: facts() of the CA, or None."""
    if ca is None:
        return ["missing"]
    reasons = []
    if not ca["key_matches"]:
        reasons.append("its key does not match")
    if not ca["is_ca"]:
        reasons.append("it is not a CA certificate")
    if ca["common_name"] != wanted["ca_common_name"]:
        reasons.append("its common name changed")
    if ca["not_after"] - now <= datetime.timedelta(days=wanted["renew_before_days"]):
        reasons.append("it expires on %s" % ca["not_after"].date().isoformat())
    return reasons


def server_reasons(server, wanted, now, ca_new):
    """Why the server certificate must be issued anew (a list, empty when it is kept)."""
    if server is None:
        return ["missing"]
    if ca_new:
        return ["the CA is new"]
    reasons = []
    if not server["key_matches"]:
        reasons.append("its key does not match")
    if not server["signed_by_issuer"]:
        reasons.append("the CA did not sign it")
    if server["common_name"] != wanted["common_name"]:
        reasons.append("its common name changed")
    if server["sans"] != wanted["sans"]:
        reasons.append("its names changed")
    if server["not_after"] - now <= datetime.timedelta(days=wanted["renew_before_days"]):
        reasons.append("it expires on %s" % server["not_after"].date().isoformat())
    return reasons


def plan(ca, server, wanted, now):
    """(ca_reasons, server_reasons): what is made anew and why; both empty when everything is kept."""
    if wanted["days"] <= wanted["renew_before_days"]:
        raise DockerError("days (%d) must be more than renew_before_days (%d), or every run would renew the "
                          "certificates" % (wanted["days"], wanted["renew_before_days"]))
    for_ca = ca_reasons(ca, wanted, now)
    return for_ca, server_reasons(server, wanted, now, bool(for_ca))


def describe(cert_facts):
    """The diff view of a certificate: names and expiry date."""
    if cert_facts is None:
        return None
    return dict(common_name=cert_facts["common_name"], issuer=cert_facts["issuer_common_name"],
                sans=cert_facts["sans"], expires=cert_facts["not_after"].date().isoformat())


def predicted(wanted, now, which):
    """The diff view of a certificate about to be made (which: ca or server)."""
    expires = (now + datetime.timedelta(days=wanted["days"])).date().isoformat()
    if which == "ca":
        return dict(common_name=wanted["ca_common_name"], issuer=wanted["ca_common_name"], sans=[], expires=expires)
    return dict(common_name=wanted["common_name"], issuer=wanted["ca_common_name"], sans=wanted["sans"],
                expires=expires)


# ---------------------------------------------------------------- cryptography


def _common_name(name):
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return values[0].value if values else None


def _not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    if value is None:  # cryptography < 42
        value = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return value


def _public_bytes(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_cert(data):
    """A certificate from PEM bytes (None for None); an unreadable one is None too (made anew)."""
    if data is None:
        return None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        return None


def load_key(data):
    """A private key from PEM bytes (None for None); an unreadable or encrypted one is None (made anew)."""
    if data is None:
        return None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return None


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode("ascii")


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(wanted, now):
    """(key, certificate) of a new self-signed CA."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=CA_KEY_BITS)
    name = _name(wanted["ca_common_name"])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=wanted["days"]))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_server(wanted, now, ca_key, ca_cert):
    """(key, certificate) of a new server certificate for wanted's names, signed by the CA."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=SERVER_KEY_BITS)
    sans = []
    for entry in wanted["sans"]:
        kind, _sep, value = entry.partition(":")
        sans.append(x509.DNSName(value) if kind == "DNS" else x509.IPAddress(ipaddress.ip_address(value)))
    cert = (x509.CertificateBuilder()
            .subject_name(_name(wanted["common_name"])).issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=wanted["days"]))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert
