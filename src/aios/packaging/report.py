"""What an edge export measured: per variant of the model, its size, its median latency
on the sample and how far its outputs are from the original's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["EdgeReport", "OutputDifference", "Variant"]


@dataclass(frozen=True, slots=True)
class OutputDifference:
    """One output of a variant against the original's on the same sample. A floating
    output (scores, probabilities) has ``max_abs``, its largest absolute difference; any
    other (labels, strings) has ``mismatched``, how many of its ``elements`` differ."""

    output: str
    elements: int
    max_abs: float | None = None
    mismatched: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "elements": self.elements,
            "max_abs": self.max_abs,
            "mismatched": self.mismatched,
        }

    def describe(self) -> str:
        """``probabilities max 0.012`` or ``label 3/64 differ``."""
        if self.max_abs is not None:
            return f"{self.output} max {self.max_abs:.3g}"
        return f"{self.output} {self.mismatched}/{self.elements} differ"


@dataclass(frozen=True, slots=True)
class Variant:
    """One form of the model (the original, ONNX fp32, ONNX int8) as measured."""

    name: str
    size_bytes: int
    median_latency_ms: float
    differences: tuple[OutputDifference, ...]

    @property
    def max_abs_difference(self) -> float | None:
        """The largest absolute difference over the floating outputs; None for the
        original, or when no output is floating."""
        values = [d.max_abs for d in self.differences if d.max_abs is not None]
        return max(values) if values else None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size_bytes": self.size_bytes,
            "median_latency_ms": self.median_latency_ms,
            "max_abs_difference": self.max_abs_difference,
            "outputs": [difference.to_json() for difference in self.differences],
        }


@dataclass(frozen=True, slots=True)
class EdgeReport:
    """The report of one export: ``exported`` names the variant written as the
    bundle's model; ``variants`` start with the original."""

    model: str
    format: str
    exported: str
    sample_shapes: dict[str, list[int]]
    runs: int
    variants: tuple[Variant, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "format": self.format,
            "exported": self.exported,
            "sample_shapes": self.sample_shapes,
            "runs": self.runs,
            "variants": [variant.to_json() for variant in self.variants],
        }

    def table(self) -> str:
        """A Markdown table: one row per variant, sizes and latencies with the ratio to
        the original's, differences per output (``max |Δ|``, and elements that differ)."""
        original = self.variants[0]
        lines = [
            f"{self.model} ({self.format}), sample {self.sample_shapes}, median of {self.runs}",
            "",
            "| variant | size | size / original | latency ms | latency / original "
            "| max abs diff | per output |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for variant in self.variants:
            largest = variant.max_abs_difference
            differing = ", ".join(d.describe() for d in variant.differences)
            marker = " (written)" if variant.name == self.exported else ""
            lines.append(
                f"| {variant.name}{marker} | {_bytes(variant.size_bytes)} "
                f"| {variant.size_bytes / original.size_bytes:.2f} "
                f"| {variant.median_latency_ms:.3f} "
                f"| {variant.median_latency_ms / original.median_latency_ms:.2f} "
                f"| {'' if largest is None else f'{largest:.3g}'} | {differing} |"
            )
        return "\n".join(lines)


def _bytes(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1 << 20:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1 << 20):.2f} MiB"
