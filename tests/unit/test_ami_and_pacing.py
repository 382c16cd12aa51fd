import pytest

from orchestrator.asterisk.ami import UnsafeHeaderValue, header_value, originate_action
from orchestrator.domain.dialing import OriginateRequest
from orchestrator.domain.planning import NodeLoad, TokenBucket, plan_nodes, trim_to_room
from tests.unit.factories import originate_request


def _request(**overrides: str) -> OriginateRequest:
    return originate_request(**overrides)


def test_originate_action_sets_channel_id_to_attempt() -> None:
    action = originate_action(_request())
    assert action["ChannelId"] == action["ActionID"] == "a1b2"
    assert action["Channel"] == "PJSIP/+14155550123@demo"
    assert action["Context"] == "sespcl-outbound" and action["Async"] == "true"
    assert "SESPCL_AUDIO=/var/lib/sespcl/audio/abc" in action["Variable"]


def test_a_comma_in_a_variable_cannot_set_another_variable() -> None:
    """Asterisk splits a Variable header at bare commas: escaped, the value stays one value."""
    action = originate_action(_request(audio_path="/var/lib/sespcl/audio/x,SESPCL_CONTEXT=default"))
    assert "SESPCL_AUDIO=/var/lib/sespcl/audio/x\\,SESPCL_CONTEXT=default" in action["Variable"]
    assert not any(v.startswith("SESPCL_CONTEXT") for v in action["Variable"])


@pytest.mark.parametrize("field", ["to", "trunk", "caller_id", "audio_path", "attempt_id"])
@pytest.mark.parametrize("bad", ["\n", "\r\n", "\r", "\x00"])
def test_no_line_break_reaches_ami(field: str, bad: str) -> None:
    with pytest.raises(UnsafeHeaderValue):
        originate_action(_request(**{field: f"x{bad}Action: Hangup"}))


def test_header_value_passes_plain_text() -> None:
    assert header_value("PJSIP/+1@demo") == "PJSIP/+1@demo"


def test_plan_prefers_least_loaded_usable_nodes() -> None:
    loads = [
        NodeLoad("n1", live=5, max_channels=10, up=True, drained=False),
        NodeLoad("n2", live=2, max_channels=10, up=True, drained=False),
        NodeLoad("n3", live=0, max_channels=10, up=False, drained=False),
        NodeLoad("n4", live=0, max_channels=10, up=True, drained=True),
    ]
    plan = plan_nodes(loads, 6)
    assert plan.count("n2") == 4 and plan.count("n1") == 2
    assert "n3" not in plan and "n4" not in plan


def test_plan_respects_channel_limits() -> None:
    loads = [NodeLoad("n1", live=9, max_channels=10, up=True, drained=False)]
    assert plan_nodes(loads, 5) == ["n1"]


def test_a_plan_is_trimmed_to_the_farm_wide_room_in_order() -> None:
    plan = ["n1", "n2", "n1", "n2", "n1", "n3"]
    # n1 has 2 channels free across every dispatcher, n2 none (another dispatcher filled it),
    # n3 is gone from the database.
    assert trim_to_room(plan, {"n1": 2, "n2": 0}) == ["n1", "n1"]
    assert trim_to_room(plan, {"n1": 9, "n2": 9, "n3": 9}) == plan
    assert trim_to_room(plan, {"n1": -3}) == []


def test_token_bucket_paces() -> None:
    bucket = TokenBucket(2.0, now=0.0)
    assert bucket.available(0.0) == 2
    bucket.take(2, 0.0)
    assert bucket.available(0.1) == 0
    assert bucket.available(0.5) == 1
    assert bucket.available(10.0) == 2


def test_trunk_budget_holds_channels_and_cps() -> None:
    from orchestrator.domain.limits import TrunkLimits, cps_window_s, trunk_budget

    unlimited = TrunkLimits("a", None, None)
    assert trunk_budget(unlimited, live=100, started_in_window=100, wanted=7) == 7
    channels = TrunkLimits("b", max_channels=2, cps=None)
    assert trunk_budget(channels, live=0, started_in_window=0, wanted=6) == 2
    assert trunk_budget(channels, live=2, started_in_window=0, wanted=6) == 0
    assert trunk_budget(channels, live=3, started_in_window=0, wanted=6) == 0
    paced = TrunkLimits("c", max_channels=None, cps=2)
    assert trunk_budget(paced, live=0, started_in_window=1, wanted=6) == 1
    assert trunk_budget(paced, live=0, started_in_window=2, wanted=6) == 0
    slow = TrunkLimits("d", max_channels=None, cps=0.5)
    assert trunk_budget(slow, live=0, started_in_window=0, wanted=6) == 1
    assert cps_window_s(0.5) > cps_window_s(2) >= 1.0


def test_take_fairly_interleaves_campaigns() -> None:
    from datetime import UTC, datetime, timedelta

    from orchestrator.persistence.dispatch import take_fairly

    start = datetime(2026, 1, 1, tzinfo=UTC)

    def rows(name: str, count: int, offset_s: int) -> list[dict[str, object]]:
        return [
            {"id": f"{name}{i}", "not_before": start + timedelta(seconds=offset_s + i)} for i in range(count)
        ]

    big, small = rows("big", 40, 0), rows("small", 3, 100)
    taken = take_fairly([big, small], budget=6)
    assert [r["id"] for r in taken] == ["big0", "small0", "big1", "small1", "big2", "small2"]
    assert [r["id"] for r in take_fairly([small, big], budget=8)][-2:] == ["big3", "big4"]
    assert take_fairly([], budget=5) == []
