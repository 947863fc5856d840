# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""User namespace id mapping (dockerd --userns-remap), as pure functions.

With user namespaces, id N inside a container is a different id on the host:
the engine takes the subordinate id ranges of its remap user from
/etc/subuid and /etc/subgid, sorts them by start and lays them end to end
from container id 0. These helpers parse those files and translate ids both
ways; the filter plugin persist.docker.userns exposes them to templates.
"""

from __future__ import annotations

import re

# The remap user dockerd creates for --userns-remap=default.
DEFAULT_REMAP_USER = "dockremap"

_ROOT_DIR_RE = re.compile(r"/(\d+)\.(\d+)/?$")


class IdMapError(ValueError):
    """An id that cannot be mapped, or a malformed subordinate id file."""


def subid_entries(text):
    """The entries of an /etc/subuid or /etc/subgid text: ``[(name, start, count)]`` in file order.

    Lines read ``name-or-id:start:count``; comments and blank lines are
    skipped. IdMapError names the first line that is not such an entry.
    This is the one parser of those files.
    """
    entries = []
    for number, raw in enumerate((text or "").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3:
            raise IdMapError("line %d %r is not name:start:count" % (number, line))
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            raise IdMapError("line %d %r has a non-numeric start or count" % (number, line)) from None
        if start < 0 or count < 0:
            raise IdMapError("line %d %r has a negative start or count" % (number, line))
        entries.append((parts[0], start, count))
    return entries


def parse_subid(text, user, user_id=None):
    """The ranges of ``user`` in the text of /etc/subuid or /etc/subgid.

    A line for the user's numeric id (``user_id``) counts too, as for
    dockerd. Returns ``[(start, count)]`` sorted by start, as dockerd lays
    them out.
    """
    names = {str(user)}
    if user_id is not None:
        names.add(str(user_id))
    ranges = []
    for name, start, count in subid_entries(text):
        if name not in names:
            continue
        if count <= 0:
            raise IdMapError("the subordinate id file has an empty range for %s: %s:%d:%d" % (name, name, start, count))
        ranges.append((start, count))
    return sorted(ranges)


def build_map(ranges):
    """``[(start, count)]`` host ranges -> ``[(container_start, host_start, size)]``."""
    result = []
    container_start = 0
    for start, count in sorted(ranges):
        result.append((container_start, start, count))
        container_start += count
    return result


def normalize_map(value):
    """Accept a map as built by build_map(), or as dicts (container_id, host_id, size)
    or (start, count) subordinate ranges, and return build_map()'s form."""
    if not value:
        return []
    items = list(value)
    if all(isinstance(i, dict) and "start" in i for i in items):
        return build_map([(int(i["start"]), int(i["count"])) for i in items])
    if all(isinstance(i, dict) for i in items):
        return sorted((int(i["container_id"]), int(i["host_id"]), int(i["size"])) for i in items)
    if all(len(i) == 2 for i in items):
        return build_map([(int(a), int(b)) for a, b in items])
    return sorted((int(a), int(b), int(c)) for a, b, c in items)


# Why an id cannot be mapped, by direction (outward: container to host).
_OUTSIDE = {
    True: "id %d is outside the user namespace's ranges (%s): no host id corresponds to it",
    False: "host id %d is outside the user namespace's ranges (%s): containers see it as nobody",
}


def _shift(an_id, id_map, outward):
    """an_id through the map's ranges, container to host when outward; itself without a map.

    IdMapError when no range holds it.
    """
    an_id = int(an_id)
    if not id_map:
        return an_id
    for c_start, h_start, size in id_map:
        start, target = (c_start, h_start) if outward else (h_start, c_start)
        if start <= an_id < start + size:
            return target + an_id - start
    raise IdMapError(_OUTSIDE[outward] % (an_id, describe(id_map)))


def to_host(container_id, id_map):
    """The host id of ``container_id``; the identity when the map is empty."""
    return _shift(container_id, id_map, True)


def to_container(host_id, id_map):
    """The container id that is ``host_id`` on the host; the identity when the map is empty."""
    return _shift(host_id, id_map, False)


def to_container_or_none(host_id, id_map):
    """to_container(), or None for a host id that no container id maps to."""
    try:
        return to_container(host_id, id_map)
    except IdMapError:
        return None


def describe(id_map):
    return ", ".join("%d-%d -> %d-%d" % (c, c + n - 1, h, h + n - 1) for c, h, n in id_map) or "identity"


def root_from_docker_root_dir(path):
    """(uid, gid) of container root from an engine's DockerRootDir, or None.

    With --userns-remap the engine keeps its data in ``<data-root>/<uid>.<gid>``.
    """
    match = _ROOT_DIR_RE.search(path or "")
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


def userns_enabled(security_options):
    """Whether an engine's SecurityOptions (docker info) include user namespaces."""
    return any(option == "userns" or "name=userns" in option.split(",") for option in security_options or [])


def find_remap_user(text, host_root_id):
    """The name in /etc/subuid (or subgid) text whose lowest range starts at host_root_id."""
    owners = {}
    for name, start, _count in subid_entries(text):
        owners[name] = min(start, owners.get(name, start))
    matches = sorted(name for name, start in owners.items() if start == host_root_id)
    if DEFAULT_REMAP_USER in matches:
        return DEFAULT_REMAP_USER
    return matches[0] if matches else None


def engine_maps(security_options, docker_root_dir, subuid_text, subgid_text, default_size=65536):
    """The (uid_map, gid_map) of an engine, from its docker info and the subordinate id files.

    Returns (None, None, note) when the engine does not remap ids. When the
    files are not available (remote engine), a single range of default_size
    from the root ids in DockerRootDir is assumed and the note says so.
    """
    if not userns_enabled(security_options):
        return None, None, "the engine does not remap user namespaces"
    root = root_from_docker_root_dir(docker_root_dir)
    if root is None:
        raise IdMapError("the engine runs with user namespaces but its DockerRootDir %r does not name the "
                         "remapped root ids" % docker_root_dir)
    maps = []
    notes = []
    for kind, text, root_id in (("uid", subuid_text, root[0]), ("gid", subgid_text, root[1])):
        user = find_remap_user(text, root_id) if text is not None else None
        ranges = parse_subid(text, user) if user else []
        if not ranges:
            ranges = [(root_id, default_size)]
            notes.append("assumed %s range %d:%d (subordinate id file not readable or without a matching entry)"
                         % (kind, root_id, default_size))
        maps.append(build_map(ranges))
    note = "; ".join(notes) or "ranges read from /etc/subuid and /etc/subgid"
    return maps[0], maps[1], note
