"""The Python SDK over the REST API."""

from aios.client.client import ApiError, Client
from aios.client.decorator import JobFunction, JobRun, job

__all__ = ["ApiError", "Client", "JobFunction", "JobRun", "job"]
