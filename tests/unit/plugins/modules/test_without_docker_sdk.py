"""registry_info and registry_image import and reach a registry without the Docker SDK installed.

The Docker SDK is made unimportable (sys.modules['docker'] = None) and the collection's
modules are imported afresh; a small HTTP server on the loopback plays the registry.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible.module_utils.testing import patch_module_args

PREFIX = "ansible_collections.persist.docker.plugins."
MANIFEST = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"digest": "sha256:" + "c" * 64, "size": 10},
    "layers": [{"digest": "sha256:" + "a" * 64, "size": 100}],
}).encode()


class FakeRegistry(BaseHTTPRequestHandler):
    answers = {
        "/v2/": (b"{}", {}),
        "/v2/_catalog?n=100": (b'{"repositories": ["app"]}', {}),
        "/v2/app/tags/list?n=100": (b'{"name": "app", "tags": ["1"]}', {}),
        "/v2/app/manifests/1": (MANIFEST, {"Docker-Content-Digest": "sha256:" + "d" * 64,
                                           "Content-Type": "application/vnd.docker.distribution.manifest.v2+json"}),
    }

    def do_GET(self):  # noqa: N802 - the name http.server calls
        body, headers = self.answers.get(self.path, (b'{"errors": []}', None))
        self.send_response(404 if headers is None else 200)
        for name, value in dict(headers or {}, **{"Docker-Distribution-Api-Version": "registry/2.0"}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def registry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def run_module(capsys, module, **args):
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def test_the_sdk_is_really_gone(without_sdk):
    client = without_sdk("module_utils.client")
    assert client.HAS_DOCKER is False
    with pytest.raises(ImportError):
        import docker  # noqa: F401


def test_errors_and_module_base_import_no_sdk(without_sdk):
    without_sdk("module_utils.errors")
    without_sdk("module_utils.module")
    assert "docker" not in {name.split(".")[0] for name, mod in sys.modules.items() if mod is not None}


def test_registry_info_runs_without_the_sdk(capsys, without_sdk, registry):
    registry_info = without_sdk("modules.registry_info")
    result = run_module(capsys, registry_info, registry_url=registry)
    assert "failed" not in result, result
    assert result["health"]["ok"] is True
    assert result["catalog"] == ["app"]
    [app] = result["repositories"]
    assert app["tags"][0]["digest"] == "sha256:" + "d" * 64
    assert app["size"] == 110


def test_registry_image_reads_the_registry_then_names_the_missing_sdk(capsys, without_sdk, registry):
    registry_image = without_sdk("modules.registry_image")
    result = run_module(capsys, registry_image, name="%s/app:1" % registry, state="pulled")
    assert result["failed"] is True
    assert "docker (the Docker SDK for Python, >= 7)" in result["msg"]
    assert "exception" not in result


def test_registry_image_missing_tag_is_reported_before_the_sdk_is_needed(capsys, without_sdk, registry):
    registry_image = without_sdk("modules.registry_image")
    result = run_module(capsys, registry_image, name="%s/app:2" % registry, state="pulled")
    assert result["failed"] is True
    assert "is not in the registry" in result["msg"]
