"""Which snapshots a retention policy keeps: restic's ``forget --keep-last/--keep-daily``.

Pure: snapshots in, the kept and the removed out; the caller forgets the removed ones.
As restic does, snapshots are grouped (here: per dataset, per label set, else per source
paths) and each group is walked newest first. ``keep_last`` keeps the N newest;
``keep_daily`` keeps the newest snapshot of each of the N most recent days that have
one. A snapshot any rule keeps is kept. No rule at all is refused rather than read as
"keep nothing".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aios.data.model import Snapshot
from aios.errors import InvalidInput

__all__ = ["Policy", "Retention", "apply_policy", "group_of"]


@dataclass(frozen=True, slots=True)
class Policy:
    """How many snapshots to keep per group: the last N, and one for each of N days."""

    keep_last: int = 0
    keep_daily: int = 0

    def __post_init__(self) -> None:
        if self.keep_last < 0 or self.keep_daily < 0:
            raise InvalidInput("--keep-last and --keep-daily must not be negative")
        if not self.keep_last and not self.keep_daily:
            raise InvalidInput("give --keep-last N or --keep-daily N: no policy keeps nothing")


@dataclass(frozen=True, slots=True)
class Retention:
    """The verdict on every snapshot: ``keep`` and ``remove``, each newest first."""

    keep: tuple[Snapshot, ...]
    remove: tuple[Snapshot, ...]


def group_of(snapshot: Snapshot) -> tuple[str, ...]:
    """The group a snapshot is retained within: its dataset, or its label set, else its
    source paths (restic's default grouping, without the host)."""
    meta = snapshot.meta
    if "labels" in meta:
        return ("labels", str(meta.get("dataset")), str(meta["labels"]))
    if "dataset" in meta:
        return ("dataset", str(meta["dataset"]))
    return ("paths", *sorted(snapshot.paths))


def apply_policy(snapshots: Sequence[Snapshot], policy: Policy) -> Retention:
    """Applies ``policy`` to ``snapshots`` group by group."""
    groups: dict[tuple[str, ...], list[Snapshot]] = {}
    for snapshot in snapshots:
        groups.setdefault(group_of(snapshot), []).append(snapshot)
    keep: list[Snapshot] = []
    remove: list[Snapshot] = []
    for members in groups.values():
        last, daily = policy.keep_last, policy.keep_daily
        last_day: str | None = None
        for snapshot in sorted(members, key=lambda s: (s.time, s.id), reverse=True):
            kept = False
            if last > 0:
                last -= 1
                kept = True
            day = snapshot.time.date().isoformat()
            if daily > 0 and day != last_day:
                daily -= 1
                last_day = day
                kept = True
            (keep if kept else remove).append(snapshot)

    def newest_first(found: list[Snapshot]) -> tuple[Snapshot, ...]:
        return tuple(sorted(found, key=lambda s: (s.time, s.id), reverse=True))

    return Retention(keep=newest_first(keep), remove=newest_first(remove))
