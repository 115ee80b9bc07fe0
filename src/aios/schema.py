"""The base of every request model at the edge (jobs, queues, models, deployments).

Unknown fields are refused (a typo is a 422 that names it, not a silent default), and
so are ``NaN`` and ``Infinity``, which JSON parsers accept and no quantity means.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from aios.names import NAME

__all__ = ["Name", "Strict"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


Name = Annotated[str, Field(pattern=NAME, description="letters, digits, '_', '.', '-'")]
