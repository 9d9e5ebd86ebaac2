"""The report of `soma demo` on one simulated night (soma.demo.night_report), written as a
picture (soma.demo.picture) and a self-contained HTML page that embeds it (soma.demo.page).
"""

from pathlib import Path

from soma.demo.night_report import NightReport
from soma.demo.page import write_html
from soma.demo.picture import draw_png
from soma.errors import SomaError

PNG_NAME = "night.png"
HTML_NAME = "night.html"


def write_report(report: NightReport, directory: str | Path) -> tuple[Path, Path]:
    """Write night.png and night.html into `directory` (created if missing); returns (png_path, html_path)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SomaError(f"{directory}: cannot write the report ({exc.strerror or exc})") from None
    png_path = draw_png(report, directory / PNG_NAME)
    html_path = write_html(report, png_path, directory / HTML_NAME)
    return png_path, html_path
