"""`sespcl report CAMPAIGN --out FILE`: a campaign's report, as a chart (.png) or a row per call
(.csv)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import click

from orchestrator.cli.output import database
from orchestrator.domain.report import CSV_COLUMNS, ReportFormat, shape_report
from orchestrator.persistence.report import ReportStore
from orchestrator.report_files import atomic_file, write_calls_csv


@dataclass(frozen=True)
class ReportTarget:
    path: Path
    format: ReportFormat


class _ReportFile(click.ParamType[ReportTarget]):
    """A file name whose extension says what to write: a usage error (exit 2) otherwise."""

    name = "report file"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> ReportTarget:
        if isinstance(value, ReportTarget):
            return value
        path = Path(str(value))
        found = ReportFormat.of(path.name)
        if found is None:
            self.fail(
                f"{str(value)!r}: its extension says what to write, .png (the chart) or .csv (the calls)",
                param,
                ctx,
            )
        if path.is_dir():
            self.fail(f"{str(value)!r} is a directory", param, ctx)
        return ReportTarget(path, found)


@click.command("report")
@click.argument("campaign", type=click.UUID)
@click.option(
    "--out",
    "target",
    type=_ReportFile(),
    metavar="FILE.png|FILE.csv",
    required=True,
    help="Where to write it: FILE.png draws calls per minute by outcome, the answer rate by hour "
    f"and the keys pressed; FILE.csv writes a row per call ({', '.join(CSV_COLUMNS)}).",
)
def report(campaign: UUID, target: ReportTarget) -> None:
    """A campaign's report, for people: a chart or a spreadsheet of its calls. Written whole or
    not at all (an older FILE stays as it was if this one fails)."""
    with database() as conn:
        store = ReportStore(conn)
        heading = store.heading(campaign)  # no such campaign: one line, exit 1
        try:
            if target.format is ReportFormat.CSV:
                written = write_calls_csv(store.call_lines(campaign), target.path)
                what = f"{written:,} call{'' if written == 1 else 's'}"
            else:
                # matplotlib is loaded only here: every other command starts without it.
                from orchestrator.report_chart import render_png

                shaped = shape_report(store.figures(campaign))
                with atomic_file(target.path) as out:
                    render_png(shaped, out)
                what = "the chart"
        except OSError as exc:
            raise click.ClickException(f"cannot write {target.path}: {exc.strerror or exc}") from exc
    click.echo(f"{target.path}: {what} of campaign “{heading.name}” ({heading.id})")
