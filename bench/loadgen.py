"""The load generator: a lean asyncio HTTP/1.1 client with kept-alive connections.

Why not httpx: on this 2-core machine httpx's AsyncClient spent about 4.5 ms of CPU per
request, as much as Conductor spends starting a workflow. A client that heavy takes CPU
from the servers it measures and, being the same on both sides of a ratio, dilutes the
difference between them. This client writes each request as bytes and reads the status
line, the headers and a Content-Length or chunked body with asyncio streams: a few hundred
microseconds per request (`client_cpu_ms_per_request` in the results shows it).

Two shapes, both on at most `concurrency` connections:

- closed loop (`max_rate`): `concurrency` senders send back to back for `seconds` after a
  warm-up; throughput = successful answers in the window / window length.
- open loop (`fixed_rate`): requests are due at a constant `rate`; a request's latency
  counts from the moment it was *due*, not from when a connection became free, so a server
  that falls behind is charged for the queue it causes (no coordinated omission).

A `Target` builds each request body and says which status counts as success; it can keep
something from each successful answer (a workflow id, to clean up after the phase).
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

NAME = "bench.loadgen: asyncio streams, HTTP/1.1 keep-alive, closed and open loop"


@dataclass
class Target:
    """What to send and what counts as success."""

    name: str
    url: str
    make_body: Callable[[], bytes]
    headers: dict[str, str]
    ok_status: frozenset[int]
    keep: Callable[[bytes], str | None] = lambda _body: None


@dataclass
class Result:
    """Latencies (seconds) of successful answers, counts, and what was kept."""

    name: str
    seconds: float
    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    client_cpu_seconds: float = 0.0
    sent: int = 0

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def client_cpu_ms_per_request(self) -> float:
        return self.client_cpu_seconds / self.sent * 1000 if self.sent else float("nan")

    def count(self, status: str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class HttpError(Exception):
    """The connection failed or the answer could not be read."""


class Connection:
    """One kept-alive HTTP/1.1 connection to the target's host."""

    def __init__(self, target: Target):
        parts = urlsplit(target.url)
        self.host, self.port = parts.hostname, parts.port or 80
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Accept: */*"]
        head += [f"{k}: {v}" for k, v in target.headers.items()]
        self._head = "\r\n".join(head).encode() + b"\r\nContent-Length: "
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """Send one POST and read its answer; (status, body)."""
        if self.reader is None or self.reader.at_eof():
            self.close()
            await self._open()
        try:
            self.writer.write(self._head + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if headers.get("transfer-encoding", "").lower() == "chunked":
                payload = await self._chunked()
            else:
                payload = await self.reader.readexactly(int(headers.get("content-length", "0")))
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status, payload
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            self.close()
            raise HttpError(str(e)) from e

    async def _chunked(self) -> bytes:
        chunks = []
        while True:
            size = int((await self.reader.readline()).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(chunks)
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


def _record(result: Result, target: Target, answer, latency: float, measured: bool) -> None:
    ok = answer is not None and answer[0] in target.ok_status
    if ok:
        kept = target.keep(answer[1])
        if kept:
            result.kept.append(kept)
    if not measured:
        return
    result.count(str(answer[0]) if answer is not None else "error")
    if ok:
        result.ok += 1
        result.latencies.append(latency)
    else:
        result.failed += 1


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _max_rate(target: Target, concurrency: int, seconds: float, warmup: float) -> Result:
    result = Result(target.name, seconds)
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + seconds
    cpu = [0.0]

    async def sender() -> None:
        conn = Connection(target)
        try:
            while True:
                sent = time.perf_counter()
                if sent >= window_end:
                    return
                try:
                    answer = await conn.post(target.make_body())
                except HttpError:
                    answer = None
                done = time.perf_counter()
                measured = sent >= window_start and done <= window_end
                if measured:
                    result.sent += 1
                _record(result, target, answer, done - sent, measured)
        finally:
            conn.close()

    async def cpu_window() -> None:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        cpu[0] = _cpu()
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        cpu[0] = _cpu() - cpu[0]

    await asyncio.gather(cpu_window(), *(sender() for _ in range(concurrency)))
    result.client_cpu_seconds = cpu[0]
    return result


async def _fixed_rate(
    target: Target, rate: float, seconds: float, concurrency: int, warmup: float
) -> Result:
    result = Result(target.name, seconds)
    total, warm = int((warmup + seconds) * rate), int(warmup * rate)
    idle: list[Connection] = []
    slots = asyncio.Semaphore(concurrency)
    start = time.perf_counter()
    cpu0 = 0.0

    async def one(i: int, due: float) -> None:
        async with slots:
            conn = idle.pop() if idle else Connection(target)
            try:
                answer = await conn.post(target.make_body())
            except HttpError:
                answer = None
            idle.append(conn)
        _record(result, target, answer, time.perf_counter() - due, i >= warm)
        if i >= warm:
            result.sent += 1

    tasks = []
    for i in range(total):
        if i == warm:
            cpu0 = _cpu()
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    result.client_cpu_seconds = _cpu() - cpu0
    for conn in idle:
        conn.close()
    return result


def max_rate(target: Target, concurrency: int, seconds: float, warmup: float = 2.0) -> Result:
    """Closed loop: the highest rate `concurrency` back-to-back senders reach."""
    return asyncio.run(_max_rate(target, concurrency, seconds, warmup))


def fixed_rate(
    target: Target, rate: float, seconds: float, concurrency: int, warmup: float = 1.0
) -> Result:
    """Open loop at `rate` requests per second, on at most `concurrency` connections."""
    return asyncio.run(_fixed_rate(target, rate, seconds, concurrency, warmup))
