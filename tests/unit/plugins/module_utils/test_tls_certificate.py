# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

import datetime

import pytest

from ansible_collections.persist.docker.plugins.module_utils import tls_certificate as tc
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
WANTED = dict(ca_common_name="test CA", common_name="localhost", sans=["DNS:localhost", "IP:127.0.0.1"], days=825,
              renew_before_days=30)


def ca_facts(**overrides):
    result = dict(common_name="test CA", issuer_common_name="test CA", sans=[], is_ca=True, key_matches=True,
                  signed_by_issuer=None, not_after=NOW + datetime.timedelta(days=400))
    result.update(overrides)
    return result


def server_facts(**overrides):
    result = dict(common_name="localhost", issuer_common_name="test CA", sans=["DNS:localhost", "IP:127.0.0.1"],
                  is_ca=False, key_matches=True, signed_by_issuer=True, not_after=NOW + datetime.timedelta(days=400))
    result.update(overrides)
    return result


def test_wanted_names_sorted_canonical_and_checked():
    assert tc.wanted_names(["Registry.example.com", "*.svc.local"], ["::0001", "10.0.0.1"]) == [
        "DNS:*.svc.local", "DNS:registry.example.com", "IP:10.0.0.1", "IP:::1"]
    with pytest.raises(DockerError, match="not a host name"):
        tc.wanted_names(["bad name"], [])
    with pytest.raises(DockerError, match="not a host name"):
        tc.wanted_names(["a..b"], [])
    with pytest.raises(DockerError, match="not an IP address"):
        tc.wanted_names([], ["300.1.1.1"])
    with pytest.raises(DockerError, match="at least one"):
        tc.wanted_names([], [])


def test_everything_valid_is_kept():
    assert tc.plan(ca_facts(), server_facts(), WANTED, NOW) == ([], [])


def test_missing_files_are_made():
    assert tc.plan(None, None, WANTED, NOW) == (["missing"], ["missing"])
    assert tc.plan(ca_facts(), None, WANTED, NOW) == ([], ["missing"])


@pytest.mark.parametrize("change, reason", [
    (dict(key_matches=False), "its key does not match"),
    (dict(is_ca=False), "it is not a CA certificate"),
    (dict(common_name="other CA"), "its common name changed"),
    (dict(not_after=NOW + datetime.timedelta(days=30)), "it expires on 2025-01-31"),
])
def test_ca_made_anew_and_the_server_with_it(change, reason):
    for_ca, for_server = tc.plan(ca_facts(**change), server_facts(), WANTED, NOW)
    assert for_ca == [reason]
    assert for_server == ["the CA is new"]


@pytest.mark.parametrize("change, reason", [
    (dict(key_matches=False), "its key does not match"),
    (dict(signed_by_issuer=False), "the CA did not sign it"),
    (dict(common_name="other"), "its common name changed"),
    (dict(sans=["DNS:localhost"]), "its names changed"),
    (dict(not_after=NOW + datetime.timedelta(days=29)), "it expires on 2025-01-30"),
])
def test_server_issued_anew(change, reason):
    assert tc.plan(ca_facts(), server_facts(**change), WANTED, NOW) == ([], [reason])


def test_expiry_just_outside_the_window_is_kept():
    assert tc.plan(ca_facts(), server_facts(not_after=NOW + datetime.timedelta(days=30, seconds=1)), WANTED,
                   NOW) == ([], [])


def test_days_must_exceed_the_renewal_window():
    with pytest.raises(DockerError, match="days .30. must be more than renew_before_days .30."):
        tc.plan(None, None, dict(WANTED, days=30), NOW)


def test_predicted_matches_what_is_made(monkeypatch):
    monkeypatch.setattr(tc, "CA_KEY_BITS", 2048)
    ca_key, ca_cert = tc.make_ca(WANTED, NOW)
    key, cert = tc.make_server(WANTED, NOW, ca_key, ca_cert)
    assert tc.describe(tc.facts(ca_cert)) == tc.predicted(WANTED, NOW, "ca")
    assert tc.describe(tc.facts(cert)) == tc.predicted(WANTED, NOW, "server")
    ca = tc.facts(ca_cert, ca_key)
    server = tc.facts(cert, key, ca_cert)
    assert ca["is_ca"] and ca["key_matches"]
    assert server["signed_by_issuer"] and server["key_matches"] and not server["is_ca"]
    assert tc.plan(ca, server, WANTED, NOW) == ([], [])


def test_facts_see_another_ca_and_another_key(monkeypatch):
    monkeypatch.setattr(tc, "CA_KEY_BITS", 2048)
    ca_key, ca_cert = tc.make_ca(WANTED, NOW)
    other_key, other_ca = tc.make_ca(WANTED, NOW)
    key, cert = tc.make_server(WANTED, NOW, ca_key, ca_cert)
    assert tc.facts(cert, other_key, other_ca)["signed_by_issuer"] is False
    assert tc.facts(cert, other_key, other_ca)["key_matches"] is False


def test_pem_round_trip_and_unreadable_input(monkeypatch):
    monkeypatch.setattr(tc, "CA_KEY_BITS", 2048)
    ca_key, ca_cert = tc.make_ca(WANTED, NOW)
    assert tc.load_cert(tc.cert_pem(ca_cert).encode()) == ca_cert
    assert tc.key_pem(tc.load_key(tc.key_pem(ca_key).encode())) == tc.key_pem(ca_key)
    assert tc.load_cert(b"garbage") is None and tc.load_key(b"garbage") is None
    assert tc.load_cert(None) is None and tc.load_key(None) is None
