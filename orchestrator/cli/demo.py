"""`sespcl demo`: a batch of calls through the REST API, a live progress bar, a summary."""

from __future__ import annotations

import time
from collections import Counter

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.client import ApiClient, ApiClientError
from orchestrator.domain.call import FINAL_STATUSES

# Seven in ten answer; the rest show the other outcomes (see the README's trunk table).
MIX = ("demo", "demo", "busy", "demo", "demo", "noanswer", "demo", "demo", "unavailable", "demo")
MESSAGES = (
    "This is a planned maintenance notice. Power in your area will be off tonight from midnight.",
    "Reminder: your appointment is tomorrow at nine in the morning.",
    "Service has been restored in your area. Thank you for your patience.",
)


@click.command()
@click.option("--count", type=click.IntRange(1, 10000), default=30, show_default=True)
@click.option("--trunk", default=None, help="Send every call on this trunk instead of the mix.")
@click.option("--timeout", type=float, default=300, show_default=True, help="Seconds to wait.")
def demo(count: int, trunk: str | None, timeout: float) -> None:
    """Submit COUNT demo calls and follow them to their final status.

    Without --trunk the calls are spread like a real campaign over the stack's test carriers:
    most answer (trunk demo), some are busy, some ring out, some fail (503).
    """
    console = Console()
    client = ApiClient()
    finals = {s.value for s in FINAL_STATUSES}
    ids: list[str] = []
    try:
        with console.status(f"submitting {count} calls"):
            for i in range(count):
                payload: dict[str, object] = {
                    "to": f"+1415555{i % 10000:04d}",
                    "tts": {"text": MESSAGES[i % len(MESSAGES)]},
                    "ring_timeout_s": 8,
                    "metadata": {"demo": True, "n": i},
                    "trunk": trunk or MIX[i % len(MIX)],
                }
                ids.append(client.submit(payload)["id"])
        console.print(f"submitted {len(ids)} calls")
        calls: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + timeout
        columns = (
            TextColumn("[bold]calls"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[states]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("calls", total=len(ids), states="")
            while time.monotonic() < deadline:
                for call_id in ids:
                    if calls.get(call_id, {}).get("status") not in finals:
                        calls[call_id] = client.get(call_id)
                by_status = Counter(str(c["status"]) for c in calls.values())
                done = sum(n for s, n in by_status.items() if s in finals)
                progress.update(
                    task, completed=done, states=" ".join(f"{s}={n}" for s, n in sorted(by_status.items()))
                )
                if done == len(ids):
                    break
                time.sleep(0.5)
    except ApiClientError as exc:
        raise click.ClickException(str(exc)) from exc
    by_status = Counter(str(c["status"]) for c in calls.values())
    table = Table(title="Demo summary")
    table.add_column("status")
    table.add_column("calls", justify="right")
    for status, n in sorted(by_status.items()):
        table.add_row(status, str(n))
    console.print(table)
    answered = [c for c in calls.values() if c.get("answered_at")]
    durations = [float(str(c["duration_s"])) for c in answered if c.get("duration_s") is not None]
    rate = 100.0 * len(answered) / len(ids)
    mean = sum(durations) / len(durations) if durations else 0.0
    console.print(f"answer rate {rate:.1f}%  mean duration {mean:.1f} s  ({len(ids)} calls)")
    if sum(n for s, n in by_status.items() if s in finals) < len(ids):
        raise click.ClickException("some calls did not reach a final status in time")
