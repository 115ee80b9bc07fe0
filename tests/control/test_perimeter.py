"""The control plane's perimeter (:mod:`aios.control.perimeter`): Host and Origin,
authentication before a body is read, bounded bodies, NaN and Infinity, ``/metrics``
and the modes of the files the control plane makes."""

from __future__ import annotations

import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aios.control import ControlPlane, Settings
from aios.control.perimeter import JSON_LIMIT, AllowedHosts
from aios.errors import InvalidInput
from aios.serving.server import DEFAULT_MAX_BODY_BYTES
from tests.control.control_harness import Running, free_port, local_node, start_plane, stop_plane
from tests.control.plane_process import PlaneProcess

SERVE = Path(__file__).with_name("serve_plane.py")
EVIL = "evil.example"
MIB = 1 << 20


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_plane(tmp_path_factory.mktemp("perimeter") / "home")
    try:
        yield running
    finally:
        stop_plane(running)


def serve(home: Path, **options: object) -> tuple[ControlPlane, str]:
    """A control plane on a free port with ``options`` as its settings; its URL."""
    port = free_port()
    settings = Settings(home=home, port=port, tick=0.2, nodes=[local_node()], **options)  # type: ignore[arg-type]
    plane = ControlPlane(settings)
    plane.start_background()
    return plane, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def open_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A control plane without auth (everyone is an admin), as ``aios up --no-auth``."""
    plane, url = serve(tmp_path_factory.mktemp("open") / "home", auth=False)
    try:
        yield url
    finally:
        plane.stop()


def token_of(running: Running) -> str:
    return (running.home / "admin.token").read_text().strip()


def bearer(running: Running) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(running)}"}


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def answer_to_head(url: str, head: str, timeout: float = 10.0) -> bytes:
    """Sends only the head of a request (its body never follows) and returns what the
    server answers before it closes the connection; b"" when it answers nothing in
    ``timeout`` seconds (it waits for the body)."""
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pass
        return received


def status_of(answer: bytes) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


# -- Host -------------------------------------------------------------------------------
ROUTES = [
    ("GET", "/healthz"),
    ("GET", "/"),
    ("GET", "/api/v1/jobs"),
    ("POST", "/api/v1/queues"),
    ("POST", "/v2/models/anything/infer"),
    ("GET", "/v2/health/live"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_rebinding_host_is_refused_on_every_route(
    plane: Running, open_plane: str, method: str, path: str
) -> None:
    """A request naming another site in Host (a page of it whose name now resolves
    here) is refused with 403 naming the way to allow a real name, with auth and
    without it, on the API, the dashboard and the inference gateway alike."""
    for url, token in ((plane.url, bearer(plane)), (open_plane, {})):
        headers = {**token, "Host": f"{EVIL}:{port_of(url)}"}
        response = httpx.request(method, url + path, headers=headers, json={"name": "q"})
        assert response.status_code == 403, (url, response.text)
        assert f"--allowed-host {EVIL}" in response.text


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LocalHost.", "[::1]", "127.0.0.2"])
def test_loopback_names_are_answered(plane: Running, host: str) -> None:
    response = httpx.get(f"{plane.url}/healthz", headers={"Host": f"{host}:{port_of(plane.url)}"})
    assert response.status_code == 200


def test_names_given_with_allowed_host_are_answered(tmp_path: Path) -> None:
    plane, url = serve(tmp_path / "home", auth=False, allowed_hosts=["aios.example.org"])
    try:
        assert httpx.get(f"{url}/healthz", headers={"Host": "AIOS.example.org"}).status_code == 200
        assert httpx.get(f"{url}/healthz", headers={"Host": EVIL}).status_code == 403
    finally:
        plane.stop()


def test_a_plane_on_a_wildcard_answers_its_addresses_and_its_own_name(tmp_path: Path) -> None:
    """Bound to 0.0.0.0 the plane answers any IP address and this machine's name (what
    clients elsewhere use), and still refuses any other name."""
    plane, url = serve(tmp_path / "home", host="0.0.0.0")
    try:
        for host in (socket.gethostname(), "192.0.2.7:8470", "127.0.0.1"):
            assert httpx.get(f"{url}/healthz", headers={"Host": host}).status_code == 200
        assert httpx.get(f"{url}/healthz", headers={"Host": EVIL}).status_code == 403
    finally:
        plane.stop()


@pytest.mark.parametrize(
    ("bind", "extra", "host", "allowed"),
    [
        ("127.0.0.1", [], "127.0.0.1:8470", True),
        ("127.0.0.1", [], "localhost", True),
        ("127.0.0.1", [], "[::1]:8470", True),
        ("127.0.0.1", [], "127.3.4.5", True),  # all of 127/8 is this machine
        ("127.0.0.1", [], "evil.example:8470", False),
        ("127.0.0.1", [], "localhost.evil.example", False),
        ("127.0.0.1", [], "10.0.0.5", False),
        ("127.0.0.1", [], "", False),
        ("127.0.0.1", [], "a:b:c", False),
        ("127.0.0.1", [], "[::1", False),
        ("127.0.0.1", [], "localhost:99999", False),
        ("10.0.0.5", [], "10.0.0.5:8470", True),
        ("10.0.0.5", [], "10.0.0.6", False),
        ("myhost.lan", [], "MyHost.lan:8470", True),
        ("0.0.0.0", [], "10.0.0.6:8470", True),
        ("0.0.0.0", [], "[2001:db8::1]:8470", True),
        ("0.0.0.0", [], "evil.example", False),
        ("::", [], "[fe80::1]", True),
        ("127.0.0.1", ["aios.example.org"], "aios.example.org.:8470", True),
        ("127.0.0.1", ["aios.example.org"], "example.org", False),
        ("127.0.0.1", ["[2001:db8::1]"], "[2001:db8::1]:8470", True),
    ],
)
def test_the_allowed_hosts_rule(bind: str, extra: list[str], host: str, allowed: bool) -> None:
    assert AllowedHosts.build(bind, extra).allows(host) is allowed


def test_a_wildcard_bind_allows_this_machines_names() -> None:
    hosts = AllowedHosts.build("::")
    assert hosts.allows(socket.gethostname())
    assert hosts.allows(socket.getfqdn())


@pytest.mark.parametrize("bad", ["http://aios.example", "aios.example:8470", "a/b", "a b", ""])
def test_an_allowed_host_that_is_no_host_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="--allowed-host"):
        AllowedHosts.build("127.0.0.1", [bad])


# -- Origin -----------------------------------------------------------------------------
@pytest.mark.parametrize("origin", [f"http://{EVIL}", "null", "http://127.0.0.1:1", "file://"])
def test_a_cross_site_request_that_changes_state_is_refused(
    plane: Running, open_plane: str, origin: str
) -> None:
    """A POST from another site's page (another host, another port of this one, a
    sandboxed or file page) is refused with 403 and changes nothing, with auth and
    without it; a read from one is not refused (no CORS lets the page read it)."""
    for number, (url, headers) in enumerate(((plane.url, bearer(plane)), (open_plane, {}))):
        name = f"csrf-{abs(hash(origin))}-{number}"
        response = httpx.post(
            f"{url}/api/v1/queues", json={"name": name}, headers={**headers, "Origin": origin}
        )
        assert response.status_code == 403, response.text
        assert "cross-site" in response.json()["detail"]
        listed = httpx.get(f"{url}/api/v1/queues", headers={**headers, "Origin": origin})
        assert listed.status_code == 200
        assert name not in {queue["name"] for queue in listed.json()}
    infer = httpx.post(
        f"{open_plane}/v2/models/anything/infer", content=b"{}", headers={"Origin": origin}
    )
    assert infer.status_code == 403


def test_a_request_from_the_planes_own_page_or_without_a_browser_goes_on(
    plane: Running, open_plane: str
) -> None:
    for url, headers in ((plane.url, bearer(plane)), (open_plane, {})):
        same = httpx.post(
            f"{url}/api/v1/queues", json={"name": "same-origin"}, headers={**headers, "Origin": url}
        )
        assert same.status_code == 201, same.text
        cli = httpx.post(f"{url}/api/v1/queues", json={"name": "no-origin"}, headers=headers)
        assert cli.status_code == 201, cli.text


# -- authentication before the body, and bounded bodies ------------------------------
@pytest.mark.parametrize("authorization", ["", "Authorization: Bearer aios_not-a-token\n"])
def test_an_unauthenticated_body_is_refused_before_it_is_sent(
    plane: Running, authorization: str
) -> None:
    """The server answers 401 to the head of a 100 MiB POST without a valid token: it
    never waits for (nor reads) the body."""
    answer = answer_to_head(
        plane.url,
        f"POST /api/v1/jobs HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n"
        f"Content-Length: {100 * MIB}\n{authorization}",
    )
    assert status_of(answer) == 401, answer
    assert b"connection: close" in answer.lower()


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(plane: Running) -> None:
    token = token_of(plane)
    limits = (("/api/v1/jobs", JSON_LIMIT), ("/v2/models/x/infer", DEFAULT_MAX_BODY_BYTES))
    for path, limit in limits:
        answer = answer_to_head(
            plane.url,
            f"POST {path} HTTP/1.1\nHost: 127.0.0.1\nAuthorization: Bearer {token}\n"
            f"Content-Type: application/json\nContent-Length: {limit + 1}\n",
        )
        assert status_of(answer) == 413, (path, answer)
        assert f"limit of {limit} bytes".encode() in answer


def test_a_chunked_body_is_cut_at_the_limit(plane: Running) -> None:
    """A body without a length is counted as it comes and refused (413) once past the
    limit; the server does not read the rest."""
    head = (
        f"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        f"{token_of(plane)}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"%x\r\n" % MIB + b" " * MIB + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port_of(plane.url)), timeout=30) as sock:
        sock.sendall(head)
        try:
            while sent < 4 * JSON_LIMIT:
                sock.sendall(chunk)
                sent += MIB
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert status_of(answer) == 413, answer[:200]
    assert sent < 4 * JSON_LIMIT


def _peak_rss(pid: int) -> int:
    """Bytes of the most memory process ``pid`` has held at once (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_an_unauthenticated_100_mib_body_costs_the_server_no_memory(tmp_path: Path) -> None:
    """The whole 100 MiB is sent (the client does not stop at the 401): the server's
    peak memory grows by far less than the body, as it reads none of it."""
    port, home = free_port(), tmp_path / "home"
    process = PlaneProcess([sys.executable, str(SERVE), str(home), str(port)], home, port)
    process.start().close()
    try:
        assert process.process is not None
        pid = process.process.pid
        before = _peak_rss(pid)
        block = b"{" * MIB
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(
                b"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (100 * MIB)
            )
            try:
                for _ in range(100):
                    sock.sendall(block)
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except ConnectionResetError:
                pass
        grown = _peak_rss(pid) - before
        assert grown < 16 * MIB, f"the server's peak memory grew by {grown / MIB:.0f} MiB"
        assert status_of(answer) == 401, answer[:200]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        process.stop()


# -- NaN and Infinity -------------------------------------------------------------------
NON_FINITE = [
    ("POST", "/api/v1/jobs", '{"command": ["true"], "cpus": NaN}', "NaN"),
    ("POST", "/api/v1/jobs", '{"command": ["true"], "grace": Infinity}', "Infinity"),
    ("POST", "/api/v1/jobs", '{"command": ["true"], "memory": 1e999}', "1e999"),
    ("POST", "/api/v1/jobs/batch", '[{"command": ["true"], "retry_backoff": -Infinity}]', "-Inf"),
    ("POST", "/api/v1/queues", '{"name": "nan", "weight": NaN}', "NaN"),
    ("POST", "/api/v1/queues", '{"name": "nan", "quota": {"gpu": NaN}}', "NaN"),
    ("PATCH", "/api/v1/queues/default", '{"weight": Infinity}', "Infinity"),
    ("POST", "/api/v1/pipelines", '{"name": "p", "steps": {"a": {"time_limit": NaN}}}', "NaN"),
    ("PUT", "/api/v1/policy", '{"policy": NaN}', "NaN"),
    ("POST", "/api/v1/deployments", '{"model": "m@1", "cpus": NaN}', "NaN"),
    ("POST", "/api/v1/simulator/run", '{"policies": ["drf"], "nodes": NaN}', "NaN"),
    ("PATCH", "/api/v1/models/m/versions/1", '{"description": "x", "tags": {"a": NaN}}', "NaN"),
]


@pytest.mark.parametrize(("method", "path", "body", "named"), NON_FINITE)
def test_nan_or_infinity_in_any_json_body_is_a_422(
    plane: Running, method: str, path: str, body: str, named: str
) -> None:
    """Python's json reads NaN, Infinity and 1e999, which nothing after it can hold:
    each is refused with a 422 that names it, on every router (jobs, queues, pipelines,
    policy, deployments, the dashboard's simulator, the registry)."""
    response = httpx.request(
        method,
        plane.url + path,
        content=body.encode(),
        headers={**bearer(plane), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert named in response.json()["detail"][0]["msg"]


# -- /metrics ---------------------------------------------------------------------------
def test_metrics_need_an_admins_token(plane: Running) -> None:
    url = f"{plane.url}/metrics"
    assert httpx.get(url).status_code == 401
    if "metrics-reader" not in {q.name for q in plane.admin.queues()}:
        plane.admin.create_queue("metrics-reader")
    member = plane.admin.create_token("metrics-member", tenant="metrics-reader")
    refused = httpx.get(url, headers={"Authorization": f"Bearer {member}"})
    assert refused.status_code == 403
    assert "--public-metrics" in refused.json()["detail"]
    allowed = httpx.get(url, headers=bearer(plane))
    assert allowed.status_code == 200 and "aios_scheduler_cycle_seconds" in allowed.text


def test_public_metrics_need_no_token(tmp_path: Path) -> None:
    plane, url = serve(tmp_path / "home", public_metrics=True)
    try:
        response = httpx.get(f"{url}/metrics")
        assert response.status_code == 200 and "aios_scheduler_cycle_seconds" in response.text
    finally:
        plane.stop()


# -- files ------------------------------------------------------------------------------
def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_home_and_the_database_are_the_owners_alone(tmp_path: Path) -> None:
    """A new home is 0700 and its database, with its WAL files, 0600; an existing home
    whose modes let others in is tightened at the next start."""
    home = tmp_path / "home"
    database = home / "aios.db"
    files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    plane, _url = serve(home)
    try:
        assert mode(home) == 0o700
        assert [mode(path) for path in files] == [0o600] * 3
    finally:
        plane.stop()
    home.chmod(0o755)
    for path in files:
        if path.exists():  # the WAL files go when the last connection closes
            path.chmod(0o644)
    plane, _url = serve(home)
    try:
        assert mode(home) == 0o700
        assert [mode(path) for path in files] == [0o600] * 3
    finally:
        plane.stop()
