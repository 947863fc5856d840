# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

import pytest

from ansible_collections.persist.docker.plugins.module_utils import registry_api as ra
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


@pytest.mark.parametrize("reference,expected", [
    ("localhost:5000/busybox", ("localhost:5000", "busybox", "latest")),
    ("localhost/busybox:1.2", ("localhost", "busybox", "1.2")),
    ("reg.example.com:5000/team/app:v2", ("reg.example.com:5000", "team/app", "v2")),
    ("reg.example.com/a/b/c", ("reg.example.com", "a/b/c", "latest")),
])
def test_split_image_reference(reference, expected):
    assert ra.split_image_reference(reference) == expected


@pytest.mark.parametrize("reference,message", [
    ("busybox", "does not name a registry"),
    ("team/app:1", "does not name a registry"),
    ("localhost:5000/Busy", "invalid repository"),
    ("localhost:5000/app@sha256:abc", "holds a digest"),
    ("localhost:5000/app:-x", "invalid tag"),
])
def test_split_image_reference_errors(reference, message):
    with pytest.raises(DockerError, match=message):
        ra.split_image_reference(reference)


@pytest.mark.parametrize("url,expected", [
    ("localhost:5000", (None, "localhost:5000")),
    ("https://reg.example.com:5000/", ("https", "reg.example.com:5000")),
    ("http://127.0.0.1:5110", ("http", "127.0.0.1:5110")),
    ("reg", (None, "reg")),
])
def test_parse_registry_url(url, expected):
    assert ra.parse_registry_url(url) == expected


def test_parse_registry_url_rejects_paths():
    with pytest.raises(DockerError, match="is not host"):
        ra.parse_registry_url("https://reg/v2/")


@pytest.mark.parametrize("host,loopback", [
    ("localhost:5000", True), ("127.0.0.1", True), ("127.1.2.3:80", True), ("[::1]:5000", True),
    ("reg.example.com:5000", False), ("10.0.0.1:5000", False), ("localhost.example.com", False),
])
def test_is_loopback(host, loopback):
    assert ra.is_loopback(host) is loopback


def test_manifest_summary_schema2():
    manifest = {"schemaVersion": 2, "config": {"digest": "sha256:c", "size": 100},
                "layers": [{"digest": "sha256:l1", "size": 1000}, {"digest": "sha256:l2", "size": 24}]}
    summary = ra.manifest_summary(manifest, ra.MANIFEST_TYPES[0], "sha256:m")
    assert summary["size"] == 1124 and summary["config_digest"] == "sha256:c" and summary["config_size"] == 100
    assert summary["layers"] == [{"digest": "sha256:l1", "size": 1000}, {"digest": "sha256:l2", "size": 24}]


def test_manifest_summary_list():
    manifest = {"manifests": [{"size": 500, "platform": {"os": "linux", "architecture": "amd64"}},
                              {"size": 400, "platform": {"os": "linux", "architecture": "arm64"}}]}
    summary = ra.manifest_summary(manifest, ra.LIST_TYPES[0], "sha256:m")
    assert summary["size"] == 900 and summary["platforms"] == ["linux/amd64", "linux/arm64"]
    assert summary["config_digest"] is None


@pytest.mark.parametrize("local,remote,expected", [
    ({"Id": "sha256:c", "RepoDigests": []}, {"config_digest": "sha256:c", "digest": "sha256:m"}, True),
    ({"Id": "sha256:x", "RepoDigests": ["h:1/r@sha256:m"]}, {"config_digest": None, "digest": "sha256:m"}, True),
    ({"Id": "sha256:x", "RepoDigests": ["h:1/other@sha256:m"]}, {"config_digest": "sha256:c", "digest": "sha256:m"},
     False),
    (None, {"config_digest": "sha256:c", "digest": "sha256:m"}, False),
    ({"Id": "sha256:c"}, None, False),
])
def test_image_matches(local, remote, expected):
    assert ra.image_matches(local, remote, "h:1", "r") is expected


def test_stream_error_and_digest():
    push = [{"status": "Pushing"}, {"status": "1: digest: sha256:abc size: 527"},
            {"aux": {"Tag": "1", "Digest": "sha256:abc", "Size": 527}}]
    assert ra.stream_error(push) == (None, "sha256:abc")
    pull = [{"status": "Pulling from x"}, {"status": "Digest: sha256:def"}, {"status": "Status: Downloaded"}]
    assert ra.stream_error(pull) == (None, "sha256:def")
    failed = [{"status": "Preparing"}, {"error": "unauthorized: authentication required\n", "errorDetail": {}},
              {"error": "later"}]
    assert ra.stream_error(failed) == ("unauthorized: authentication required", None)


class FakeResponse:
    def __init__(self, content, status=200, headers=None):
        self.content = content
        self.status_code = status
        self.headers = headers or {}

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def json(self):
        import json
        return json.loads(self.content)


class FakeSession:
    """Answers every request with the one canned response."""

    def __init__(self, response):
        self.response = response

    def request(self, method, url, **kwargs):
        return self.response

    def get(self, url, **kwargs):
        return self.response


def client_answering(content, headers=None):
    client = ra.RegistryClient("http://127.0.0.1:5999")
    client.session = FakeSession(FakeResponse(content, headers=headers))
    return client


@pytest.mark.parametrize("call", [
    lambda c: c.catalog(),
    lambda c: c.tags("app"),
    lambda c: c.manifest("app", "1"),
    lambda c: c.blob_json("app", "sha256:c"),
])
@pytest.mark.parametrize("content,fragment", [
    (b"<html>proxy error</html>", "is not valid JSON"),
    (b"\xff\xfe", "is not valid JSON"),
    (b"[1, 2]", "is JSON but not an object"),
])
def test_malformed_json_is_a_clear_error(call, content, fragment):
    with pytest.raises(DockerError, match=fragment) as caught:
        call(client_answering(content, {"Content-Type": "application/json"}))
    assert "registry 127.0.0.1:5999" in str(caught.value) and "registry_url" in str(caught.value)


def test_catalog_that_is_not_a_list_of_names():
    with pytest.raises(DockerError, match="answered a repositories that is not a list of names"):
        client_answering(b'{"repositories": "app"}').catalog()


def test_error_text_of_a_json_list():
    assert ra._errors_text(FakeResponse(b"[1]")) == "[1]"


def test_manifest_summary_list_children():
    manifest = {"manifests": [{"digest": "sha256:a", "size": 1}, {"digest": "sha256:b", "size": 2}, "junk"]}
    assert ra.manifest_summary(manifest, ra.LIST_TYPES[1], "sha256:i")["children"] == ["sha256:a", "sha256:b"]


@pytest.mark.parametrize("params,count,fragment", [
    (dict(tls=False, validate_certs=False, registry_validate_certs=True, registry_scheme="auto"), 0, None),
    (dict(tls=True, validate_certs=True, registry_validate_certs=True, registry_scheme="auto"), 0, None),
    (dict(tls=True, validate_certs=False, docker_host="tcp://h:2376", registry_validate_certs=True,
          registry_scheme="auto"), 1, "tls is true but validate_certs is false"),
    (dict(tls=False, validate_certs=False, registry_validate_certs=False, registry_scheme="auto"), 1,
     "registry_validate_certs is false"),
    (dict(tls=False, validate_certs=False, registry_validate_certs=False, registry_scheme="http"), 0, None),
])
def test_tls_warnings(params, count, fragment):
    warnings = ra.tls_warnings(params)
    assert len(warnings) == count
    if fragment:
        assert fragment in warnings[0]
