"""The benchmark's own parts that can be wrong without any server: its HTTP client, its
percentiles and its report (the benchmarks themselves run with `make bench`, never here)."""

from __future__ import annotations

import asyncio
import json
import math

from bench import loadgen, report


def test_percentile_interpolates_between_closest_ranks():
    values = [float(v) for v in range(1, 101)]
    assert loadgen.percentile(values, 50) == 50.5
    assert loadgen.percentile(values, 99) == 99.01
    assert loadgen.percentile([3.0], 99) == 3.0
    assert math.isnan(loadgen.percentile([], 95))


async def _serve(answers: list[bytes]):
    """A server that answers each request with the next canned answer; records requests."""
    seen: list[bytes] = []
    connections = [0]

    async def handle(reader, writer):
        connections[0] += 1
        while answers:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
            )
            seen.append(head + await reader.readexactly(length))
            answer = answers.pop(0)
            writer.write(answer)
            await writer.drain()
            if b"Connection: close" in answer:
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen, connections


def test_client_reads_length_and_chunked_bodies_and_reconnects_after_close():
    answers = [
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye",
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
    ]

    async def scenario():
        server, seen, connections = await _serve(answers)
        port = server.sockets[0].getsockname()[1]
        target = loadgen.Target(
            "t", f"http://127.0.0.1:{port}/x?y=1", lambda: b"{}", {"X-A": "b"}, frozenset({202})
        )
        conn = loadgen.Connection(target)
        got = [await conn.post(b'{"n": %d}' % i) for i in range(4)]
        conn.close()
        server.close()
        await server.wait_closed()
        return got, seen, connections[0]

    got, seen, connections = asyncio.run(scenario())
    assert got == [(202, b"ok"), (200, b"abcde"), (200, b"bye"), (503, b"")]
    assert connections == 2  # a new connection after "Connection: close"
    assert seen[0].startswith(b"POST /x?y=1 HTTP/1.1\r\n")
    assert b"X-A: b\r\n" in seen[0] and seen[0].endswith(b'\r\n\r\n{"n": 0}')


def test_closed_loop_counts_only_successes_and_keeps_what_it_is_told():
    async def handle(reader, writer):
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\nwf-1")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def scenario():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        target = loadgen.Target(
            "t",
            f"http://127.0.0.1:{port}/",
            lambda: b"{}",
            {},
            frozenset({202}),
            keep=lambda body: body.decode(),
        )
        result = await loadgen._max_rate(target, concurrency=2, seconds=0.3, warmup=0.0)
        server.close()
        await server.wait_closed()
        return result

    result = asyncio.run(scenario())
    assert result.ok > 0 and result.failed == 0
    assert result.statuses == {"202": result.ok}
    assert len(result.latencies) == result.ok
    assert set(result.kept) == {"wf-1"} and len(result.kept) >= result.ok


def test_report_flattens_to_scalars_and_marks_goals(tmp_path):
    results = {
        "mode": "quick",
        "cores": 2,
        "gateway_accept_ratio": 0.5,
        "sweep_vs_bare_ratio": 1.1,
        "sweep_seconds": 2.0,
        "bare_seconds": 1.8,
        "sweep_runs": 10,
        "sweep_changed": 2,
        "nested": {"a": 1},
        "listed": [1.0, 2.5],
        "missing": float("nan"),
    }
    path = report.write(results, tmp_path / "latest.json")
    flat = json.loads(path.read_text())
    assert flat["nested_a"] == 1 and flat["listed"] == "1.00, 2.50" and flat["missing"] is None
    assert all(not isinstance(v, dict | list) for v in flat.values())
    text = report.table(results)
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert " NO " in rows["gateway_accept_ratio"]
    assert " yes " in rows["sweep_vs_bare_ratio"]
    assert "not measured" in rows["poller_scaling_2_vs_1"]
