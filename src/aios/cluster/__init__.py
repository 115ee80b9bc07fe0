"""Beyond one machine: the control plane on a Ray cluster (``aios up --ray``).

AIOS keeps the scheduling — queues, quotas, fairness, priorities, preemption, gangs —
and uses Ray only to reach the nodes: their resources (:mod:`.nodes`) and an agent on
each that runs the replicas placed there (:mod:`.agent`, :mod:`.executor`). Importing
this package does not import Ray; ``pip install 'aios[ray]'`` brings it.
"""
