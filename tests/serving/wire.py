"""A hand-written HTTP/1.1 client for the protocol tests: requests built byte by byte,
answers read back exactly as the server wrote them, and a log handler that turns an
error the server logs into a failed test at once instead of a socket timeout."""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from dataclasses import dataclass
from typing import Any

TIMEOUT = 10.0
"""Seconds a socket waits for the server before the test fails."""

POLL = 0.05
"""Seconds between looks at :data:`SERVER_ERRORS` while waiting on the server."""


class ServerErrors(logging.Handler):
    """Errors the server logs (an exception in a callback of its event loop, or in
    answering a request after its batch): a test waiting for an answer fails with the
    first one at once, not after a timeout."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()[:200]
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{record.exc_info[1]!r} in {message}"
        self.messages.append(message)

    def check(self) -> None:
        assert not self.messages, f"the server logged an error: {self.messages[0]}"


SERVER_ERRORS = ServerErrors()


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Wire:
    """One client connection: writes the bytes it is given and reads answers back as
    the server wrote them (status line, headers, a ``content-length`` body: the server
    never answers chunked here)."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.socket = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        self.buffer = b""

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *_: object) -> None:
        self.socket.close()

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def response(self) -> Response:
        """The next answer; fails when the server closes the connection instead."""
        status_line = self._line()
        found = re.fullmatch(rb"HTTP/1\.[01] (\d{3}) ?.*", status_line)
        assert found, f"not a status line: {status_line!r}"
        status = int(found[1])
        headers: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.partition(b":")
            headers[name.decode().strip().lower()] = value.decode().strip()
        if status < 200:
            return Response(status, headers, b"")
        assert "content-length" in headers, f"an answer without a length: {headers}"
        return Response(status, headers, self._exactly(int(headers["content-length"])))

    def responses(self, count: int) -> list[Response]:
        return [self.response() for _ in range(count)]

    def closed_by_server(self) -> bool:
        """True once the server closes the connection (after every answer was read);
        fails when more bytes arrive, False when nothing happens within :data:`TIMEOUT`."""
        assert self.buffer == b"", f"unread bytes: {self.buffer!r}"
        try:
            data = self.received()
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        assert data == b"", f"bytes after the last answer: {data!r}"
        return True

    def received(self) -> bytes:
        """The next bytes from the server (b"" once it closed), waiting up to
        :data:`TIMEOUT`; fails at once if the server logs an error meanwhile."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            SERVER_ERRORS.check()
            self.socket.settimeout(max(0.0, min(POLL, deadline - time.monotonic())))
            try:
                return self.socket.recv(65536)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise

    def _fill(self) -> None:
        data = self.received()
        if not data:
            raise AssertionError(f"the server closed the connection; unread: {self.buffer!r}")
        self.buffer += data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def request(
    method: str,
    path: str,
    body: bytes | None = None,
    headers: tuple[str, ...] = (),
    version: str = "1.1",
) -> bytes:
    """A request as it goes on the wire; a body gets its ``Content-Length`` unless a
    ``Transfer-Encoding`` header is given."""
    lines = [f"{method} {path} HTTP/{version}", "Host: aios.test", *headers]
    chunked = any(h.lower().startswith("transfer-encoding:") for h in headers)
    if body is not None and not chunked:
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join([*lines, "", ""]).encode() + (body or b"")


def get(path: str) -> bytes:
    return request("GET", path)


def chunked(body: bytes, size: int) -> bytes:
    """``body`` in the chunked transfer coding, ``size`` bytes a chunk."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
