"""soma demo: a night in a Soma Sanctuary, end to end, on virtual beds (soma.demo.run)."""

import sys
from pathlib import Path

import click

from soma.demo.settings import FAULTS

EPILOG = """\b
Examples:
  soma demo                            8 beds, a night in 2 minutes (about 3.5 minutes in all)
  soma demo --beds 4 --night-minutes 1
  soma demo --inject heater-stuck      the same night with bed 2's heater stuck on mid-night
  soma demo --inject root-loss --out /tmp/night
Faults: """ + ", ".join(FAULTS)


@click.command(epilog=EPILOG)
@click.option("--beds", default=8, show_default=True, type=click.IntRange(1, 16), help="Virtual beds.")
@click.option(
    "--night-minutes",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.5, 60),
    help="The 8-hour night, compressed into this many minutes.",
)
@click.option("--inject", type=click.Choice(list(FAULTS)), help="Inject this fault mid-night.")
@click.option(
    "--out", "out_dir", default="demo-results", show_default=True, type=click.Path(file_okay=False), help="Results."
)
@click.option("--seed", default=1, show_default=True, help="Seed of the units, sleepers and radio.")
def command(beds: int, night_minutes: float, inject: str | None, out_dir: str, seed: int) -> None:
    """Flash blank virtual beds, calibrate and bench-test them, provision a sanctuary, upload
    a night program to one bed, run the night (sleepers, Equal Rest, the Wake-Dream
    Ushering) and report: a summary here, a picture and a web page in OUT. Exit 0 only if
    every bed passed and every figure is within its bar."""
    import time

    from rich.console import Console

    from soma.demo.judging import summary_lines
    from soma.demo.run import run_demo
    from soma.demo.settings import DemoSettings

    console = Console(highlight=False)
    started = time.monotonic()

    def say(text: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f} s[/dim]  {text}")

    settings = DemoSettings(beds=beds, night_minutes=night_minutes, inject=inject, out_dir=Path(out_dir), seed=seed)
    outcome = run_demo(settings, say)
    console.rule("summary")
    for line, ok in summary_lines(outcome):
        console.print(line if ok else f"[bold red]FAIL  {line}[/bold red]")
    stages = ", ".join(f"{name} {seconds:g} s" for name, seconds in outcome.stage_seconds.items())
    console.print(f"[dim]{stages}; {time.monotonic() - started:.0f} s in all[/dim]")
    png, html = outcome.paths
    console.print(f"picture: {png}\nreport:  {html}")
    verdict = "[bold green]PASSED[/bold green]" if outcome.ok else "[bold red]FAILED[/bold red]"
    console.print(verdict + (f" (with {inject} injected)" if inject else ""))
    sys.exit(0 if outcome.ok else 1)
