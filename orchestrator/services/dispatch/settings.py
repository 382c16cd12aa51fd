"""What a dispatcher is configured with, and the fixed timings its steps keep."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.pacing import PacerSettings

HEARTBEAT_S = 2.0
ORPHAN_AFTER_S = 8.0
"""A dispatcher silent this long is taken for dead: its live attempts are adopted."""
ADOPT_EVERY_S = 3.0
EXPIRE_EVERY_S = 2.0
OUTBOX_CHECK_S = 2.0
FOLD_COUNTS_EVERY_S = 60.0
"""The status-count deltas (a few rows per status write) are folded this often."""
RENDER_SWEEP_S = 10.0
"""How often, and after how long, pending prompts are checked for a lost job."""
CANCEL_CHECK_S = 0.5
CAMPAIGN_CANCEL_SWEEP_S = 2.0
"""How often canceled campaigns are looked for queued calls (the background half of a cancel)."""
CAMPAIGN_CANCEL_BATCH = 5000
"""Calls canceled per transaction by that sweep: each batch locks its calls for well under a
second (bench/campaign_control.py), and commits whole."""
NODES_REFRESH_S = 2.0
NODES_CHECK_S = 1.0
OVERDUE_SWEEP_S = 2.0
REQUEUE_EVERY_S = 2.0
RECONCILE_MIN_AGE_S = 5.0
"""Younger attempts may not have a channel yet (Originate in flight)."""
RING_END_MARGIN_S = 5.0
"""A lost node's unanswered call is retried no sooner than its ring timeout plus this."""
CHANNEL_EXPECTED_AFTER_S = 3.0
"""A canceled attempt with no channel seen this long after its Originate is hung up by its id."""
STRAY_AFTER_S = 10.0
"""An attempt of ours still not marked sent this long after its claim was never followed: a
claim marks its attempts within milliseconds, or fails and keeps them as unsent."""
APPLY_GATHER_S = 0.05
"""Transitions wait this long to be stored together: at a few hundred calls a second, one
transaction per transition or two cost more than all the statements in it."""
APPLY_BATCH_MAX = 500
SEND_GROUPS = 4
"""A poll's claims go to Asterisk in this many groups, spread over the poll."""
SEND_SPREAD = 0.75
"""The groups' sends span this share of the poll interval, so the last group is out well before
the next poll plans from the pacers' budgets."""
REFUSED_FOR_AT_MOST_S = 75.0
"""A call the nodes have refused to make a channel for since this long ends `failed`: longer
than a qualify period (60 s) and a node's longest hold (8 s), so a carrier that answers again
is back in use first."""
REFUSED_REASON = (
    f"no node would place it for {REFUSED_FOR_AT_MOST_S:.0f} s (no channel, nothing dialed): "
    "is its trunk reachable?"
)
REFUSED_TRACKED_MAX = 100_000
PING_TIMEOUT_S = 1.5
PING_FAILURES_DOWN = 2
"""Two missed pings a second apart: a hung node is out of the plan within about 3 s."""


@dataclass(frozen=True)
class DispatchSettings:
    poll_s: float
    batch: int
    cps: float
    max_call_s: int
    finalize_grace_s: float
    originate_failure_wait_s: float
    events_flush_s: float
    events_batch_max: int
    node_lost_after_s: float = 10.0
    """A node silent this long, with its AMI and HTTP ports both dead, has lost its calls."""
    pacer: PacerSettings = PacerSettings()
    """How each node's own pace adapts to its Originate latency (AIMD)."""
