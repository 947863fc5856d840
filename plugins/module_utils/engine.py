# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Decisions for engine_config: daemon.json parsing, validation, merging and rendering,
subordinate id ranges for userns-remap, and the data-root move plan. Pure functions."""

from __future__ import annotations

import json
import os
import re

from ansible_collections.persist.docker.plugins.module_utils import idmap
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

DEFAULT_DATA_ROOT = "/var/lib/docker"

# A marker file in a data-root that is being filled by a move; a target holding it may be
# overwritten by a rerun, any other non-empty target is refused.
MOVE_MARKER = ".persist-docker-move"

# daemon.json keys this module knows, with the JSON type dockerd expects (Docker 20.10 to 27).
# Keys not listed here are written as given, with a warning.
KNOWN_KEYS = {
    "allow-nondistributable-artifacts": "list",
    "api-cors-header": "str",
    "authorization-plugins": "list",
    "bip": "str",
    "bridge": "str",
    "builder": "dict",
    "cgroup-parent": "str",
    "containerd": "str",
    "containerd-namespace": "str",
    "containerd-plugin-namespace": "str",
    "data-root": "path",
    "debug": "bool",
    "default-address-pools": "list",
    "default-cgroupns-mode": "str",
    "default-gateway": "str",
    "default-gateway-v6": "str",
    "default-ipc-mode": "str",
    "default-runtime": "str",
    "default-shm-size": "str",
    "default-ulimits": "dict",
    "dns": "list",
    "dns-opts": "list",
    "dns-search": "list",
    "exec-opts": "list",
    "exec-root": "path",
    "experimental": "bool",
    "features": "dict",
    "fixed-cidr": "str",
    "fixed-cidr-v6": "str",
    "group": "str",
    "hosts": "list",
    "icc": "bool",
    "init": "bool",
    "init-path": "str",
    "insecure-registries": "list",
    "ip": "str",
    "ip-forward": "bool",
    "ip-masq": "bool",
    "ip6tables": "bool",
    "iptables": "bool",
    "ipv6": "bool",
    "labels": "list",
    "live-restore": "bool",
    "log-driver": "str",
    "log-level": "str",
    "log-opts": "dict",
    "max-concurrent-downloads": "int",
    "max-concurrent-uploads": "int",
    "max-download-attempts": "int",
    "metrics-addr": "str",
    "mtu": "int",
    "no-new-privileges": "bool",
    "node-generic-resources": "list",
    "oom-score-adjust": "int",
    "pidfile": "path",
    "raw-logs": "bool",
    "registry-mirrors": "list",
    "runtimes": "dict",
    "seccomp-profile": "str",
    "selinux-enabled": "bool",
    "shutdown-timeout": "int",
    "storage-driver": "str",
    "storage-opts": "list",
    "swarm-default-advertise-addr": "str",
    "tls": "bool",
    "tlscacert": "path",
    "tlscert": "path",
    "tlskey": "path",
    "tlsverify": "bool",
    "userland-proxy": "bool",
    "userland-proxy-path": "str",
    "userns-remap": "str",
}

# Options every log driver accepts (the logging mode of the daemon, not of the driver).
COMMON_LOG_OPTS = ("mode", "max-buffer-size")
_ATTRS = ("labels", "labels-regex", "env", "env-regex")

# The options of Docker's built-in log drivers.
LOG_DRIVER_OPTS = {
    "json-file": ("max-size", "max-file", "compress", "tag") + _ATTRS,
    "local": ("max-size", "max-file", "compress"),
    "journald": ("tag",) + _ATTRS,
    "syslog": ("syslog-address", "syslog-facility", "syslog-tls-ca-cert", "syslog-tls-cert", "syslog-tls-key",
               "syslog-tls-skip-verify", "syslog-format", "tag") + _ATTRS,
    "gelf": ("gelf-address", "gelf-compression-type", "gelf-compression-level", "gelf-tcp-max-reconnect",
             "gelf-tcp-reconnect-delay", "tag") + _ATTRS,
    "fluentd": ("fluentd-address", "fluentd-async", "fluentd-async-connect", "fluentd-buffer-limit",
                "fluentd-retry-wait", "fluentd-max-retries", "fluentd-sub-second-precision",
                "fluentd-request-ack", "fluentd-write-timeout", "tag") + _ATTRS,
    "awslogs": ("awslogs-region", "awslogs-endpoint", "awslogs-group", "awslogs-stream", "awslogs-create-group",
                "awslogs-create-stream", "awslogs-datetime-format", "awslogs-multiline-pattern",
                "awslogs-credentials-endpoint", "awslogs-force-flush-interval-seconds",
                "awslogs-max-buffered-events", "awslogs-format", "tag"),
    "splunk": ("splunk-token", "splunk-url", "splunk-source", "splunk-sourcetype", "splunk-index",
               "splunk-capath", "splunk-caname", "splunk-insecureskipverify", "splunk-format",
               "splunk-verify-connection", "splunk-gzip", "splunk-gzip-level", "splunk-index-acknowledgment",
               "tag") + _ATTRS,
    "gcplogs": ("gcp-project", "gcp-log-cmd", "gcp-meta-zone", "gcp-meta-name", "gcp-meta-id") + _ATTRS,
    "logentries": ("logentries-token", "line-only", "tag") + _ATTRS,
    "etwlogs": (),
    "none": (),
}

_SIZE_RE = re.compile(r"^(-1|[0-9]+(\.[0-9]+)?\s*([kKmMgGtTpP][iI]?)?[bB]?)$")
_BOOL_WORDS = ("true", "false", "1", "0")


def parse_config(text, path):
    """The dict in a daemon.json text; an empty or blank file is an empty config."""
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise DockerError("%s is not valid JSON (%s); fix or remove the file, dockerd would not start with it"
                          % (path, exc)) from None
    if not isinstance(config, dict):
        raise DockerError("%s holds a JSON %s, not an object; dockerd expects {\"key\": value, ...}"
                          % (path, type(config).__name__))
    return config


def render_config(config):
    """daemon.json text: two-space indented JSON with a final newline, keys in the given order."""
    return json.dumps(config, indent=2, ensure_ascii=False) + "\n"


def _check_type(key, value, kind):
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind in ("str", "path"):
        ok = isinstance(value, str)
    elif kind == "list":
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, dict)
    if not ok:
        names = {"bool": "a boolean", "int": "an integer", "str": "a string", "path": "an absolute path",
                 "list": "a list", "dict": "a dictionary"}
        raise DockerError("settings: '%s' must be %s, got %s %r" % (key, names[kind], type(value).__name__, value))


def _opt_text(driver, name, value):
    """log-opts values are strings in daemon.json; booleans and numbers are written as strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    raise DockerError("settings: log-opts '%s' of log driver '%s' must be a string or a number, got %s"
                      % (name, driver, type(value).__name__))


def validate_log_opts(driver, opts):
    """Check log-opts against the options of the log driver; return them with string values.

    Built-in drivers are checked option by option; a plugin driver (any other name) is passed
    through as it is, because its options are defined by the plugin.
    """
    result = {}
    for name, value in opts.items():
        result[name] = _opt_text(driver, name, value)
    if driver not in LOG_DRIVER_OPTS:
        return result
    allowed = LOG_DRIVER_OPTS[driver] + COMMON_LOG_OPTS
    unknown = sorted(name for name in result if name not in allowed)
    if unknown:
        raise DockerError("settings: log-opts %s not supported by log driver '%s'; it accepts %s"
                          % (", ".join("'%s'" % u for u in unknown), driver, ", ".join(allowed) or "no options"))
    for name in ("max-size", "max-buffer-size"):
        if name in result and not _SIZE_RE.match(result[name]):
            raise DockerError("settings: log-opts %s '%s' is not a size; use a number with an optional unit, "
                              "for example 10m or 1g" % (name, result[name]))
    if "max-file" in result:
        if not re.match(r"^[0-9]+$", result["max-file"]) or int(result["max-file"]) < 1:
            raise DockerError("settings: log-opts max-file '%s' must be a whole number of at least 1"
                              % result["max-file"])
        if driver == "json-file" and int(result["max-file"]) > 1 and "max-size" not in result:
            raise DockerError("settings: log-opts max-file needs max-size with log driver json-file "
                              "(without max-size the log is never rotated)")
    if "compress" in result and result["compress"].lower() not in _BOOL_WORDS:
        raise DockerError("settings: log-opts compress '%s' must be true or false" % result["compress"])
    if "mode" in result and result["mode"] not in ("blocking", "non-blocking"):
        raise DockerError("settings: log-opts mode '%s' must be blocking or non-blocking" % result["mode"])
    return result


def validate_settings(settings):
    """Check the requested daemon.json keys; return (normalized settings, warnings)."""
    result = {}
    warnings = []
    for key, value in settings.items():
        kind = KNOWN_KEYS.get(key)
        if kind is None:
            warnings.append("settings: '%s' is not a daemon.json key this module knows; it is written as given, "
                            "but dockerd refuses to start with a key it does not know" % key)
            result[key] = value
            continue
        _check_type(key, value, kind)
        if kind == "path":
            if not os.path.isabs(value):
                raise DockerError("settings: '%s' must be an absolute path, got '%s'" % (key, value))
            value = os.path.normpath(value)  # noqa: PLW2901
        if kind == "list" and key in ("insecure-registries", "registry-mirrors", "dns", "dns-search", "dns-opts",
                                      "hosts", "labels", "exec-opts", "storage-opts"):
            bad = [item for item in value if not isinstance(item, str) or not item]
            if bad:
                raise DockerError("settings: '%s' must be a list of non-empty strings, got %r" % (key, bad[0]))
        if key == "registry-mirrors":
            bad = [m for m in value if not re.match(r"^https?://[^/]+", m)]
            if bad:
                raise DockerError("settings: registry-mirrors '%s' is not a URL; write it as "
                                  "https://host[:port] or http://host[:port]" % bad[0])
        if key == "userns-remap":
            parse_userns_remap(value)
        result[key] = value
    return result, warnings


def merge_config(current, settings, remove):
    """The config after setting ``settings`` and removing ``remove``, and the keys that changed.

    Keys already in the file keep their place and every key not named is kept as it is.
    Dictionary values (log-opts, ...) are replaced as a whole.
    """
    merged = dict(current)
    changed = []
    for key in remove:
        if key in settings:
            raise DockerError("'%s' is both in settings and in remove; name it in one of them" % key)
        if key in merged:
            del merged[key]
            changed.append(key)
    for key, value in settings.items():
        if key not in merged or merged[key] != value:
            changed.append(key)
        merged[key] = value
    return merged, sorted(changed)


def changed_config_keys(before, after):
    """The keys added, removed or changed between two configs, sorted."""
    return sorted(k for k in set(before) | set(after)
                  if k not in before or k not in after or before[k] != after[k])


def check_log_config(config):
    """Validate the log-opts of the merged config against its log driver; return the config."""
    opts = config.get("log-opts")
    if opts is None:
        return config
    if not isinstance(opts, dict):
        raise DockerError("log-opts must be a dictionary, got %s" % type(opts).__name__)
    driver = config.get("log-driver") or "json-file"
    result = dict(config)
    result["log-opts"] = validate_log_opts(driver, opts)
    return result


def parse_userns_remap(value):
    """(user, group) of a userns-remap value; 'default' is dockerd's own dockremap user."""
    if value == "default":
        return "dockremap", "dockremap"
    if not re.match(r"^[a-z_][a-z0-9_.-]*(:[a-z_][a-z0-9_.-]*)?$", value or ""):
        raise DockerError("settings: userns-remap '%s' is not a user name, user:group or 'default'" % value)
    user, _sep, group = value.partition(":")
    return user, group or user


def parse_subids(text, path):
    """[(name, start, count)] of an /etc/subuid or /etc/subgid text (idmap.subid_entries)."""
    try:
        return idmap.subid_entries(text)
    except idmap.IdMapError as exc:
        raise DockerError("%s %s; fix the file first" % (path, exc)) from None


def plan_subids(text, name, start, count, path):
    """The new text of a subordinate id file with a range for ``name``, or None when it has one.

    An existing range of ``name`` is kept as it is (files in the data-root are owned by ids in
    it). A new range must not overlap another entry's.
    """
    if start < 1 or count < 1:
        raise DockerError("subordinate id range %d:%d for %s is empty or starts at 0" % (start, count, name))
    entries = parse_subids(text, path)
    if any(entry[0] == name for entry in entries):
        return None
    for other, other_start, other_count in entries:
        if start < other_start + other_count and other_start < start + count:
            raise DockerError("subordinate id range %d-%d for %s in %s overlaps %s's range %d-%d; choose another "
                              "start" % (start, start + count - 1, name, path, other, other_start,
                                         other_start + other_count - 1))
    if text and not text.endswith("\n"):
        text += "\n"
    return "%s%s:%d:%d\n" % (text, name, start, count)


def effective_data_root(info):
    """The configured data-root of a running engine from its /info (without the userns suffix)."""
    root = info.get("DockerRootDir") or DEFAULT_DATA_ROOT
    if any("name=userns" in opt for opt in info.get("SecurityOptions") or []):
        base, last = os.path.split(root.rstrip("/"))
        if re.match(r"^[0-9]+\.[0-9]+$", last):
            root = base
    return os.path.normpath(root)


def _inside(path, parent):
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def plan_data_root(current, wanted, target_kind, target_entries, blocker=None, source_exists=True):
    """Whether the data has to move from ``current`` to ``wanted``; raises on a target that is unsafe.

    target_kind: 'missing', 'dir' or 'other' (a file, a socket...); target_entries: the names in
    the target directory; blocker: for a missing target, a path above it that is not a directory;
    source_exists: whether ``current`` exists (without it there is nothing to move, and a target
    that already holds data is simply used).
    """
    if not wanted:
        return dict(current=current, wanted=current, move=False)
    if target_kind == "other":
        raise DockerError("data-root %s exists and is not a directory; remove it or choose another path" % wanted)
    if blocker:
        raise DockerError("data-root %s cannot be created: %s is not a directory; choose another path"
                          % (wanted, blocker))
    if current == wanted:
        return dict(current=current, wanted=wanted, move=False)
    if _inside(wanted, current) or _inside(current, wanted):
        raise DockerError("data-root %s and the current data-root %s lie inside one another; choose a path "
                          "outside %s" % (wanted, current, current))
    if not source_exists:
        return dict(current=current, wanted=wanted, move=False)
    entries = [e for e in target_entries if e != MOVE_MARKER]
    if entries and MOVE_MARKER not in target_entries:
        raise DockerError("data-root %s is not empty (%s); refusing to copy %s over it: empty it or choose "
                          "another path" % (wanted, ", ".join(sorted(entries)[:3]), current))
    return dict(current=current, wanted=wanted, move=True)
