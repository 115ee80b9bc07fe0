"""A small keep-alive HTTP/1.1 client for the gateway's requests to replicas.

The replicas are ours: they answer every request with a ``content-length`` and keep
the connection open. httpx's general machinery (its connection pool, anyio, header
models) cost the gateway several milliseconds of CPU per request under load, more
than the replica spent answering; this client writes the request and reads the
answer on a pooled asyncio connection and does nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

__all__ = ["Upstream", "UpstreamError"]

MAX_IDLE = 64
"""Idle connections kept per replica."""


class UpstreamError(Exception):
    """The replica could not be reached, or closed the connection without answering."""


@dataclass
class Upstream:
    timeout: float = 60.0
    _idle: dict[tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = field(
        default_factory=dict
    )

    async def request(
        self,
        host: str,
        port: int,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, str], bytes]:
        """Sends one request; returns status, lower-cased headers and body. Raises
        UpstreamError when no answer came, TimeoutError after :attr:`timeout`."""
        payload = body or b""
        head = [f"{method} {path} HTTP/1.1", f"host: {host}:{port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"content-length: {len(payload)}")
        message = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload
        pool = self._idle.setdefault((host, port), [])
        while pool:  # a kept connection may have been closed by the replica meanwhile
            reader, writer = pool.pop()
            try:
                return await self._exchange(reader, writer, message, pool)
            except (UpstreamError, OSError, asyncio.IncompleteReadError):
                writer.close()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.timeout
            )
        except OSError as exc:
            raise UpstreamError(str(exc)) from None
        try:
            return await self._exchange(reader, writer, message, pool)
        except (OSError, asyncio.IncompleteReadError) as exc:
            writer.close()
            raise UpstreamError(str(exc) or type(exc).__name__) from None

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        message: bytes,
        pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    ) -> tuple[int, dict[str, str], bytes]:
        writer.write(message)
        return await asyncio.wait_for(self._answer(reader, writer, pool), self.timeout)

    async def _answer(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    ) -> tuple[int, dict[str, str], bytes]:
        status_line = await reader.readline()
        if not status_line:
            raise UpstreamError("the replica closed the connection")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise UpstreamError(f"not an HTTP answer: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise UpstreamError("the replica's answer has no content-length")
        body = await reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close" or len(pool) >= MAX_IDLE:
            writer.close()
        else:
            pool.append((reader, writer))
        return int(parts[1]), headers, body

    async def close(self) -> None:
        for pool in self._idle.values():
            for _, writer in pool:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        self._idle.clear()
