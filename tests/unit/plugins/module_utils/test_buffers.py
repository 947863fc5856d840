# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""buffers.prefetch: an iterator run ahead on a thread."""

from __future__ import annotations

import threading

import pytest

from ansible_collections.persist.docker.plugins.module_utils import buffers
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


def _source(n, log, fail_at=None):
    try:
        for i in range(n):
            if i == fail_at:
                raise DockerError("volume 'v': the engine stopped answering")
            log.append(("made", i, threading.current_thread().name))
            yield b"%d" % i
    finally:
        log.append(("closed", threading.current_thread().name))


def test_prefetch_yields_everything_in_order_and_closes_the_source_on_its_thread():
    log = []
    assert list(buffers.prefetch(_source(100, log), depth=3)) == [b"%d" % i for i in range(100)]
    me = threading.current_thread().name
    assert log[-1][0] == "closed" and log[-1][1] != me
    assert all(entry[2] != me for entry in log[:-1])


def test_prefetch_raises_the_sources_error_in_the_consumer():
    log = []
    with pytest.raises(DockerError, match="the engine stopped answering"):
        list(buffers.prefetch(_source(10, log, fail_at=4), depth=2))
    assert log[-1][0] == "closed"


def test_prefetch_stops_and_closes_the_source_when_the_consumer_stops_early():
    log = []
    items = buffers.prefetch(_source(10 ** 6, log), depth=2)
    assert next(items) == b"0"
    items.close()
    assert log[-1][0] == "closed"
    made = [entry for entry in log if entry[0] == "made"]
    assert len(made) < 10  # at most depth items (and the one in hand) ahead, not the whole source


def test_prefetch_runs_ahead_of_a_slow_consumer():
    produced = threading.Event()

    def source():
        yield b"a"
        yield b"b"
        produced.set()

    items = buffers.prefetch(source(), depth=4)
    assert next(items) == b"a"
    assert produced.wait(5)  # the second item was made while the consumer held the first
    assert list(items) == [b"b"]
