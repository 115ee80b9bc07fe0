"""Putting the control plane together: database, executor, reconcile loop, API.

``ControlPlane(settings).start()`` is what ``aios up`` and the tests run; ``serve``
adds uvicorn in the foreground and stops everything cleanly on Ctrl-C.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI

from aios.control.api import create_app
from aios.control.auth import Principal, TokenBook
from aios.control.deps import authenticate
from aios.control.history_api import history_router, restore_policy
from aios.control.launching import Launching
from aios.control.layout import RUN_DIR
from aios.control.metrics import ControlMetrics
from aios.control.ops import ControlOps
from aios.control.perimeter import AllowedHosts, BodyLimits, Perimeter
from aios.control.probes import JobProbe
from aios.control.reconciler import Reconciler
from aios.dashboard import dashboard_router, page_router
from aios.deployments.api import deployment_router
from aios.deployments.controller import DeploymentController
from aios.deployments.gateway import Gateway, GatewayEndpoint
from aios.deployments.ops import DeploymentOps
from aios.deployments.routing import Routes
from aios.errors import InvalidInput
from aios.executors.base import Executor
from aios.executors.images import ImageCache
from aios.executors.sandbox import Sandbox, SandboxUnavailable
from aios.lineage.api import lineage_router
from aios.lineage.catalog import DataCatalog, default_location
from aios.registry.api import FORM_OVERHEAD
from aios.registry.service import RegistryOps
from aios.resources import Node, detect_local_node
from aios.scheduler import make_live_policy
from aios.serving.server import DEFAULT_MAX_BODY_BYTES
from aios.store import Database, sqlite_url

if TYPE_CHECKING:
    from aios.cluster.attach import RayAttachment

__all__ = ["DEFAULT_PORT", "ControlPlane", "Settings", "default_home", "is_loopback"]

DEFAULT_PORT = 8470
GRACEFUL_SHUTDOWN = 2
"""Seconds a stopping API server waits for open requests (log follows) to end."""
log = logging.getLogger("aios.control")


def default_home() -> Path:
    return Path(os.environ.get("AIOS_HOME") or Path.home() / ".aios")


def private_home(home: Path) -> None:
    """Makes ``home`` (mode 0700), or takes an existing one's access from other users:
    it holds the database, the admin's token and every job's files. A directory of
    another user's, or a shared one (sticky, as ``/tmp``), is left as it is."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = home.stat()
    if status.st_mode & 0o077 and status.st_uid == os.geteuid():
        if status.st_mode & stat.S_ISVTX:
            log.warning("home %s is a shared directory: its mode is left as it is", home)
        else:
            home.chmod(0o700)


def _local_path(location: str) -> Path | None:
    """The directory of a repository location on this machine (None: a URL)."""
    if "://" in location and not location.startswith("file://"):
        return None
    return Path(location.removeprefix("file://")).expanduser().absolute()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Settings:
    """How to run the control plane. ``db`` defaults to SQLite in ``home``."""

    home: Path = field(default_factory=default_home)
    db: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    policy: str = "drf"
    auth: bool = True
    tick: float = 1.0
    nodes: list[Node] | None = None
    executor: Executor | None = None
    ray: str | None = None
    """A Ray cluster's address (``auto``: the local ``ray start``) to run jobs on its
    nodes instead of this machine's; ``nodes`` and ``executor`` are then ignored."""
    data_repo: str | None = None
    """The data repository jobs read and publish datasets in (default:
    ``$AIOS_DATA_REPO`` or ``home/data``)."""
    allowed_hosts: list[str] = field(default_factory=list)
    """Names (or addresses) clients reach the API by, beyond those allowed anyway (see
    :mod:`aios.control.perimeter`): a request naming another ``Host`` is refused."""
    public_metrics: bool = False
    """Serve ``/metrics`` to anyone; by default it needs an admin's token."""
    sandbox: Literal["auto", "bwrap", "none"] = "auto"
    """Whether jobs run in a sandbox (:mod:`aios.executors.sandbox`): ``bwrap`` requires
    one (refusing to start without), ``auto`` uses one where this machine can make it
    (and logs a warning where not), ``none`` runs jobs as plain processes. Ignored
    with ``executor``, which brings its own."""


class ControlPlane:
    """The running control plane: call :meth:`start`, use :attr:`app`, then :meth:`stop`."""

    def __init__(self, settings: Settings) -> None:
        if not settings.auth and not is_loopback(settings.host):
            raise InvalidInput(
                f"--no-auth: refusing to serve without auth on {settings.host}, which is "
                "not a loopback address"
            )
        self.settings = settings
        policy = make_live_policy(settings.policy)  # an unknown policy fails before any file
        hosts = AllowedHosts.build(settings.host, settings.allowed_hosts)
        home = settings.home
        private_home(home)
        (home / "jobs").mkdir(exist_ok=True)
        (home / RUN_DIR).mkdir(mode=0o700, exist_ok=True)
        self.home = home
        self.db = Database(settings.db or sqlite_url(home / "aios.db"))
        self.ray: RayAttachment | None = None
        self.reconciler: Reconciler
        self.executor: Executor
        data_location = settings.data_repo or default_location(home)
        self.hidden = tuple(str(p) for p in (home, _local_path(data_location)) if p is not None)
        """What every job's sandbox shows empty: this control plane's home and data."""
        self.sandbox = self._sandbox(settings)
        self.images = ImageCache(home / "images")
        if settings.ray is not None:
            nodes, self.executor = self._attach_ray(settings.ray)
        else:
            nodes = settings.nodes if settings.nodes is not None else [detect_local_node()]
            if settings.executor is None:
                from aios.executors.local import LocalExecutor

                self.executor = LocalExecutor(
                    on_exit=self._on_exit, sandbox=self.sandbox, images=self.images
                )
            else:
                self.executor = settings.executor
        self.reconciler = Reconciler(
            self.db,
            self.executor,
            nodes,
            policy,
            home,
            tick=settings.tick,
            elastic=settings.ray is not None,  # Ray nodes join and leave: a job waits
        )
        self.tokens = TokenBook(self.db, home)
        self.reconciler.launching = Launching(
            home,
            sandboxed=self.sandbox is not None,
            hidden=self.hidden,
            api_url=self.job_url,
            mint=self.tokens.job_token if settings.auth else None,
        )
        self.data = DataCatalog(data_location)
        self.ops = ControlOps(self.db, self.reconciler, home, self.data)
        if self.sandbox is not None or self.ray is not None:
            self.ops.images = self.images
        restore_policy(self.db, self.reconciler, settings.policy)  # a switch outlives a restart
        self.metrics = ControlMetrics(self.db, self.reconciler)
        # A model's load runs its uploader's code: a sandboxed job of their queue.
        self.registry = RegistryOps(self.db, home, prober=JobProbe(self.ops))
        self.registry.data = self.data
        self.deployments = DeploymentOps(self.db, self.registry)
        self.registry.in_use = self.deployments.in_use  # a version deployed stays
        self.routes = Routes()
        self.controller = DeploymentController(
            self.db, self.deployments, self.ops, home, self.routes
        )
        if self.ray is not None:
            self.controller.bind_host = "0.0.0.0"  # reached from the gateway, on another node
        self.gateway = Gateway(self.routes, self.metrics.registry)
        self.app: FastAPI = create_app(
            self.ops,
            self.tokens,
            self.metrics,
            auth=settings.auth,
            public_metrics=settings.public_metrics,
            registry=self.registry,
            routers=[
                deployment_router(self.deployments, self.controller),
                lineage_router(self.db, self.data),
                history_router(self.ops, settings.policy),
                dashboard_router(self),
            ],
            root_routers=[self.gateway.router, page_router()],
            on_shutdown=[self.gateway.close],
        )
        # Inference requests skip FastAPI (see GatewayEndpoint): added last, runs first.
        self.app.add_middleware(
            GatewayEndpoint, gateway=self.gateway, authenticate=self._authenticate
        )
        # Added after the gateway's endpoint, so it runs before it: inference requests
        # pass the host, origin and size checks too.
        self.app.add_middleware(
            Perimeter,
            hosts=hosts,
            limits=BodyLimits(
                upload=self.registry.max_upload + FORM_OVERHEAD, inference=DEFAULT_MAX_BODY_BYTES
            ),
            authenticate=self._authenticate if settings.auth else None,
        )
        self.admin_token_path: str | None = None
        self._started = False
        self._server: Any = None
        self._server_thread: threading.Thread | None = None

    def _sandbox(self, settings: Settings) -> Sandbox | None:
        """The sandbox jobs run in, as ``settings.sandbox`` asks (None: none)."""
        if settings.sandbox == "none" or (settings.executor is not None and settings.ray is None):
            return None
        try:
            return Sandbox.detect(self.hidden)
        except SandboxUnavailable as exc:
            if settings.sandbox == "bwrap":
                raise InvalidInput(f"--sandbox bwrap: {exc}") from None
            log.warning("jobs run without a sandbox (%s): a job can read this home", exc)
            return None

    @property
    def job_url(self) -> str:
        """Where a job on this machine reaches the API."""
        host = self.settings.host
        if host in {"0.0.0.0", ""}:
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.settings.port}"

    def _authenticate(self, authorization: str | None) -> Principal | None:
        """The caller named by an ``Authorization: Bearer …`` header; None when there
        is none or it is no one's (everyone is the admin without auth)."""
        return authenticate(self.tokens, self.settings.auth, authorization)

    def _attach_ray(self, address: str) -> tuple[list[Node], Executor]:
        """Connects to the Ray cluster; its nodes, and the executor that reaches them."""
        from aios.cluster.attach import RayAttachment, connect
        from aios.cluster.executor import RayExecutor

        nodes = connect(address)
        plane = hashlib.sha256(os.fsencode(self.home.resolve())).hexdigest()[:12]
        executor = RayExecutor(
            on_exit=self._on_exit,
            node_home=str(self.home / "nodes"),
            plane=plane,
            shipped_roots=[str(self.home / "registry")],  # model artifacts, for replicas
        )
        self.ray = RayAttachment(nodes, executor)
        return nodes, executor

    def _on_exit(self) -> None:
        reconciler = getattr(self, "reconciler", None)
        if reconciler is not None:
            reconciler.wake()

    def start(self) -> None:
        if self._started:
            return
        if self.settings.auth:
            self.admin_token_path = self.tokens.bootstrap()
        self.reconciler.start()
        if self.ray is not None:
            self.ray.start(self.reconciler)
        self.controller.start()
        self._started = True

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def _uvicorn(self) -> Any:
        import uvicorn

        config = uvicorn.Config(
            self.app,
            host=self.settings.host,
            port=self.settings.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # A client following a log of a job that runs on would otherwise hold the
            # shutdown up until the job ended: after this long its stream is cut.
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        )
        return uvicorn.Server(config)

    def start_background(self, timeout: float = 10.0) -> None:
        """Starts the loop and serves the API from a background thread (for embedding
        the control plane in a program or a test); :meth:`stop` ends both."""
        self.start()
        self._server = server = self._uvicorn()
        self._server_thread = threading.Thread(target=server.run, name="aios-api", daemon=True)
        self._server_thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._server_thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise InvalidInput(f"cannot serve on {self.url} (is the port in use?)")
            time.sleep(0.005)

    def stop(self) -> None:
        """Stops the API server, the loop and the executor's watchers; running jobs keep
        running and are adopted by the next start."""
        if self._server is not None and self._server_thread is not None:
            self._server.should_exit = True
            self._server_thread.join(10)
            self._server = self._server_thread = None
        if not self._started:
            return
        self.controller.stop()
        if self.ray is not None:
            self.ray.stop()
        self.reconciler.stop()
        self.executor.close()
        self.data.close()
        self.db.close()
        self._started = False

    def serve(self) -> None:
        """Runs the API in the foreground until Ctrl-C (or SIGTERM)."""
        # The API's threads and the reconcile loop hand work to each other many times
        # per job; a shorter switch interval than the default 5 ms keeps each handoff
        # from waiting for a busy thread's time slice.
        sys.setswitchinterval(0.001)
        self.start()
        try:
            self._uvicorn().run()
        except KeyboardInterrupt:
            pass  # uvicorn re-raises the Ctrl-C it handled; stopping is what was asked
        finally:
            self.stop()
