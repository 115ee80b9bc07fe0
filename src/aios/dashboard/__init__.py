"""The web dashboard: one page served by the control plane at ``/``, its own plain
JavaScript modules and stylesheet (no third-party code, nothing from the internet), and
the JSON routes and live event stream it reads under ``/api/v1``."""

from aios.dashboard.pages import page_router
from aios.dashboard.routes import dashboard_router
from aios.dashboard.tickets import StreamTickets

__all__ = ["StreamTickets", "dashboard_router", "page_router"]
