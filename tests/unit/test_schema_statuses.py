"""schema.sql and the domain say the same about statuses: the rank the SQL re-checks on every
write (`sespcl_status_rank`) and the values the tables' CHECKs allow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.domain.call import CallStatus
from orchestrator.domain.campaign import CampaignStatus

SCHEMA = (Path(__file__).resolve().parents[2] / "schema.sql").read_text(encoding="utf-8")


def _schema_ranks() -> tuple[dict[str, int], int]:
    """(the rank of each status the CASE names, the ELSE rank)."""
    function = re.search(r"FUNCTION sespcl_status_rank\(.*?\$\$(.*?)\$\$", SCHEMA, re.S)
    assert function is not None, "sespcl_status_rank is not in schema.sql"
    body = function.group(1)
    named = {status: int(rank) for status, rank in re.findall(r"WHEN '([^']+)' THEN (\d+)", body)}
    otherwise = re.search(r"ELSE (\d+)", body)
    assert named and otherwise is not None, body
    return named, int(otherwise.group(1))


def _check_values(table: str) -> set[str]:
    """The values `status` may take in `table`, from its CHECK."""
    create = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", SCHEMA, re.S)
    assert create is not None, table
    check = re.search(r"\n\s*status\s+text[^\n]*CHECK \(status IN\s*\((.*?)\)\)", create.group(1), re.S)
    assert check is not None, table
    return set(re.findall(r"'([^']+)'", check.group(1)))


@pytest.mark.parametrize("status", list(CallStatus))
def test_the_sql_rank_is_the_domain_rank(status: CallStatus) -> None:
    named, otherwise = _schema_ranks()
    assert named.get(status.value, otherwise) == status.rank


def test_the_sql_rank_names_only_statuses() -> None:
    named, _ = _schema_ranks()
    assert set(named) <= {s.value for s in CallStatus}


def test_the_tables_allow_exactly_the_domain_statuses() -> None:
    assert _check_values("calls") == {s.value for s in CallStatus}
    assert _check_values("campaigns") == {s.value for s in CampaignStatus}
