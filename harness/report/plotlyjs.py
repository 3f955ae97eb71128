"""plotly.js for the report pages: the vendored cartesian partial bundle (scatter, bar, box:
every trace type the reports draw), inlined gzip-compressed or written once beside the pages.

The full plotly.js is 4.8 MB and was 92% of a one-run report. The cartesian bundle is 1.5 MB,
gzip 0.5 MB; inlined as base64 (0.66 MB) and unpacked by the browser's DecompressionStream,
a page still opens offline from a file. `write_assets(DIR)` writes the plain bundle once for
many reports that load it with a relative <script src>. scripts/vendor_plotly refreshes the
bundle (from npm, at the version the `plotly` Python package was built against).
"""
from __future__ import annotations

import base64
import gzip
import os
from functools import lru_cache
from pathlib import Path

from ..errors import HarnessError

ASSETS = Path(__file__).resolve().parent / "assets"
BUNDLE = ASSETS / "plotly-cartesian.min.js.gz"
LICENSE = ASSETS / "LICENSE-plotly.js"
TRACE_TYPES = frozenset({"bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour",
                         "image", "pie", "scatter", "scatterternary", "violin"})  # the bundle's, per its README


def version() -> str:
    return (ASSETS / "plotly-cartesian.version").read_text().strip()


def asset_name() -> str:
    return f"plotly-cartesian-{version()}.min.js"


@lru_cache(maxsize=1)
def _gzip_bytes() -> bytes:
    try:
        return BUNDLE.read_bytes()
    except OSError as exc:
        raise HarnessError(f"{BUNDLE}: plotly.js bundle missing ({exc.strerror}); run scripts/vendor_plotly") from None


@lru_cache(maxsize=1)
def inline_base64() -> str:
    return base64.b64encode(_gzip_bytes()).decode("ascii")


def write_assets(folder: Path) -> Path:
    """The plain bundle (and its licence) in `folder`, once: an existing identical file is kept."""
    folder = Path(folder)
    target = folder / asset_name()
    text = gzip.decompress(_gzip_bytes())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not (target.is_file() and target.stat().st_size == len(text) and target.read_bytes() == text):
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(text)
            os.replace(tmp, target)
        licence = folder / "LICENSE-plotly.js"
        if not licence.is_file():
            licence.write_bytes(LICENSE.read_bytes())
    except OSError as exc:
        raise HarnessError(f"report assets {folder}: not written: {exc.strerror or exc}") from None
    return target


def check_trace_types(figures) -> None:
    """A figure the bundle cannot draw would be a blank panel in the browser: fail here instead."""
    for fig in figures:
        data = fig["data"] if isinstance(fig, dict) else fig.data
        for trace in data:
            kind = (trace.get("type") if isinstance(trace, dict) else trace.type) or "scatter"
            if kind not in TRACE_TYPES:
                raise HarnessError(f"report: trace type {kind!r} is not in the vendored plotly.js cartesian "
                                   f"bundle ({', '.join(sorted(TRACE_TYPES))})")
