"""When a table needs VACUUM or ANALYZE: PostgreSQL's own autovacuum rule. Pure: no I/O.

The dispatcher applies it only on a server whose autovacuum is off (some CI and hand-tuned
servers are set so). The workload rewrites each call's row three or four times; unvacuumed, the
dead rows bloat `calls` and its indexes, and claims and status writes slow down run after run.
Measured on such a server at 200 calls/s: 189,000 dead rows in `calls`, PostgreSQL CPU in the
dispatcher's sessions 1.39 ms per call, end to end 0.79 of the bare loop; after one VACUUM,
0.96 ms and 0.98-0.99.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Upkeep(str, Enum):
    VACUUM = "vacuum"
    """VACUUM (ANALYZE): dead rows to reclaim, or enough inserts to set the visibility map."""
    ANALYZE = "analyze"
    """Only fresh statistics: enough rows changed for the planner's estimates to drift."""


@dataclass(frozen=True)
class TableActivity:
    table: str
    live_rows: int
    dead_rows: int
    inserted_since_vacuum: int
    modified_since_analyze: int


@dataclass(frozen=True)
class UpkeepRule:
    """PostgreSQL's autovacuum defaults (autovacuum_vacuum_threshold, _scale_factor, ...)."""

    vacuum_threshold: int = 50
    vacuum_scale: float = 0.2
    insert_threshold: int = 1000
    insert_scale: float = 0.2
    analyze_threshold: int = 50
    analyze_scale: float = 0.1


def upkeep_due(activity: TableActivity, rule: UpkeepRule = UpkeepRule()) -> Upkeep | None:
    live = max(activity.live_rows, 0)
    if activity.dead_rows > rule.vacuum_threshold + rule.vacuum_scale * live:
        return Upkeep.VACUUM
    if activity.inserted_since_vacuum > rule.insert_threshold + rule.insert_scale * live:
        return Upkeep.VACUUM
    if activity.modified_since_analyze > rule.analyze_threshold + rule.analyze_scale * live:
        return Upkeep.ANALYZE
    return None
