"""The gateway's routes: traffic weights published when a change is answered, never
overwritten by a route the controller built from the spec before the change; replicas
equally loaded take turns across the routes the controller rebuilds."""

from __future__ import annotations

from aios.deployments.routing import Endpoint, Route, Routes

V1_ONLY = [("iris", 1, 100), ("iris", 2, 0)]
V2_ONLY = [("iris", 1, 0), ("iris", 2, 100)]


def endpoint(job_id: int) -> Endpoint:
    return Endpoint(job_id, f"http://127.0.0.1:{9000 + job_id}", frozenset({("iris", 1)}), 0)


def test_new_weights_route_at_once() -> None:
    routes = Routes()
    routes.set(Route("iris", "alpha", V1_ONLY, [endpoint(1)], revision=1.0))
    routes.set_weights("iris", V2_ONLY, 2.0)
    route = routes.get("iris")
    assert route is not None and route.versions == V2_ONLY
    assert [e.job_id for e in route.endpoints] == [1]


def test_a_route_built_before_the_change_keeps_the_new_weights() -> None:
    """The controller's pass read the spec, the weights changed and were published, then
    the pass published its route: its replicas are taken, its stale weights are not."""
    routes = Routes()
    routes.set(Route("iris", "alpha", V1_ONLY, [endpoint(1)], revision=1.0))
    routes.set_weights("iris", V2_ONLY, 2.0)
    routes.set(Route("iris", "alpha", V1_ONLY, [endpoint(1), endpoint(2)], revision=1.0))
    route = routes.get("iris")
    assert route is not None and route.versions == V2_ONLY and route.revision == 2.0
    assert [e.job_id for e in route.endpoints] == [1, 2]
    # A later spec (built after another change) replaces the weights again.
    routes.set(Route("iris", "alpha", V1_ONLY, [endpoint(1)], revision=3.0))
    assert routes.get("iris").versions == V1_ONLY  # type: ignore[union-attr]


def test_older_weights_never_replace_newer_ones() -> None:
    routes = Routes()
    routes.set(Route("iris", "alpha", V2_ONLY, [], revision=5.0))
    routes.set_weights("iris", V1_ONLY, 4.0)
    assert routes.get("iris").versions == V2_ONLY  # type: ignore[union-attr]
    routes.set_weights("absent", V1_ONLY, 9.0)  # no route yet: the controller makes it
    assert routes.get("absent") is None


def test_replicas_take_turns_across_a_rebuilt_route() -> None:
    """The controller publishes a new route on every pass; one request between two
    passes still goes to the replica whose turn it is, not always to the same one."""
    routes = Routes()
    replicas = [endpoint(1), endpoint(2)]
    picked = []
    for _ in range(4):
        routes.set(Route("iris", "alpha", V1_ONLY, list(replicas), revision=1.0))
        route = routes.get("iris")
        assert route is not None
        chosen = route.pick_endpoint(("iris", 1), avoid=set())
        assert chosen is not None
        picked.append(chosen.job_id)
    assert sorted(picked) == [1, 1, 2, 2]
