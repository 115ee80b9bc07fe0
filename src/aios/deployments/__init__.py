"""Deployments: model versions served by replicas that the scheduler places as jobs.

The control plane's side of serving (what a replica runs is :mod:`aios.serving`):

- :mod:`~aios.deployments.specs`: what the API accepts and returns (pydantic only; the
  SDK imports it).
- :mod:`~aios.deployments.ops`: create, list, change and delete deployments.
- :mod:`~aios.deployments.controller`: the loop that starts replicas as service jobs,
  rolls generations and feeds the gateway.
- :mod:`~aios.deployments.api`: the REST routes under ``/api/v1/deployments``.
- :mod:`~aios.deployments.routing`: the gateway's routing table (name → replicas and
  weights).
- :mod:`~aios.deployments.gateway`: ``/v2/models/NAME/…`` on the control plane's port,
  forwarded to a replica.
- :mod:`~aios.deployments.upstream`: the gateway's pool of connections to replicas.
- :mod:`~aios.deployments.autoscale`: how many replicas the load asks for.

Nothing is imported here: each module is loaded by whoever needs it.
"""
