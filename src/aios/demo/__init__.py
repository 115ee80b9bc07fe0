"""The demo pipeline that ``make demo`` runs through the control plane."""

from aios.demo.run import demo_pipeline, run_demo

__all__ = ["demo_pipeline", "run_demo"]
