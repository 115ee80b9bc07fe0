"""The SDK's connection to a control plane: where it is, the token it sends, and the two
ways of calling it (a plain request, and a creating POST made once however often it is
sent)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any, Self

import httpx

from aios.errors import AiosError

__all__ = ["DEFAULT_URL", "ApiError", "Transport", "default_token", "error_message"]

DEFAULT_URL = "http://127.0.0.1:8470"

IDEMPOTENCY_KEY = "Idempotency-Key"
RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Seconds before each retry of a submission whose answer was lost."""


class ApiError(AiosError):
    """The server refused a request; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_message(response: httpx.Response) -> str:
    """The server's message in an error ``response``: its detail, or for a validation
    error the first field at fault and what is wrong with it."""
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):  # a validation error: name the first field at fault
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = str(first.get("msg")).removeprefix("Value error, ")
        return f"{where}: {message}" if where else message
    return str(detail)


def default_token(url: str = DEFAULT_URL) -> str | None:
    """``AIOS_TOKEN``, else the local admin token, which is only ever sent to a control
    plane on this machine (a loopback URL)."""
    token = os.environ.get("AIOS_TOKEN")
    if token:
        return token
    host = httpx.URL(url).host
    if host not in {"127.0.0.1", "localhost", "::1"}:
        return None
    home = Path(os.environ.get("AIOS_HOME") or Path.home() / ".aios")
    try:
        return (home / "admin.token").read_text().strip() or None
    except OSError:
        return None


class Transport:
    """The connection to a control plane's API and the two ways of calling it; the base
    of :class:`~aios.client.Client`."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("AIOS_URL") or DEFAULT_URL).rstrip("/")
        token = token if token is not None else default_token(self.url)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url + "/api/v1", headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call; a GET whose kept-alive connection the server closed as it was sent
        (``Server disconnected without sending a response``: the server's idle timeout
        and the request crossed) is sent once more on a new connection, as urllib3 does
        for idempotent methods. Nothing else is sent twice here (see :meth:`_create`)."""
        try:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.RemoteProtocolError:
                if method != "GET":
                    raise
                response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach the control plane at {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, error_message(response))
        return response

    def _create(self, path: str, **kwargs: Any) -> httpx.Response:
        """A POST that creates something, made once however often it is sent: with an
        ``Idempotency-Key`` of its own, sent again with the same key when its answer
        was lost (a dropped connection, a control plane restarting) or the control
        plane was busy, after each of :data:`RETRY_DELAYS`."""
        headers = {IDEMPOTENCY_KEY: uuid.uuid4().hex}
        for delay in (*RETRY_DELAYS, None):
            try:
                response = self._http.request("POST", path, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                if delay is None:
                    raise ApiError(
                        0, f"cannot reach the control plane at {self.url}: {exc}"
                    ) from None
                time.sleep(delay)
                continue
            if response.status_code == 503 and delay is not None:
                time.sleep(delay)
                continue
            if response.status_code >= 400:
                raise ApiError(response.status_code, error_message(response))
            return response
        raise AssertionError("unreachable")
