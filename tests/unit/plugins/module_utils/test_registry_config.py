# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

import json

import pytest
import yaml

from ansible_collections.persist.docker.plugins.module_utils import registry_config as rc
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


def params(**overrides):
    base = dict(name="reg", storage="filesystem", storage_path=None, storage_volume=None, published_port=5000,
                bind_address="0.0.0.0", network_mode=None, delete_enabled=False, read_only=False, server_cert=None,
                server_key=None, users=[], auth_realm="Registry Realm", proxy=None, http_secret=None,
                extra_config={}, s3=None, swift=None, azure=None, gcs=None, oss=None, restart_policy="always")
    base.update(overrides)
    return base


def render(**overrides):
    p = params(**overrides)
    rc.validate(p)
    return rc.render_config(p)


def test_filesystem_defaults():
    config = render()
    assert config["storage"]["filesystem"] == {"rootdirectory": "/var/lib/registry"}
    assert config["storage"]["delete"] == {"enabled": False}
    assert config["storage"]["maintenance"] == {"readonly": {"enabled": False}}
    assert config["http"]["addr"] == ":5000"
    assert "auth" not in config and "proxy" not in config and "secret" not in config["http"]


def test_inmemory_delete_readonly():
    config = render(storage="inmemory", delete_enabled=True, read_only=True)
    assert config["storage"]["inmemory"] == {}
    assert config["storage"]["delete"]["enabled"] is True
    assert config["storage"]["maintenance"] == {"readonly": {"enabled": True}, "uploadpurging": {"enabled": False}}


def test_s3_rendering_drops_unset_and_defaults_region():
    config = render(storage="s3", s3=dict(bucket="b", regionendpoint="http://127.0.0.1:5300", secure=False,
                                          v4auth=True, accesskey="AK", secretkey="SK", region=None))
    assert config["storage"]["s3"] == {"bucket": "b", "regionendpoint": "http://127.0.0.1:5300", "secure": False,
                                       "v4auth": True, "accesskey": "AK", "secretkey": "SK", "region": "us-east-1"}
    assert "filesystem" not in config["storage"]


@pytest.mark.parametrize("backend,options,expected", [
    ("swift", dict(authurl="https://ks/v3", username="u", password="p", container="c", region="r1"),
     {"authurl": "https://ks/v3", "username": "u", "password": "p", "container": "c", "region": "r1"}),
    ("azure", dict(accountname="acc", accountkey="k", container="c", realm=None),
     {"accountname": "acc", "accountkey": "k", "container": "c"}),
    ("gcs", dict(bucket="b", keyfile="/home/me/key.json", rootdirectory="/r"),
     {"bucket": "b", "keyfile": rc.GCS_KEY_FILE, "rootdirectory": "/r"}),
    ("oss", dict(accesskeyid="id", accesskeysecret="s", region="oss-cn-beijing", bucket="b", secure=True),
     {"accesskeyid": "id", "accesskeysecret": "s", "region": "oss-cn-beijing", "bucket": "b", "secure": True}),
])
def test_remote_backends(backend, options, expected):
    config = render(storage=backend, **{backend: options})
    assert config["storage"][backend] == expected


@pytest.mark.parametrize("overrides,message", [
    (dict(storage="nfs"), "unknown storage backend 'nfs'"),
    (dict(storage="s3", s3=dict(region="x")), "storage s3 needs s3.bucket"),
    (dict(storage="s3"), "storage s3 needs s3.bucket"),
    (dict(storage="swift", swift=dict(authurl="u")), "swift.username, swift.password, swift.container"),
    (dict(storage="azure", azure=dict(accountname="a", container="c")), "azure.accountkey"),
    (dict(storage="oss", oss=dict(bucket="b")), "oss.accesskeyid"),
    (dict(server_cert="/c.pem"), "needs both server_cert and server_key; only server_cert"),
    (dict(server_key="/k.pem"), "only server_key"),
    (dict(storage="inmemory", storage_path="/srv"), "only apply to storage filesystem"),
    (dict(storage_path="/srv", storage_volume="v"), "not both"),
    (dict(storage_volume="bad/name"), "not a valid volume name"),
    (dict(users=[dict(username="a:b", password="x")]), "contains ':'"),
    (dict(users=[dict(username="a", password="x"), dict(username="a", password="y")]), "listed twice"),
    (dict(users=[dict(username="a", password="")]), "has no password"),
    (dict(proxy=dict(remote_url="registry.example.com")), "must be an http:// or https:// URL"),
    (dict(proxy=dict(remote_url="https://r", username="u")), "both username and password"),
    (dict(published_port=70000), "not a TCP port"),
])
def test_validation_errors(overrides, message):
    with pytest.raises(DockerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rc.validate(params(**overrides))


def test_users_need_bcrypt(monkeypatch):
    monkeypatch.setattr(rc, "HAS_BCRYPT", False)
    with pytest.raises(DockerError, match="bcrypt"):
        rc.validate(params(users=[dict(username="a", password="x")]))


def test_tls_auth_proxy_secret_host_network():
    config = render(server_cert="/c", server_key="/k", users=[dict(username="u", password="p")],
                    proxy=dict(remote_url="http://127.0.0.1:5101", username=None, password=None),
                    http_secret="s3cr3t", network_mode="host", bind_address="127.0.0.1", published_port=5150)
    assert config["http"]["tls"] == {"certificate": rc.CERT_FILE, "key": rc.KEY_FILE}
    assert config["http"]["addr"] == "127.0.0.1:5150"
    assert config["http"]["secret"] == "s3cr3t"
    assert config["auth"] == {"htpasswd": {"realm": "Registry Realm", "path": rc.HTPASSWD_FILE}}
    assert config["proxy"] == {"remoteurl": "http://127.0.0.1:5101"}


def test_extra_config_deep_merge():
    config = render(extra_config={"http": {"headers": {"X-Extra": ["1"]}}, "log": {"level": "debug"},
                                  "storage": {"delete": {"enabled": True}}})
    assert config["http"]["headers"] == {"X-Content-Type-Options": ["nosniff"], "X-Extra": ["1"]}
    assert config["http"]["addr"] == ":5000"
    assert config["log"] == {"fields": {"service": "registry"}, "level": "debug"}
    assert config["storage"]["delete"]["enabled"] is True


def test_mask_secrets_leaves_original():
    config = render(storage="s3", s3=dict(bucket="b", secretkey="SK"), http_secret="hs",
                    proxy=dict(remote_url="https://r", username="u", password="pw"))
    masked = rc.mask_secrets(config)
    text = json.dumps(masked)
    assert "SK" not in text and "hs" not in text and "pw" not in text
    assert masked["storage"]["s3"]["secretkey"] == rc.MASK
    assert config["storage"]["s3"]["secretkey"] == "SK"


@pytest.mark.parametrize("overrides", [
    dict(), dict(storage="s3", s3=dict(bucket="b", secretkey="a:b # c", regionendpoint="http://h:1")),
    dict(http_secret="yes", extra_config={"notifications": {"endpoints": [{"name": "a", "headers": {"X": ["1"]}},
                                                                          {"name": "on", "disabled": True}]},
                                          "log": {"formatter": "text", "empty": {}, "list": []}}),
])
def test_yaml_round_trip(overrides):
    config = render(**overrides)
    text = rc.to_yaml(config)
    assert yaml.safe_load(text) == config
    assert rc.to_yaml(config) == text


def test_htpasswd_reuses_matching_hashes():
    text, changed = rc.render_htpasswd([dict(username="a", password="pa"), dict(username="b", password="pb")], rounds=4)
    assert changed == ["a", "b"]
    again, changed_again = rc.render_htpasswd([dict(username="a", password="pa"), dict(username="b", password="new")],
                                              existing_text=text, rounds=4)
    old, new = rc.parse_htpasswd(text), rc.parse_htpasswd(again)
    assert changed_again == ["b"]
    assert new["a"] == old["a"] and new["b"] != old["b"]
    assert new["b"].startswith("$2b$")


def test_fingerprint_depends_on_contents():
    a = rc.file_fingerprint({"/x": b"1", "/y": b"2"})
    assert a == rc.file_fingerprint({"/y": b"2", "/x": b"1"})
    assert a != rc.file_fingerprint({"/x": b"1", "/y": b"3"})


def state(**overrides):
    base = dict(id="c1", image_id="sha256:i", fingerprint="f", ports={"5000/tcp": "0.0.0.0:5000"},
                mounts={"/var/lib/registry": "bind:/srv"}, network_mode="default", restart_policy="always",
                running=True)
    base.update(overrides)
    return base


@pytest.mark.parametrize("current,wanted,expected", [
    (None, state(), ("create", ["the container does not exist"])),
    (state(), state(), ("none", [])),
    (state(network_mode="bridge"), state(), ("none", [])),
    (state(fingerprint="g"), state(), ("recreate", ["config"])),
    (state(image_id="sha256:j", ports={}), state(), ("recreate", ["image", "ports"])),
    (state(mounts={"/var/lib/registry": "volume:v"}), state(), ("recreate", ["mounts"])),
    (state(network_mode="host"), state(), ("recreate", ["network mode"])),
    (state(restart_policy="no"), state(), ("update", ["restart policy"])),
    (state(running=False), state(), ("start", ["not running"])),
])
def test_plan(current, wanted, expected):
    assert rc.plan(current, wanted, "present") == expected


def test_plan_absent():
    assert rc.plan(state(), None, "absent") == ("remove", ["state is absent"])
    assert rc.plan(None, None, "absent") == ("none", [])


def test_describe_state_normalises_inspect():
    inspect = {"Id": "abc", "Image": "sha256:i", "Config": {"Labels": {rc.FINGERPRINT_LABEL: "f"}},
               "HostConfig": {"PortBindings": {"5000/tcp": [{"HostIp": "", "HostPort": "5000"}]},
                              "RestartPolicy": {"Name": ""}, "NetworkMode": "default"},
               "Mounts": [{"Type": "bind", "Source": "/srv/", "Destination": "/var/lib/registry"},
                          {"Type": "volume", "Name": "a" * 64, "Destination": "/x"}],
               "State": {"Running": True}}
    assert rc.describe_state(inspect) == state(id="abc", restart_policy="no",
                                               ports={"5000/tcp": "0.0.0.0:5000"})


def test_wanted_ports():
    assert rc.wanted_ports(params()) == {"5000/tcp": "0.0.0.0:5000"}
    assert rc.wanted_ports(params(network_mode="host")) == {}


def test_config_changes():
    before = render()
    after = render(delete_enabled=True, http_secret="x")
    assert rc.config_changes(before, after) == ["http.secret", "storage.delete.enabled"]


def exposure(**kwargs):
    base = dict(name="reg", server_cert=None, users=[], bind_address=None, allow_insecure=False,
                published_port=5000, delete_enabled=True)
    base.update(kwargs)
    return rc.plan_exposure(base)


USERS = [dict(username="ci", password="pw")]


@pytest.mark.parametrize("kwargs,address", [
    # wave 1 published every registry on 0.0.0.0: now only TLS with users answers other hosts by default
    (dict(), "127.0.0.1"),
    (dict(server_cert="/c"), "127.0.0.1"),
    (dict(users=USERS), "127.0.0.1"),
    (dict(server_cert="/c", users=USERS), "0.0.0.0"),
    (dict(server_cert="/c", users=USERS, bind_address="192.0.2.5"), "192.0.2.5"),
    (dict(bind_address="127.0.0.2"), "127.0.0.2"),
    (dict(bind_address="::1", users=USERS), "::1"),
    (dict(bind_address="localhost"), "localhost"),
])
def test_exposure_safe_defaults_without_warnings(kwargs, address):
    assert exposure(**kwargs) == (address, [])


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(bind_address="0.0.0.0"), r"without TLS \(server_cert\) and users"),
    (dict(bind_address="192.0.2.5", server_cert="/c"), "without users"),
    (dict(bind_address="0.0.0.0", users=USERS), "send their passwords in clear text"),
    (dict(allow_insecure=True, users=USERS), "send their passwords in clear text"),
])
def test_exposure_refusals(kwargs, fragment):
    with pytest.raises(DockerError, match=fragment) as caught:
        exposure(**kwargs)
    assert "registry 'reg'" in str(caught.value)


@pytest.mark.parametrize("kwargs,address,fragment", [
    (dict(allow_insecure=True), "0.0.0.0", "over plain HTTP without users"),
    (dict(allow_insecure=True, bind_address="192.0.2.5"), "192.0.2.5", "push and delete"),
    (dict(allow_insecure=True, server_cert="/c", delete_enabled=False), "0.0.0.0", "read, push images"),
])
def test_exposure_acknowledged_warns(kwargs, address, fragment):
    bound, warnings = exposure(**kwargs)
    assert bound == address and len(warnings) == 1 and fragment in warnings[0]


def test_allow_insecure_on_loopback_needs_no_warning():
    assert exposure(allow_insecure=True, bind_address="127.0.0.1") == ("127.0.0.1", [])
