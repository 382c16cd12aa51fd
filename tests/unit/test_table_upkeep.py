"""Which tables need VACUUM or ANALYZE (autovacuum's default rule), and the keeper's decisions."""

from __future__ import annotations

from orchestrator.domain.maintenance import TableActivity, Upkeep, upkeep_due
from orchestrator.services.maintenance import TableKeeper


def _activity(live: int = 10_000, dead: int = 0, inserted: int = 0, modified: int = 0) -> TableActivity:
    return TableActivity("calls", live, dead, inserted, modified)


def test_dead_rows_past_a_fifth_of_the_table_need_vacuum() -> None:
    assert upkeep_due(_activity(dead=2050)) is None  # 50 + 0.2 x 10,000 = 2050: not past it
    assert upkeep_due(_activity(dead=2051)) is Upkeep.VACUUM


def test_an_insert_only_table_is_vacuumed_after_enough_inserts() -> None:
    assert upkeep_due(_activity(inserted=3000)) is None
    assert upkeep_due(_activity(inserted=3001)) is Upkeep.VACUUM


def test_changed_rows_past_a_tenth_need_only_analyze() -> None:
    assert upkeep_due(_activity(modified=1050)) is None
    assert upkeep_due(_activity(modified=1051)) is Upkeep.ANALYZE
    assert upkeep_due(_activity(dead=5000, modified=5000)) is Upkeep.VACUUM  # VACUUM (ANALYZE)


def test_an_empty_table_needs_the_thresholds_only() -> None:
    assert upkeep_due(_activity(live=0, dead=51)) is Upkeep.VACUUM
    assert upkeep_due(_activity(live=-1, dead=50)) is None  # counters not yet collected


class _Store:
    def __init__(self, autovacuum: bool, tables: list[TableActivity], locked: bool = False) -> None:
        self.autovacuum, self.tables, self.locked = autovacuum, tables, locked
        self.ran: list[list[tuple[str, Upkeep]]] = []

    async def autovacuum_on(self) -> bool:
        return self.autovacuum

    async def activity(self) -> list[TableActivity]:
        return self.tables

    async def run(self, work: list[tuple[str, Upkeep]]) -> list[tuple[str, Upkeep, float]] | None:
        self.ran.append(work)
        return None if self.locked else [(table, upkeep, 0.01) for table, upkeep in work]


async def test_with_autovacuum_on_the_keeper_leaves_the_server_to_it() -> None:
    store = _Store(True, [TableActivity("calls", 100, 10_000, 0, 0)])
    assert await TableKeeper(store, 15).step() == []
    assert store.ran == []


async def test_with_autovacuum_off_the_keeper_does_only_the_due_tables() -> None:
    store = _Store(
        False,
        [
            TableActivity("calls", 1000, 5000, 0, 0),
            TableActivity("nodes", 2, 0, 0, 0),
            TableActivity("call_events", 10_000, 0, 0, 2000),
        ],
    )
    done = await TableKeeper(store, 15).step()
    assert store.ran == [[("calls", Upkeep.VACUUM), ("call_events", Upkeep.ANALYZE)]]
    assert [(table, upkeep) for table, upkeep, _ in done] == store.ran[0]


async def test_another_process_holding_the_lock_means_nothing_done_here() -> None:
    store = _Store(False, [TableActivity("calls", 1000, 5000, 0, 0)], locked=True)
    assert await TableKeeper(store, 15).step() == []
