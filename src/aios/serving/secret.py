"""The secret a deployment's replicas ask of every request, so that only the gateway
reaches them.

A replica listens on a TCP port of its node (every address of it on a Ray node), where
any process of the machine, another tenant's job included, can connect: without a
secret it would answer them all, around the gateway's bearer token and tenant rules.

- The controller derives one secret per deployment with :func:`deployment_secret`:
  HMAC-SHA256 under the control plane's ``serving-replicas`` key (kept in the database,
  so replicas adopted after a restart keep theirs) of the deployment's name, id and
  creation time: a deployment removed and made again under the same name, by anyone,
  gets another secret.
- It reaches the replica job in its environment, :data:`SECRET_ENV`, never on the
  command line (``/proc/PID/cmdline`` is readable by every user). The server takes it
  out of its environment (:func:`take_secret`) before any model loads, so neither model
  code nor what it starts finds it in ``os.environ``. (``/proc/PID/environ`` keeps the
  process's initial environment; only its own user and root can read it.) The job's
  env, and with it the secret, is visible to whoever may see the job: the deployment's
  tenant and the admins, who pass the gateway anyway.
- The gateway adds it to every request it forwards as :data:`SECRET_HEADER`; the server
  compares it in constant time and answers 401 when it is missing, 403 when it is
  wrong, before reading the body into memory and without running any model code.

Every path needs it but :data:`OPEN_PATHS`, the health endpoints the controller probes:
they tell only that a server is up, which connecting to the port tells anyway.

A server given no secret (``aios serve`` started by hand, for local use) asks none and
answers every request, as it says when it starts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable, MutableMapping

from aios.errors import InvalidInput

__all__ = [
    "KEY_NAME",
    "OPEN_PATHS",
    "SECRET_ENV",
    "SECRET_HEADER",
    "Refusal",
    "deployment_secret",
    "refusal_of",
    "take_secret",
]

KEY_NAME = "serving-replicas"
"""The control plane's key (:func:`aios.control.keys.control_key`) secrets derive from."""
SECRET_ENV = "AIOS_REPLICA_SECRET"
SECRET_HEADER = "x-aios-replica-secret"
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})

Refusal = tuple[int, bytes]
"""The status and JSON body that answer a request without the secret."""

_HEADER = SECRET_HEADER.encode()
_MISSING: Refusal = (
    401,
    json.dumps({"error": f"this replica answers its gateway only: no {SECRET_HEADER}"}).encode(),
)
_WRONG: Refusal = (
    403,
    json.dumps({"error": f"this replica answers its gateway only: wrong {SECRET_HEADER}"}).encode(),
)


def deployment_secret(key: bytes, name: str, deployment_id: int, created_at: float) -> str:
    """The secret of the deployment ``name`` (its row's id and creation time) under
    ``key``: 64 hex digits, the same on every call and after a restart."""
    message = f"aios-replica\0{name}\0{deployment_id}\0{created_at!r}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def take_secret(environ: MutableMapping[str, str] | None = None) -> str | None:
    """The secret in :data:`SECRET_ENV`, removed from ``environ`` (the process's own
    environment by default); None when it is not set.

    Raises InvalidInput when it is blank (a server that would ask for an empty header
    is a mistake, not a choice of no secret) or not printable ASCII."""
    environ = os.environ if environ is None else environ
    secret = environ.pop(SECRET_ENV, None)
    if secret is None:
        return None
    if not secret.strip():
        raise InvalidInput(f"{SECRET_ENV} is set but empty: unset it to serve without a secret")
    if not (secret.isascii() and secret.isprintable()):
        raise InvalidInput(f"{SECRET_ENV} must be printable ASCII, as a header value is")
    return secret


def refusal_of(secret: bytes, headers: Iterable[tuple[bytes, bytes]]) -> Refusal | None:
    """None when ``headers`` (lower-case names, as ASGI and the HTTP parser give them)
    carry ``secret`` in :data:`SECRET_HEADER` (its first occurrence, compared in
    constant time); otherwise the answer to give instead."""
    for name, value in headers:
        if name == _HEADER:
            return None if hmac.compare_digest(value, secret) else _WRONG
    return _MISSING
