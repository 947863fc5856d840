# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters for user namespace id mapping (dockerd --userns-remap) in templates."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.persist.docker.plugins.module_utils import idmap


def _map(subid, user):
    """A map from subordinate id file text (with user) or from ranges / a map given as a list."""
    if subid is None:
        return []
    if isinstance(subid, str):
        try:
            ranges = idmap.parse_subid(subid, user)
        except idmap.IdMapError as exc:
            raise AnsibleFilterError("persist.docker userns filters: %s" % exc) from None
        if not ranges:
            raise AnsibleFilterError("persist.docker userns filters: user %r has no range in the subordinate id "
                                     "file given" % user)
        return idmap.build_map(ranges)
    try:
        return idmap.normalize_map(subid)
    except (TypeError, ValueError, KeyError) as exc:
        raise AnsibleFilterError("persist.docker userns filters: cannot read %r as id ranges (%s); give the text "
                                 "of /etc/subuid, [{start, count}] or [[container_start, host_start, size]]"
                                 % (subid, exc)) from None


def _convert(function, value, subid, user):
    try:
        return function(int(value), _map(subid, user))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, idmap.IdMapError):
            raise AnsibleFilterError("persist.docker userns filters: %s" % exc) from None
        raise AnsibleFilterError("persist.docker userns filters: %r is not a numeric id" % (value,)) from None


def userns_host_id(value, subid, user=idmap.DEFAULT_REMAP_USER):
    """The host id of container id ``value``."""
    return _convert(idmap.to_host, value, subid, user)


def userns_container_id(value, subid, user=idmap.DEFAULT_REMAP_USER):
    """The container id that host id ``value`` is."""
    return _convert(idmap.to_container, value, subid, user)


def subid_ranges(text, user=idmap.DEFAULT_REMAP_USER):
    """The ranges of ``user`` in /etc/subuid or /etc/subgid text, as [{start, count}] sorted by start."""
    try:
        return [dict(start=s, count=c) for s, c in idmap.parse_subid(text, user)]
    except idmap.IdMapError as exc:
        raise AnsibleFilterError("persist.docker.subid_ranges: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {
            "userns_host_id": userns_host_id,
            "userns_container_id": userns_container_id,
            "subid_ranges": subid_ranges,
        }
