# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reused read buffers and the worker threads that consume them.

* :class:`BufferPool` -- page-aligned buffers shared by a producer and its consumers, each held until
  the last party is done with it.
* :class:`Buffers` -- a stream laid out in a pool's buffers, one whole buffer per chunk.
* :class:`Worker` -- a thread that applies work to batches in order (hashing, writing).
* :func:`hash_worker` -- a Worker that feeds sha256 objects with pooled chunks.
* :func:`prefetch` -- an iterator run on a thread, a bounded number of items ahead of its consumer.
"""

from __future__ import annotations

import mmap
import os
import queue
import threading

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manifest import BUFFER


class BufferPool:
    """Read buffers that are reused, shared by a producer and the threads that consume its chunks.

    A chunk is a memoryview of a pooled buffer. Each party that keeps a chunk
    past the producer's next step holds it and releases it when done; a buffer
    returns to the pool when its last hold is released. Reusing a few buffers
    keeps memory flat and spares the page faults of fresh allocations. The
    buffers are page-aligned (anonymous mappings), so a whole one can be
    written with O_DIRECT.

    The producer holds only the buffer it fills and hands every other hold
    to a thread at once, so it never waits for a buffer that only it could
    free.
    """

    MINIMUM = 4

    def __init__(self, count=12, size=BUFFER):
        count = max(count, self.MINIMUM)
        self.size = size
        self.free = queue.Queue()
        for _i in range(count):
            self.free.put(mmap.mmap(-1, size))
        self.lock = threading.Lock()
        self.holds = {}

    def take(self):
        """A free buffer, held by the caller."""
        buf = self.free.get()
        with self.lock:
            self.holds[id(buf)] = 1
        return buf

    def hold(self, chunk):
        """One more hold on chunk's buffer (chunks that are not pooled are ignored)."""
        key = id(getattr(chunk, "obj", None))
        with self.lock:
            if key in self.holds:
                self.holds[key] += 1

    def release(self, chunk):
        """Drop one hold on chunk (or on a buffer); the last one frees the buffer."""
        obj = getattr(chunk, "obj", chunk)
        key = id(obj)
        with self.lock:
            if key not in self.holds:
                return
            self.holds[key] -= 1
            if self.holds[key]:
                return
            del self.holds[key]
        self.free.put(obj)


class Buffers:
    """Lays a stream out in a pool's buffers, one after the other; each full buffer is one chunk.

    put() and read() are generators that yield the buffers they fill up; a
    yielded buffer is valid until the next step unless the consumer holds it.
    """

    def __init__(self, pool):
        self.pool = pool
        self.buf = pool.take()
        self.view, self.pos = memoryview(self.buf), 0

    def _full(self):
        yield self.view[:self.pos]
        self.pool.release(self.buf)
        self.buf = None  # not ours to release again until take() returns
        self.buf = self.pool.take()
        self.view, self.pos = memoryview(self.buf), 0

    def put(self, data):
        """Copy data (a header or padding) into the stream."""
        data = memoryview(data)
        while data:
            n = min(len(data), self.pool.size - self.pos)
            self.view[self.pos:self.pos + n] = data[:n]
            self.pos += n
            data = data[n:]
            if self.pos == self.pool.size:
                yield from self._full()

    def read(self, fd, left, path, take):
        """Read left bytes of fd into the stream; call take(piece) for every piece read."""
        while left > 0:
            n = os.readv(fd, [self.view[self.pos:self.pos + min(self.pool.size - self.pos, left)]])
            if not n:
                raise DockerError("file %r of the volume shrank while it was read; stop the containers that write to "
                                  "the volume (stop_containers: true) and run again" % path)
            take(self.view[self.pos:self.pos + n])
            self.pos += n
            left -= n
            if self.pos == self.pool.size:
                yield from self._full()

    def finish(self):
        """Yield the last, partly filled buffer."""
        if self.pos:
            yield self.view[:self.pos]

    def close(self):
        if self.buf is not None:
            self.pool.release(self.buf)
            self.buf = None


def hash_worker(pool):
    def work(batch):
        """(hash, chunk) adds content, (hash, entry) stores the digest in the entry."""
        for h, what in batch:
            if isinstance(what, dict):
                what["sha256"] = h.hexdigest()
            else:
                h.update(what)
    return Worker(work, lambda item: pool.release(item[1]))


class Worker:
    """A thread that applies work to each batch put to it, in order.

    hashlib and file I/O release the GIL, so a worker runs beside the thread
    that feeds it; the bounded queue keeps memory bounded. release, if given,
    is called for every item once its batch is done (or skipped after an
    error). close() waits for the work and re-raises its first error;
    abandon() skips what is left.
    """

    def __init__(self, work, release=None, depth=6):
        self.work = work
        self.release = release
        self.error = None
        self.queue = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            batch = self.queue.get()
            if batch is None:
                return
            try:
                if self.error is None:
                    self.work(batch)
            except Exception as e:  # noqa: BLE001 - handed to the feeding thread by close()
                self.error = e
            finally:
                if self.release is not None:
                    for item in batch:
                        self.release(item)

    def put(self, batch):
        if batch:
            self.queue.put(batch)

    def close(self):
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def abandon(self):
        """Skip the batches not done yet (their items are still released) and wait for the thread."""
        if self.error is None:
            self.error = DockerError("abandoned")
        self.queue.put(None)
        self.thread.join()


class _Failed:
    def __init__(self, error):
        self.error = error


_END = object()


def prefetch(items, depth=32, patience=30.0):
    """Yield what iterating ``items`` yields, iterated on a thread up to ``depth`` items ahead.

    Socket reads and hashing release the GIL, so the source's reads (an Engine
    API stream) overlap the consumer's work (parsing, hashing, sending). The
    items must stay valid once yielded (bytes, not pooled buffers). An error of
    the source is raised in the consumer. When the consumer stops early, the
    thread stops at its next item and closes the source there (its cleanup runs
    on the thread that ran it); the consumer waits at most ``patience`` seconds
    for that.
    """
    ahead = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item):
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def run():
        source = iter(items)
        end = _END
        try:
            for item in source:
                if not offer(item):
                    return
        except Exception as e:  # noqa: BLE001 - raised in the consumer
            end = _Failed(e)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        offer(end)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        while True:
            item = ahead.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join(patience)
