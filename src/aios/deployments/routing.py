"""What the gateway knows about each deployment: its traffic weights and the replicas
ready to take requests. The controller writes it; the gateway reads it.

The controller replaces a :class:`Route` whole (one assignment, atomic under the GIL)
and keeps each replica's :class:`Endpoint` object across passes, so the gateway's
count of requests in flight on a replica survives a refresh.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

__all__ = ["Endpoint", "Route", "Routes"]

Version = tuple[str, int]
"""(model name, version number)."""


@dataclass(eq=False)
class Endpoint:
    """One ready replica: where it listens and which model versions it serves."""

    job_id: int
    url: str
    serves: frozenset[Version]
    generation: int
    in_flight: int = 0
    failed: bool = False
    """Set by the gateway when a request to it failed; the controller checks it again."""

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://").rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.url.rpartition(":")[2])


@dataclass
class Route:
    name: str
    tenant: str
    versions: list[tuple[str, int, int]]
    """(model, version, weight in percent)."""
    endpoints: list[Endpoint] = field(default_factory=list)
    turn: int = 0
    secret: str | None = None
    """What the deployment's replicas ask of each request (:mod:`~aios.serving.secret`),
    which the gateway adds; None for replicas that ask nothing."""
    revision: float = 0.0
    """When the deployment's spec that :attr:`versions` come from was last changed."""

    def pick_version(self, rng: random.Random, pinned: int | None = None) -> Version | None:
        """A version by traffic weight among those a ready replica serves (or the
        ``pinned`` one); during a rolling update, before any replica of the new versions
        is ready, a version the old replicas serve. None when no replica is ready."""
        served = {v for e in self.endpoints if not e.failed for v in e.serves}
        if pinned is not None:
            for model, version, _ in self.versions:
                if version == pinned and (model, version) in served:
                    return model, version
            return None
        choices = [(m, v, w) for m, v, w in self.versions if (m, v) in served and w > 0]
        if not choices:
            choices = [(m, v, 1) for m, v, _ in self.versions if (m, v) in served]
        if not choices:
            # A rolling update: no replica of the new versions is ready yet, and those
            # of the old generation answer until one is.
            choices = [(m, v, 1) for m, v in sorted(served)]
        if not choices:
            return None
        model, version, _ = rng.choices(choices, weights=[w for _, _, w in choices])[0]
        return model, version

    def pick_endpoint(self, version: Version, avoid: set[int]) -> Endpoint | None:
        """The ready replica serving ``version`` with the fewest requests in flight;
        replicas equally loaded take turns."""
        fewest: list[Endpoint] = []
        for endpoint in self.endpoints:
            if endpoint.failed or endpoint.job_id in avoid or version not in endpoint.serves:
                continue
            if not fewest or endpoint.in_flight < fewest[0].in_flight:
                fewest = [endpoint]
            elif endpoint.in_flight == fewest[0].in_flight:
                fewest.append(endpoint)
        if not fewest:
            return None
        self.turn += 1
        return fewest[self.turn % len(fewest)]

    def in_flight(self) -> int:
        return sum(e.in_flight for e in self.endpoints)


class Routes:
    """Deployment name → :class:`Route`."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}

    def get(self, name: str) -> Route | None:
        return self._routes.get(name)

    def set(self, route: Route) -> None:
        """Publishes ``route``; its weights give way to newer ones already published
        (:meth:`set_weights` may have run while the route was being built), and its
        replicas take turns where the published route's left off (the controller
        rebuilds a route on every pass: starting each from the first turn would send
        every request between two passes to the same replica)."""
        current = self._routes.get(route.name)
        if current is not None:
            route.turn = current.turn
            if current.revision > route.revision:
                route = replace(route, versions=current.versions, revision=current.revision)
        routes = dict(self._routes)
        routes[route.name] = route
        self._routes = routes

    def set_weights(self, name: str, versions: list[tuple[str, int, int]], revision: float) -> None:
        """Routes deployment ``name``'s traffic by ``versions`` (model, version, weight)
        from now on, unless weights of a later revision are published already."""
        current = self._routes.get(name)
        if current is None or current.revision > revision:
            return
        routes = dict(self._routes)
        routes[name] = replace(current, versions=versions, revision=revision)
        self._routes = routes

    def remove(self, name: str) -> None:
        routes = dict(self._routes)
        routes.pop(name, None)
        self._routes = routes

    def names(self) -> list[str]:
        return list(self._routes)
