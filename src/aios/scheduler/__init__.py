"""The scheduler: jobs and queues as it sees them, the plugin framework, the policies,
and one pure scheduling cycle (state and time in, decisions out)."""

from aios.scheduler.costs import FREE, PreemptionCost
from aios.scheduler.cycle import (
    Bind,
    CycleResult,
    Decision,
    Preempt,
    Unschedulable,
    UpstreamFailed,
    cycle,
)
from aios.scheduler.framework import SUCCESS, Code, Policy, Status
from aios.scheduler.job import TERMINAL_STATES, Job, JobKind, JobState, RunningJob
from aios.scheduler.policies import available_policies, make_live_policy, make_policy
from aios.scheduler.queue import Queue, check_quota
from aios.scheduler.state import ClusterState, NodeState

__all__ = [
    "FREE",
    "SUCCESS",
    "TERMINAL_STATES",
    "Bind",
    "ClusterState",
    "Code",
    "CycleResult",
    "Decision",
    "Job",
    "JobKind",
    "JobState",
    "NodeState",
    "Policy",
    "Preempt",
    "PreemptionCost",
    "Queue",
    "RunningJob",
    "Status",
    "Unschedulable",
    "UpstreamFailed",
    "available_policies",
    "check_quota",
    "cycle",
    "make_live_policy",
    "make_policy",
]
