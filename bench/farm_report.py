"""The table `make bench-farm` prints: per number of dispatchers, answered calls/s over the steady
part, against the bare loops, and the CPU each part spent per answered call."""

from __future__ import annotations

from dataclasses import dataclass

from bench.farm_campaign import Outcome
from bench.farm_processes import SERVER

ORCHESTRATOR = ("api", "worker", "upkeep")


@dataclass(frozen=True)
class Phase:
    dispatchers: int
    calls: int
    intake_s: float
    intake_cpu: dict[str, float]
    """CPU seconds by part while the campaign was uploaded."""
    outcome: Outcome
    spent: dict[str, float]
    """CPU seconds by part from the campaign's resume to its last event stored."""
    cores_busy: float
    """The machine's cores busy on average over that span, whatever ran them."""
    seconds: float
    """That span."""

    def per_call_ms(self, part: str) -> float:
        return self.spent.get(part, 0.0) / max(self.outcome.answered, 1) * 1e3

    @property
    def orchestrator_ms(self) -> float:
        parts = [p for p in self.spent if p.startswith("dispatcher") or p in ORCHESTRATOR]
        return sum(self.per_call_ms(p) for p in parts)

    @property
    def own_cores(self) -> float:
        """Cores the bench's own processes (and their PostgreSQL sessions) kept busy on average:
        against `cores_busy`, what the machine's other tenants took."""
        return sum(v for k, v in self.spent.items() if k != SERVER) / self.seconds

    @property
    def postgres_ms(self) -> float:
        return sum(self.per_call_ms(p) for p in self.spent if p.startswith("pg:") and p != SERVER)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def print_report(
    phases: list[Phase], *, bare_ami: float, bare_pg: float, farm_ceiling: float, cores: int
) -> None:
    print(
        f"\nsimulated farm, by design: at most {farm_ceiling:,.0f} answered calls/s "
        "(nodes x channels / call length)"
    )
    if bare_ami:
        print(f"bare AMI loop on the simulated farm (no orchestrator): {bare_ami:8,.0f} answered calls/s")
    print(f"bare PostgreSQL loop, one session, least rows a call: {bare_pg:8,.0f} calls/s")
    for phase in phases:
        api_ms = phase.intake_cpu.get("api", 0.0) / phase.calls * 1e3
        pg_ms = sum(v for k, v in phase.intake_cpu.items() if k.startswith("pg:api")) / phase.calls * 1e3
        print(
            f"intake ({phase.dispatchers} disp. run): {phase.calls:,} calls in {phase.intake_s:.1f} s "
            f"({phase.calls / phase.intake_s:,.0f}/s); CPU ms/call: API {api_ms:.3f}, "
            f"its sessions {pg_ms:.3f}"
        )
    print(
        f"\n{'disp.':>5} | {'answered/s':>10} {'/bare AMI':>9} {'/bare PG':>8} | {'accept->final s':>15} | "
        f"{'events/s':>8} {'ev/call':>7} | {'cores busy (ours)':>17} | statuses"
    )
    for p in phases:
        o = p.outcome
        print(
            f"{p.dispatchers:>5} | {o.steady_per_s:10,.0f} {_ratio(o.steady_per_s, bare_ami):>9} "
            f"{_ratio(o.steady_per_s, bare_pg):>8} | {o.accepted_to_final_s:15.1f} | {o.events_per_s:8,.0f} "
            f"{o.events / max(p.calls, 1):7.1f} | {p.cores_busy:5.2f}/{cores} ({p.own_cores:4.2f}) "
            f"| {o.statuses}"
        )
    by = {phase.dispatchers: phase.outcome.steady_per_s for phase in phases}
    if 1 in by and 2 in by:
        print(f"scaling, two dispatchers / one: {_ratio(by[2], by[1])}")
    _print_cpu(phases, cores)


def _print_cpu(phases: list[Phase], cores: int) -> None:
    parts = sorted({part for phase in phases for part in phase.spent})
    print("\nCPU ms per answered call, by part (resume -> last event stored):")
    print(f"{'part':>24} " + " ".join(f"{f'{p.dispatchers} disp.':>9}" for p in phases))
    for part in parts:
        label = f"{part} (shared)" if part == SERVER else part
        print(f"{label:>24} " + " ".join(f"{p.per_call_ms(part):9.3f}" for p in phases))
    print(f"{'orchestrator':>24} " + " ".join(f"{p.orchestrator_ms:9.3f}" for p in phases))
    print(f"{'PostgreSQL (this db)':>24} " + " ".join(f"{p.postgres_ms:9.3f}" for p in phases))
    # What the CPU alone would allow, had the orchestrator and PostgreSQL every core to
    # themselves (the simulated nodes elsewhere, as a farm's are): steady however busy the
    # machine's other tenants keep it, where answered/s is not.
    bound = [cores * 1e3 / max(p.orchestrator_ms + p.postgres_ms, 1e-9) for p in phases]
    print(f"{f'CPU bound on {cores} cores /s':>24} " + " ".join(f"{b:9,.0f}" for b in bound))
    print(
        "answered/s: completed calls / time between the 10th and 90th percentile of their ends; "
        "nodes: the simulated farm's own process (a real farm's is elsewhere)"
    )
