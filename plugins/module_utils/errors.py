# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's one exception, and the translation of OSError into it.

Lower layers raise :class:`DockerError` with a one-line message that names the
object, the cause and what to do; the module base (``module.py``) turns it into
``fail_json(msg=...)``. This file imports no Docker SDK, so pure code (plans,
renderers, the registry HTTP client) can raise it without needing the SDK.
"""

from __future__ import annotations

from contextlib import contextmanager


class DockerError(Exception):
    """A foreseeable failure, with a message fit to show a user as it is."""


@contextmanager
def os_errors(subject, hint):
    """Translate OSError raised inside the block into DockerError.

    ``subject`` names what was being done ("copy of volume 'a' to 'b'"), ``hint`` what to do about it.
    """
    try:
        yield
    except OSError as exc:
        where = " (%s)" % exc.filename if exc.filename else ""
        raise DockerError("%s failed: %s%s; %s" % (subject, exc.strerror or exc, where, hint)) from None
