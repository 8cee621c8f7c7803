"""Worker processes (``--workers N``): N copies of a component answering on one port, and the
supervisor, the process the operator runs, that starts them, restarts the ones that die and keeps the
HTTP side (one /metrics summing them all, ``net.exposition``).

Workers are forked, not spawned: each starts with the supervisor's memory, so serve's workers share the
store synced once, copy-on-write. The supervisor binds every worker's sockets (SO_REUSEPORT, one set
per worker, the kernel spreading clients over them) and keeps them open: a worker that dies is
restarted on the same sockets, and what clients sent meanwhile waits in them for its successor.

Each worker talks to the supervisor over a socketpair: length-prefixed pickles, both ends being this
program. Supervisor to worker: ``("scrape", n)``, ``("stop",)`` and what the component streams;
worker to supervisor: ``("ready",)``, ``("metrics", n, text)`` and the component's own. A worker whose
unread messages pass ``BACKLOG_LIMIT`` is stuck: it is killed, and restarted from the current state.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import pickle
import signal
import socket
import struct
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import uvloop
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kubedns_py.lifecycle import cancelled
from kubedns_py.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

FRAME = struct.Struct("!I")
BACKLOG_LIMIT = 256 * 1024 * 1024  # bytes queued for one worker (a relist of a large cluster fits)
SCRAPE_TIMEOUT = 2.0
START_TIMEOUT = 30.0  # for every worker to answer, before the supervisor says it is still waiting
STOP_TIMEOUT = 15.0  # a stopping worker finishes what it read (the cache: forwarded misses, 5 s at most)
EXIT_AFTER_EOF = 5.0  # a worker that closed its channel and still runs is killed after this long
FAST_DEATH = 10.0  # a worker dying sooner than this after its start is restarted after a growing delay
RESTART_DELAYS = (0.1, 1.0, 2.0, 5.0, 10.0, 30.0)

Message = tuple[Any, ...]


class Channel:
    """One end of a supervisor-worker socketpair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    def send(self, message: Message) -> None:
        self.send_frame(frame(message))

    def send_frame(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    @property
    def backlog(self) -> int:
        return self._writer.transport.get_write_buffer_size()

    async def receive(self) -> Message | None:
        """The next message; None once the other end is gone."""
        try:
            (length,) = FRAME.unpack(await self._reader.readexactly(FRAME.size))
            message: Message = pickle.loads(await self._reader.readexactly(length))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return message

    def close(self) -> None:
        self._writer.close()


def frame(message: Message) -> bytes:
    """A message as sent: pickled once, whatever number of workers it goes to."""
    data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    return FRAME.pack(len(data)) + data


class WorkerComponent(Protocol):
    registry: CollectorRegistry

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


Handler = Callable[[Message], None]


@dataclass
class Worker:
    """What a worker's component knows of its place: its number and its channel to the supervisor."""

    index: int
    channel: Channel
    handlers: dict[str, Handler] = field(default_factory=dict)

    def on(self, kind: str, handler: Handler) -> None:
        """Have ``handler`` take the supervisor's messages of this kind."""
        self.handlers[kind] = handler

    def send(self, message: Message) -> None:
        self.channel.send(message)


MakeComponent = Callable[[Worker], WorkerComponent]


@dataclass(eq=False)
class _Child:
    index: int
    generation: int
    pid: int
    previous: _Child | None  # the one it replaces, stopped once this one is ready
    channel: Channel | None = None
    early: list[bytes] = field(default_factory=list)  # sent before the channel was open
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    retiring: bool = False
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    def send_frame(self, data: bytes) -> None:
        if self.channel is None:
            self.early.append(data)
        else:
            self.channel.send_frame(data)

    @property
    def backlog(self) -> int:
        return self.channel.backlog if self.channel is not None else sum(map(len, self.early))


class Supervisor(Collector):
    """``count`` workers, each running ``make``'s component on the sockets ``fds(index)`` names."""

    def __init__(
        self,
        component: str,
        count: int,
        make: MakeComponent,
        fds: Callable[[int], Iterable[int]],
        on_message: Callable[[int, Message], None] | None = None,
    ) -> None:
        self.component = component
        self.count = count
        self._make = make
        self._fds = fds
        self._on_message = on_message
        self._children: set[_Child] = set()
        self._current: dict[int, _Child] = {}
        self._generation = 0
        self._stopping = False
        self.restarts = 0
        self._failures: dict[int, int] = {}  # index → deaths in a row, each soon after its start
        self._scrapes: dict[int, asyncio.Future[str]] = {}
        self._scrape_ids = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._log = RateLimitedLog(log)
        self.all_ready = asyncio.Event()  # set once every worker of a generation is answering

    # -- starting ------------------------------------------------------------------------------

    def start(self) -> None:
        """Fork every worker (a new generation: those running are stopped as each successor is ready)."""
        self.all_ready.clear()
        self._generation += 1
        for index in range(self.count):
            self._fork(index)

    def _fork(self, index: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        keep = {theirs.fileno(), *self._fds(index)}
        gc.collect()
        gc.freeze()  # what exists now is shared with the child; the collector never makes it private
        pid = os.fork()
        if pid == 0:
            _run_child(index, theirs, keep, self._make)  # never returns
        theirs.close()
        # Known at once: whatever is broadcast from now on is the child's to apply.
        child = _Child(index, self._generation, pid, self._current.get(index))
        self._current[index] = child
        self._children.add(child)
        self._spawn(self._adopt(child, ours), f"{self.component}-worker-{index}")

    async def _adopt(self, child: _Child, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(child.pid)
        loop.add_reader(pidfd, child.exited.set)
        try:
            sock.setblocking(False)
            child.channel = await Channel.open(sock)
            for data in child.early:
                child.channel.send_frame(data)
            child.early.clear()
            await self._listen(child)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EXIT_AFTER_EOF):
                    await child.exited.wait()
            if not child.exited.is_set():
                _kill(child.pid)
                await child.exited.wait()
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            if child.channel is not None:
                child.channel.close()
            self._children.discard(child)
        status = os.waitpid(child.pid, os.WNOHANG)[1]  # noqa: ASYNC222  # exited: its pidfd said so
        self._exited(child, status)

    async def _listen(self, child: _Child) -> None:
        assert child.channel is not None
        while (message := await child.channel.receive()) is not None:
            kind = message[0]
            if kind == "ready":
                child.ready = True
                self._failures.pop(child.index, None)
                if self.ready:
                    self.all_ready.set()
                previous, child.previous = child.previous, None
                if previous is not None and not previous.retiring:
                    previous.retiring = True
                    previous.send_frame(frame(("stop",)))
            elif kind == "metrics":
                future = self._scrapes.get(message[1])
                if future is not None and not future.done():
                    future.set_result(message[2])
            elif self._on_message is not None:
                self._on_message(child.index, message)

    def _exited(self, child: _Child, status: int) -> None:
        if self._stopping or child.retiring or self._current.get(child.index) is not child:
            return
        self.restarts += 1
        soon = time.monotonic() - child.started < FAST_DEATH
        failures = self._failures[child.index] = self._failures.get(child.index, 0) + 1 if soon else 1
        delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS)) - 1]
        self._log.log(
            logging.ERROR,
            f"{self.component}-worker-exit",
            "%s worker %d (pid %d) %s; restarting it in %gs",
            self.component,
            child.index,
            child.pid,
            _describe(status),
            delay,
        )
        self._spawn(self._restart(child.index, delay), f"{self.component}-restart-{child.index}")

    async def _restart(self, index: int, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self._stopping:
            self._fork(index)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    # -- running -------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Every worker of the newest generation is answering."""
        current = [c for c in self._current.values() if c.generation == self._generation]
        return len(current) == self.count and all(c.ready for c in current)

    async def started(self) -> None:
        """Return once every worker answers, or after ``START_TIMEOUT`` saying which do not yet."""
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await self.all_ready.wait()
        except TimeoutError:
            waiting = sorted(i for i, c in self._current.items() if not c.ready)
            log.error(
                "%s workers %s not answering after %gs; still trying", self.component, waiting, START_TIMEOUT
            )

    def broadcast(self, message: Message) -> None:
        """Send to every worker of the newest generation (those before it are on their way out)."""
        data = frame(message)
        for child in list(self._current.values()):
            if child.generation != self._generation:
                continue
            child.send_frame(data)
            if child.backlog > BACKLOG_LIMIT:
                self._log.log(
                    logging.ERROR,
                    f"{self.component}-worker-stuck",
                    "%s worker %d (pid %d) reads nothing of %d bytes sent to it; killing it",
                    self.component,
                    child.index,
                    child.pid,
                    child.backlog,
                )
                _kill(child.pid)

    def send(self, index: int, message: Message) -> None:
        child = self._current.get(index)
        if child is not None:
            child.send_frame(frame(message))

    async def scrape(self) -> list[str]:
        """Every answering worker's metrics as text; one that does not answer in time is left out."""
        ids = []
        for child in self._current.values():
            if child.ready and not child.retiring:
                ident = next(self._scrape_ids)
                self._scrapes[ident] = asyncio.get_running_loop().create_future()
                child.send_frame(frame(("scrape", ident)))
                ids.append(ident)
        try:
            done, _ = await asyncio.wait([self._scrapes[i] for i in ids], timeout=SCRAPE_TIMEOUT)
        finally:
            futures = [self._scrapes.pop(i) for i in ids]
        if len(done) < len(futures):
            missing = len(ids) - len(done)
            self._log.warning("scrape", "%d %s worker(s) gave no metrics in time", missing, self.component)
        return [future.result() for future in futures if future in done]

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "kubedns_workers",
            "Worker processes answering (--workers).",
            value=sum(1 for c in self._children if c.ready and not c.retiring),
        )
        yield CounterMetricFamily(
            "kubedns_worker_restarts",
            "Worker processes that died and were started again.",
            value=self.restarts,
        )

    async def stop(self) -> None:
        """Every worker told to stop; each finishes what it read. Those still running after
        ``STOP_TIMEOUT`` are killed."""
        self._stopping = True
        for child in self._children:
            child.send_frame(frame(("stop",)))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT):
                while self._children:
                    await next(iter(self._children)).exited.wait()
                    await asyncio.sleep(0)  # let its _adopt reap it
        for child in list(self._children):
            log.error(
                "%s worker %d (pid %d) did not stop in time; killing it",
                self.component,
                child.index,
                child.pid,
            )
            _kill(child.pid)
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed: %r", task.get_name(), task.exception())


# -- in the worker -----------------------------------------------------------------------------------


def _run_child(index: int, sock: socket.socket, keep: set[int], make: MakeComponent) -> None:
    """The forked child: let go of what belongs to the supervisor, run the component, exit."""
    status = 1
    try:
        _release_inherited(keep)
        signal.set_wakeup_fd(-1)  # the supervisor's loop's: a signal here must not wake it
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the supervisor decides
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_worker_main(index, sock, make))
        status = 0
    except BaseException:
        log.exception("worker %d failed", index)
    finally:
        logging.shutdown()
        os._exit(status)


def _release_inherited(keep: set[int]) -> None:
    """Every inherited descriptor but ``keep`` and stdio pointed at /dev/null: the supervisor's
    connections, listeners and other workers' channels are then closed as soon as it closes them,
    and the numbers stay taken, so an inherited object closing one later cannot close one of ours."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
            if fd > 2 and fd != null and fd not in keep:
                with contextlib.suppress(OSError):
                    os.fstat(fd)
                    os.dup2(null, fd)
    finally:
        os.close(null)


async def _worker_main(index: int, sock: socket.socket, make: MakeComponent) -> None:
    sock.setblocking(False)
    worker = Worker(index, await Channel.open(sock))
    component = make(worker)
    await component.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    worker.send(("ready",))
    reading = asyncio.create_task(_obey(worker, component.registry, stop))
    await stop.wait()
    await cancelled(reading)
    await component.stop()


async def _obey(worker: Worker, registry: CollectorRegistry, stop: asyncio.Event) -> None:
    """The supervisor's messages, until it says stop or is gone."""
    while (message := await worker.channel.receive()) is not None:
        kind = message[0]
        if kind == "stop":
            break
        if kind == "scrape":
            worker.send(("metrics", message[1], generate_latest(registry).decode()))
        elif (handler := worker.handlers.get(kind)) is not None:
            handler(message)
    stop.set()
