# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small client of the Registry HTTP API v2 (distribution), with requests.

Errors are raised as DockerError with one line that names the registry, the
cause and what to do. Basic auth and bearer-token auth (WWW-Authenticate) are
both understood.
"""

from __future__ import annotations

import json
import os
import re
import time

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.reference import registry_of, split_reference

try:
    import requests
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import RequestException, SSLError
except ImportError:
    HAS_REQUESTS = False
else:
    HAS_REQUESTS = True

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
LIST_TYPES = MANIFEST_TYPES[2:]

REGISTRY_CLIENT_SPEC = dict(
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    registry_ca_path=dict(type="path"),
    registry_validate_certs=dict(type="bool", default=True),
    registry_scheme=dict(type="str", default="auto", choices=["auto", "https", "http"]),
)

_LOOPBACK_RE = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$")
_LINK_RE = re.compile(r"<([^>]+)>\s*;\s*rel=\"?next\"?")
_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


def tls_warnings(params):
    """Warnings for connections that encrypt without checking the peer's certificate (pure).

    The defaults stay those of community.docker (``tls``/``validate_certs`` false for the daemon,
    ``registry_validate_certs`` true for the registry); only an encrypted but unverified connection
    is worth a word, because it looks safe and is not.
    """
    warnings = []
    if params.get("tls") and not params.get("validate_certs"):
        warnings.append("tls is true but validate_certs is false: the connection to the Docker daemon at %s is "
                        "encrypted but the daemon's certificate is not checked, so anyone in between can read and "
                        "change it; set validate_certs: true with ca_path" % params.get("docker_host"))
    if params.get("registry_validate_certs") is False and params.get("registry_scheme") != "http":
        warnings.append("registry_validate_certs is false: the registry's TLS certificate is not checked, so "
                        "credentials and images can be intercepted; give registry_ca_path with the CA instead")
    return warnings


def split_image_reference(reference, default_tag="latest"):
    """'host:port/path/name:tag' -> (registry, repository, tag). The registry host must be given."""
    name, tag = split_reference(reference or "", default_tag)
    host = registry_of(name)
    if not host:
        raise DockerError("image reference '%s' does not name a registry; write it as host[:port]/repository[:tag], "
                          "for example localhost:5000/busybox" % reference)
    return host, name[len(host) + 1:], tag


def is_loopback(host):
    return bool(_LOOPBACK_RE.match(host or ""))


def parse_registry_url(url):
    """'localhost:5000' or 'https://reg:5000/' -> (scheme or None, host[:port])."""
    text = (url or "").strip().rstrip("/")
    match = re.match(r"^(https?)://([^/]+)$", text)
    if match:
        return match.group(1), match.group(2)
    if re.match(r"^[^/:\s]+(:\d+)?$", text) or re.match(r"^\[[0-9a-fA-F:]+\](:\d+)?$", text):
        return None, text
    raise DockerError("registry URL '%s' is not host[:port] or http(s)://host[:port]" % url)


def manifest_summary(manifest, media_type, digest):
    """Digest, type and sizes of a manifest document (schema 2, OCI or a list)."""
    if media_type in LIST_TYPES or "manifests" in manifest:
        entries = [entry for entry in manifest.get("manifests") or [] if isinstance(entry, dict)]
        platforms = []
        for entry in entries:
            platform = entry.get("platform") or {}
            platforms.append("%s/%s" % (platform.get("os"), platform.get("architecture")))
        return dict(digest=digest, media_type=media_type, config_digest=None, config_size=0,
                    layers=[], size=sum(int(m.get("size") or 0) for m in entries), platforms=platforms,
                    children=[m["digest"] for m in entries if m.get("digest")])
    config = manifest.get("config") or {}
    layers = [dict(digest=layer.get("digest"), size=int(layer.get("size") or 0))
              for layer in manifest.get("layers") or []]
    config_size = int(config.get("size") or 0)
    return dict(digest=digest, media_type=media_type, config_digest=config.get("digest"), config_size=config_size,
                layers=layers, size=config_size + sum(layer["size"] for layer in layers))


class RegistryClient:
    """The API of one registry. ``registry`` is host[:port] or a URL with a scheme."""

    def __init__(self, registry, *, username=None, password=None, ca_path=None, validate_certs=True,
                 scheme="auto", timeout=30):
        if not HAS_REQUESTS:
            raise DockerError("the Python package requests is needed on the managed host; "
                              "install it (pip install requests)")
        url_scheme, self.host = parse_registry_url(registry)
        if ca_path and not os.path.isfile(ca_path):
            raise DockerError("registry_ca_path %s does not exist or is not a file; give the CA certificate that "
                              "signed the certificate of the registry %s" % (ca_path, self.host))
        self.scheme = url_scheme or (None if scheme == "auto" else scheme)
        self.username = username
        self.password = password
        self.timeout = timeout
        self.session = requests.Session()
        # passed with every request: a session-level setting loses against REQUESTS_CA_BUNDLE
        self.verify = ca_path if ca_path else bool(validate_certs)
        self._token = None

    # -- transport ------------------------------------------------------------------------------
    @property
    def base_url(self):
        return "%s://%s" % (self.scheme or "https", self.host)

    def _send(self, method, url, headers=None, **kwargs):
        headers = dict(headers or {})
        if self._token:
            headers["Authorization"] = "Bearer %s" % self._token
        auth = (self.username, self.password) if self.username and not self._token else None
        return self.session.request(method, url, headers=headers, auth=auth, timeout=self.timeout, verify=self.verify,
                                    **kwargs)

    def _resolve_scheme(self):
        """auto: https, and plain http only for a loopback registry that does not speak TLS.

        A loopback registry is asked over plain HTTP first (cheaper than a failed TLS handshake);
        a TLS server answers that with 400 "Client sent an HTTP request to an HTTPS server".
        """
        if self.scheme:
            return
        if not is_loopback(self.host):
            self.scheme = "https"
            return
        self.scheme = "http"
        try:
            answer = self.session.get("http://%s/v2/" % self.host, timeout=self.timeout)
        except RequestException:
            return
        if answer.status_code == 400 and b"HTTPS" in answer.content:
            self.scheme = "https"

    def request(self, method, path, headers=None, ok=(200,), allow_missing=False, **kwargs):
        """Send one request; answer the auth challenge once; map failures to DockerError."""
        what = "%s %s" % (method, path)
        try:
            self._resolve_scheme()
            url = self.base_url + path
            response = self._send(method, url, headers=headers, **kwargs)
            if response.status_code == 401 and self._answer_challenge(response):
                response = self._send(method, url, headers=headers, **kwargs)
        except SSLError as exc:
            if "WRONG_VERSION_NUMBER" in str(exc):
                raise DockerError("registry %s does not answer in TLS (%s): it speaks plain HTTP; give an http:// URL "
                                  "or registry_scheme: http" % (self.host, _short(exc))) from None
            raise DockerError("registry %s: TLS verification failed (%s); give registry_ca_path with the CA that "
                              "signed its certificate" % (self.host, _short(exc))) from None
        except RequestsConnectionError as exc:
            raise DockerError("cannot reach the registry at %s (%s); check that it runs and that the host and port "
                              "are right" % (self.base_url, _short(exc))) from None
        except RequestException as exc:
            raise DockerError("registry %s: %s failed: %s" % (self.host, what, _short(exc))) from None
        if allow_missing and response.status_code == 404:
            return None
        if response.status_code == 401 and 401 not in ok:
            raise DockerError("registry %s: %s was refused with 401 Unauthorized; %s"
                              % (self.host, what, "check username and password" if self.username
                                 else "the registry needs a username and password"))
        if response.status_code == 405 and method == "DELETE":
            raise DockerError("registry %s: deleting is disabled (405); deploy the registry with delete_enabled: true"
                              % self.host)
        if response.status_code not in ok:
            raise DockerError("registry %s: %s answered %s: %s"
                              % (self.host, what, response.status_code, _errors_text(response)))
        return response

    def _answer_challenge(self, response):
        challenge = response.headers.get("WWW-Authenticate", "")
        if not challenge.lower().startswith("bearer") or self._token:
            return False
        fields = dict(_CHALLENGE_RE.findall(challenge))
        if not fields.get("realm"):
            return False
        params = {k: v for k, v in fields.items() if k in ("service", "scope")}
        auth = (self.username, self.password) if self.username else None
        answer = self.session.get(fields["realm"], params=params, auth=auth, timeout=self.timeout, verify=self.verify)
        if answer.status_code != 200:
            return False
        body = response_json(answer, self.host, "the token from %s" % fields["realm"])
        self._token = body.get("token") or body.get("access_token")
        return bool(self._token)

    # -- the API --------------------------------------------------------------------------------
    def ping(self):
        """GET /v2/: the health of the registry (never raises for 401, which proves it is up)."""
        try:
            response = self.request("GET", "/v2/", ok=(200, 401))
        except DockerError as exc:
            return dict(ok=False, status=None, error=str(exc), api_version=None, url=self.base_url)
        return dict(ok=response.status_code == 200, status=response.status_code, error=None,
                    api_version=response.headers.get("Docker-Distribution-Api-Version"), url=self.base_url)

    def _paginated(self, path, key, page_size):
        items = []
        url = "%s?n=%d" % (path, page_size)
        while url:
            response = self.request("GET", url)
            document = response_json(response, self.host, "GET %s" % path)
            items.extend(_string_list(document.get(key), self.host, path, key))
            match = _LINK_RE.search(response.headers.get("Link", ""))
            url = None
            if match:
                url = re.sub(r"^https?://[^/]+", "", match.group(1))
        return items

    def catalog(self, page_size=100):
        return self._paginated("/v2/_catalog", "repositories", page_size)

    def tags(self, repository, page_size=100):
        try:
            return sorted(self._paginated("/v2/%s/tags/list" % repository, "tags", page_size))
        except DockerError as exc:
            if " 404:" in str(exc):
                return []
            raise

    def manifest(self, repository, reference):
        """The manifest summary of repository:reference, or None if it does not exist."""
        response = self.request("GET", "/v2/%s/manifests/%s" % (repository, reference),
                                headers={"Accept": ", ".join(MANIFEST_TYPES)}, allow_missing=True)
        if response is None:
            return None
        media_type = (response.headers.get("Content-Type") or "").split(";")[0]
        document = response_json(response, self.host, "the manifest of %s:%s" % (repository, reference))
        media_type = document.get("mediaType") or media_type
        digest = response.headers.get("Docker-Content-Digest")
        return manifest_summary(document, media_type, digest)

    def blob_json(self, repository, digest):
        response = self.request("GET", "/v2/%s/blobs/%s" % (repository, digest), allow_missing=True)
        return None if response is None else response_json(response, self.host, "blob %s of %s" % (digest, repository))

    def delete_manifest(self, repository, digest):
        self.request("DELETE", "/v2/%s/manifests/%s" % (repository, digest), ok=(202, 200), allow_missing=True)


def wait_until_up(client, timeout, is_alive=None, interval=0.5):
    """Poll /v2/ until it answers (200 or 401). is_alive() may raise to stop early."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        health = client.ping()
        if health["status"] in (200, 401):
            return health
        last = health["error"]
        if is_alive is not None:
            is_alive()
        if time.monotonic() >= deadline:
            raise DockerError("registry at %s did not answer /v2/ within %ss (%s); see the container's logs"
                              % (client.base_url, timeout, last))
        time.sleep(interval)


def response_json(response, host, what):
    """The JSON object of a registry answer; DockerError when the body is not a JSON object."""
    try:
        document = json.loads(response.content.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DockerError("registry %s: %s is not valid JSON (%s; the answer starts with %r); check that "
                          "registry_url points at a Docker registry and not at another web server"
                          % (host, what, exc.__class__.__name__, response.content[:60])) from None
    if not isinstance(document, dict):
        raise DockerError("registry %s: %s is JSON but not an object (a %s); check that registry_url points at a "
                          "Docker registry" % (host, what, type(document).__name__))
    return document


def _string_list(value, host, path, key):
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DockerError("registry %s: GET %s answered a %s that is not a list of names; check that registry_url "
                          "points at a Docker registry" % (host, path, key))
    return value


def _short(exc):
    text = str(exc)
    match = re.search(r"\[SSL: [A-Z_]+\][^'\"()]*|Connection refused|Name or service not known|timed out", text)
    return match.group(0).strip() if match else text[:200]


def _errors_text(response):
    try:
        errors = response.json().get("errors") or []
        return "; ".join("%s %s" % (e.get("code", ""), e.get("message", "")) for e in errors) or response.text[:200]
    except (ValueError, AttributeError, TypeError):
        return response.text[:200]


def image_matches(local_image, remote, registry, repository):
    """Whether a local image (inspect) is the image a remote manifest summary describes.

    True when the registry's manifest points at the local image's config (its id), or when the
    engine recorded that very manifest digest for this repository (RepoDigests).
    """
    if not local_image or not remote:
        return False
    if remote.get("config_digest") and remote["config_digest"] == local_image.get("Id"):
        return True
    wanted = "%s/%s@%s" % (registry, repository, remote.get("digest"))
    return wanted in (local_image.get("RepoDigests") or [])


def stream_error(messages):
    """The first error in a push or pull progress stream, and the final digest ('aux' record)."""
    error = digest = None
    for message in messages:
        if not isinstance(message, dict):
            continue
        if message.get("error") and error is None:
            error = message["error"].strip()
        aux = message.get("aux") or {}
        if aux.get("Digest"):
            digest = aux["Digest"]
        status = message.get("status") or ""
        if status.startswith("Digest: "):
            digest = status[len("Digest: "):].strip()
        elif "digest: sha256:" in status:
            digest = status.split("digest: ", 1)[1].split()[0]
    return error, digest
