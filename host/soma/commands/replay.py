"""soma replay: a raw bed-sensor recording through the firmware's sensing pipeline."""

import json

import click

EPILOG = """\b
Examples:
  soma sim record --bed 1 --seconds 600 night.csv   record a virtual bed's sensor
  soma replay night.csv                              one JSON object per 30 s epoch
  soma replay night.csv --plot night.png             and a picture of signal and estimates
  soma replay scope.csv --column ch1 --rate 250      another file's column, resampled
  soma replay night.csv --zero -212 --gain 1.043     with the unit's BCG calibration
"""


@click.command(epilog=EPILOG)
@click.argument("recording", type=click.Path(dir_okay=False))
@click.option("--column", help="Column of raw ADC codes (default: bcg).")
@click.option(
    "--rate", "rate_hz", type=click.FloatRange(min=1, max=100_000), help="Sample rate, Hz (default: time_s, or 100)."
)
@click.option("--zero", default=0, show_default=True, type=click.IntRange(-32768, 32767), help="BCG zero, codes.")
@click.option("--gain", default=1.0, show_default=True, type=click.FloatRange(0.5, 2.0), help="BCG gain correction.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Also draw signal and estimates (PNG).")
def command(
    recording: str, column: str | None, rate_hz: float | None, zero: int, gain: float, plot_path: str | None
) -> None:
    """Run RECORDING (CSV: a header, raw BCG codes) through the firmware's own sensing
    pipeline under MicroPython (96 KiB heap) and print what it reports per epoch: presence,
    movement, breathing and heart rate (null when not valid), sleep state. The file is
    read once, row by row: a night of any length in bounded memory."""
    from soma.sensing.replay import EPOCH_S, read_recording, run_pipeline_file

    with read_recording(recording, column=column, rate_hz=rate_hz) as loaded:
        epochs, _ = run_pipeline_file(loaded.codes_path, zero=zero, gain=gain)
        for epoch in epochs:
            click.echo(json.dumps(epoch))
        tail_s = loaded.seconds - len(epochs) * EPOCH_S
        if tail_s > 0:
            too_short = f"the last {tail_s:g} s are too short for a {EPOCH_S} s epoch: not reported"
            click.echo(f"{recording}: {too_short}", err=True)
        if plot_path:
            from soma.sensing.plot import plot_replay

            plot_replay(loaded, epochs, plot_path)
            click.echo(f"plot: {plot_path}", err=True)
