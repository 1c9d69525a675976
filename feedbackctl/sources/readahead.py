"""Reading a fixture run's batches on two cores: a helper process reads ahead (docs/performance.md).

Parsing a fleet's metric files is most of a cold ``analyze`` and holds the GIL
(numpy's ``loadtxt``), so a thread cannot overlap it with deciding; a second
process can. The helper is this package in a fresh interpreter: it reads the
groups this process hands it, in order, and sends each group's batch back.
This process reads a group itself whenever the helper has not finished the one
it needs next, so the two share the reading whatever their speeds.

- **Bounded:** at most ``AHEAD`` groups are handed out beyond the one being
  decided, one batch waits here once received, and this process reads at most
  one group ahead, so a run holds a few batches' series at most, whatever the
  fleet's size.
- **Same answer:** a group's batch is the same whoever reads it (one pure
  read of the group's files); tests compare both ways byte for byte.
- **Never needed:** if the helper cannot start, dies, or sends what does not
  unpickle, this process reads the groups it had handed out itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import pickle
import queue
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, Generic, TypeVar

from feedbackctl.errors import UsageError
from feedbackctl.proc import Piped, start_piped

# Groups handed to the helper and not yet consumed: enough that it never waits for
# this process between two groups, few enough that their series stay a few batches.
AHEAD = 3
# Batches the receiving thread takes off the pipe before they are asked for: one
# (at 50k claims, 3 held added 6 MB to the peak and took no time off).
HELD = 1
# A group's batch is a few MB; a message claiming more is not one.
MAX_MESSAGE_BYTES = 1 << 30
# A group takes the helper a fraction of a second; one it has not sent in this long is read here.
PATIENCE_SECONDS = 300.0
# The helper's pipe: 1 MB is what Linux lets any user ask for (fs.pipe-max-size).
PIPE_BYTES = 1 << 20
# "0": never start a helper (one core, or to compare); "1": start one even on one core.
READ_AHEAD_ENV = "FEEDBACKCTL_READ_AHEAD"

W = TypeVar("W")  # what a group is (fixtures: its claims' wanted metrics)
T = TypeVar("T")  # what reading it gives (fixtures: its batch)

_BOOT = (
    "import pickle, sys\n"
    "setup = pickle.load(sys.stdin.buffer)\n"
    "sys.path[:] = setup['path']\n"
    "from feedbackctl.sources.readahead import serve\n"
    "serve(setup, sys.stdin.buffer, sys.stdout.buffer)\n"
)


def wanted(groups: int) -> bool:
    """Whether a run of ``groups`` groups is read with a helper."""
    setting = os.environ.get(READ_AHEAD_ENV, "").strip()
    if setting not in ("", "0", "1"):
        raise UsageError(f"{READ_AHEAD_ENV}={setting!r} is neither 0 (off) nor 1 (on); unset it or fix it")
    if setting == "0" or groups < 2 or getattr(sys, "frozen", False) or not sys.executable:
        return False  # a frozen program's executable is not a Python that takes -c
    return setting == "1" or _cores() >= 2


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def read_groups(
    groups: Sequence[W], read: Callable[[W], T], helper_setup: dict[str, Any] | None
) -> Iterator[T]:
    """``read(group)`` for each group, in order, read here or by the helper.

    ``helper_setup`` names, for the helper, the module and function that build the
    same ``read`` there (``make``: "module:function") and its ``args``; None reads
    everything here. The helper is sent each group it is to read, as it is handed out.
    """
    helper = _Helper.start(helper_setup) if helper_setup is not None else None
    try:
        yield from _Schedule(groups, read, helper).run()
    finally:
        if helper is not None:
            helper.stop()


class _Schedule(Generic[W, T]):
    """Which process reads which group, decided as the run goes."""

    def __init__(self, groups: Sequence[W], read: Callable[[W], T], helper: _Helper | None) -> None:
        self.groups, self.read_group, self.helper = groups, read, helper
        self.count = len(groups)
        self.given: list[bool] = [False] * self.count  # read here or handed to the helper
        self.cursor = 0  # no group below it is free
        self.handed: deque[int] = deque()  # the helper's groups, in the order it reads them
        self.own: dict[int, T] = {}  # groups this process read ahead

    def read(self, k: int) -> T:
        return self.read_group(self.groups[k])

    def run(self) -> Iterator[T]:
        for k in range(self.count):
            if k in self.own:
                self._top_up()
                yield self.own.pop(k)
            elif not self.given[k]:
                self.given[k] = True
                self._top_up()
                yield self.read(k)
            else:
                yield self._from_helper(k)

    def _free(self) -> int | None:
        """The lowest group nobody has been given yet."""
        while self.cursor < self.count and self.given[self.cursor]:
            self.cursor += 1
        return self.cursor if self.cursor < self.count else None

    def _top_up(self) -> None:
        helper = self.helper
        while helper is not None and helper.alive and len(self.handed) < AHEAD:
            j = self._free()
            if j is None or not helper.hand(j, self.groups[j]):
                return
            self.given[j] = True
            self.handed.append(j)

    def _from_helper(self, k: int) -> T:
        helper = self.helper
        assert helper is not None and self.handed and self.handed[0] == k
        got = helper.take(block=False)
        if got is None and not self.own:
            # The helper is behind: read the next free group meanwhile rather than wait.
            j = self._free()
            if j is not None:
                self.given[j] = True
                self.own[j] = self.read(j)
        if got is None:
            got = helper.take(block=True)
        if got is _DEAD or got[0] != k:  # gone, or not what a sound helper sends: trust none of it
            return self._without_helper(k)
        self.handed.popleft()
        self._top_up()
        return got[1]  # type: ignore[no-any-return]

    def _without_helper(self, k: int) -> T:
        """The helper is gone: the groups it had not sent are read here, in order."""
        if self.helper is not None:
            self.helper.kill()
        self.helper = None
        for j in self.handed:
            self.given[j] = False
            self.cursor = min(self.cursor, j)
        self.handed.clear()
        self.given[k] = True
        return self.read(k)


_DEAD = object()
_HEAD = struct.Struct("<Q")  # each message from the helper: its length, then its pickle


def _widen(pipe: IO[bytes] | None) -> None:
    """A bigger pipe: fewer waits on the other side, and the GIL taken once per MB, not per 64 KB."""
    size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if pipe is None or size is None:
        return
    with contextlib.suppress(OSError):  # refused: the default pipe works, more slowly
        fcntl.fcntl(pipe.fileno(), size, PIPE_BYTES)


def _read_exactly(fd: int, size: int) -> mmap.mmap | None:
    """``size`` bytes from ``fd``, or None at end of file before them.

    Into an anonymous mapping, not the heap: what the receiving thread allocates
    with malloc stays in its own arena once freed, which the rest of the run never
    reuses (+15 MB at the peak of a 50k-claim run); a mapping is gone when closed.
    """
    buf = mmap.mmap(-1, max(size, 1))
    got = 0
    with memoryview(buf) as view:
        while got < size:
            n = os.readv(fd, [view[got:size]])
            if n == 0:
                break
            got += n
    if got < size:
        buf.close()
        return None
    return buf


class _Helper:
    """The helper process, and a thread that takes its batches off the pipe as they come."""

    def __init__(self, proc: Piped) -> None:
        self.proc = proc
        self.results: queue.Queue[Any] = queue.Queue()
        # Room for the batches taken off the pipe and not yet asked for: the next one
        # waits in the helper (and the pipe).
        self.room = threading.Semaphore(HELD)
        self.alive = True
        self.thread = threading.Thread(target=self._receive, name="feedbackctl-read-ahead", daemon=True)
        self.thread.start()

    @classmethod
    def start(cls, setup: dict[str, Any]) -> _Helper | None:
        try:
            # -I: not even `import pickle` may come from the working directory (a
            # checkout someone else wrote); the path is then this process's own.
            proc = start_piped([sys.executable, "-I", "-c", _BOOT])
        except OSError:
            return None
        _widen(proc.stdin)  # handing out a group then never waits for the helper to take it
        _widen(proc.stdout)
        helper = cls(proc)
        if not helper._send({**setup, "path": list(sys.path)}):
            helper.stop()
            return None
        return helper

    def hand(self, index: int, group: object) -> bool:
        return self.alive and self._send((index, group))

    def take(self, *, block: bool) -> Any:
        """The next (index, batch) the helper sent, _DEAD if it is gone, None if not yet (non-blocking)."""
        try:
            body = self.results.get(block=block, timeout=PATIENCE_SECONDS if block else None)
        except queue.Empty:
            if block:  # stuck: what it holds is read here instead
                self.kill()
                return _DEAD
            return None
        if body is _DEAD:
            return _DEAD
        self.room.release()
        try:
            with body, memoryview(body) as view:
                got = pickle.loads(view)
        except Exception:  # noqa: BLE001 - a torn or foreign message: the helper is not sound
            return _DEAD
        if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], int)):
            return _DEAD
        return got

    def kill(self) -> None:
        self.alive = False
        self.proc.kill()

    def stop(self) -> None:
        self.alive = False
        self.proc.stop()
        self.thread.join(timeout=5)

    def _send(self, message: object) -> bool:
        try:
            pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
            return True
        except (OSError, ValueError, pickle.PicklingError):
            self.kill()
            return False

    def _receive(self) -> None:
        """Whole messages off the pipe as raw bytes: the GIL is held only between reads."""
        fd = self.proc.stdout.fileno()
        try:
            while True:
                while not self.room.acquire(timeout=0.1):
                    if not self.alive:
                        return
                head = _read_exactly(fd, _HEAD.size)
                if head is None:
                    break
                with head:
                    (size,) = _HEAD.unpack(head[: _HEAD.size])
                if size > MAX_MESSAGE_BYTES:  # not a batch this package sends
                    break
                body = _read_exactly(fd, size)
                if body is None:
                    break
                self.results.put(body)
        except Exception:  # noqa: BLE001 - whatever broke, the run goes on without the helper
            pass
        finally:
            self.alive = False
            self.results.put(_DEAD)


def serve(setup: dict[str, Any], commands: IO[bytes], out: IO[bytes]) -> None:
    """The helper's loop: read each (index, group) that arrives, send back (index, what it read)."""
    module, _, name = str(setup["make"]).partition(":")
    make = getattr(__import__(module, fromlist=[name]), name)
    read: Callable[[Any], Any] = make(*setup["args"])
    while True:
        try:
            index, group = pickle.load(commands)
        except EOFError:
            return
        body = pickle.dumps((index, read(group)), protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_HEAD.pack(len(body)))
        out.write(body)
        out.flush()
