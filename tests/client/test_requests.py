"""How the SDK sends a call: a GET that meets a connection the server closed as the
request went out is sent once more; other methods are not (they have their own
idempotency keys, see tests/control/test_idempotency.py)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from aios.client import Client
from aios.client.client import ApiError

JOBS: list[object] = []
"""What the server answers after the first request: no jobs."""


@contextmanager
def dropping_first_request() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that reads the first request and closes the connection
    without an answer (as a server whose keep-alive timeout fired does), and answers
    every later request ``[]``; yields its URL and the request lines it read."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                request = connection.recv(65536).decode("latin-1")
                if not request:
                    continue
                seen.append(request.split("\r\n", 1)[0])
                if len(seen) == 1:
                    continue  # closed, no answer
                body = json.dumps(JOBS).encode()
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        listener.close()
        thread.join(5)


def test_a_get_dropped_before_its_answer_is_sent_once_more() -> None:
    with dropping_first_request() as (url, seen), Client(url, token="t") as client:
        assert client.jobs() == []
    assert [line.split()[0] for line in seen] == ["GET", "GET"]


def test_a_cancel_dropped_before_its_answer_is_not_sent_again() -> None:
    with (
        dropping_first_request() as (url, seen),
        Client(url, token="t") as client,
        pytest.raises(ApiError, match="cannot reach the control plane"),
    ):
        client.cancel(1)
    assert [line.split()[0] for line in seen] == ["POST"]
