"""Reports read back from the store: a plain data model for a period (model.py) and its renderings
(render.py: json, md, csv, html, pdf)."""

from __future__ import annotations

from auditor.report.model import Report, build_report, period_bounds
from auditor.report.render import FORMATS, render

__all__ = ["FORMATS", "Report", "build_report", "period_bounds", "render"]
