"""The table ``dragoman batch`` prints when a job ends: documents done and failed (this run
and the whole job), failures by code (read back from the errors file, so resumed jobs count
every run), characters per second and wall time."""

from __future__ import annotations

import gzip
import json
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dragoman.server.batchjob.runner import RunReport

logger = logging.getLogger(__name__)


def error_codes(path: str | None) -> Counter[str]:
    """Failures by code in an errors file (empty when there is none, or it is remote)."""
    codes: Counter[str] = Counter()
    if not path or "://" in path or not Path(path).is_file():
        return codes
    opener: Any = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line of an interrupted run
                if isinstance(record, dict):
                    codes[str(record.get("code") or "UNKNOWN")] += 1
    except OSError as exc:
        logger.warning("cannot read %s for the summary: %s", path, exc)
    return codes


def wall_time(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def report_table(report: RunReport, codes: Counter[str] | None = None) -> str:
    """The table for a :class:`~dragoman.server.batchjob.runner.RunReport`."""
    rate = report.chars / report.seconds if report.seconds > 0 else 0.0
    rows: list[tuple[str, str, str]] = [
        ("documents", f"{report.done + report.failed:,}",
         f"{report.total_done + report.total_failed:,}"),
        ("  done", f"{report.done:,}", f"{report.total_done:,}"),
        ("  failed", f"{report.failed:,}", f"{report.total_failed:,}"),
    ]
    for code, count in sorted((codes or Counter()).items(), key=lambda kv: (-kv[1], kv[0])):
        rows.append((f"    {code}", "", f"{count:,}"))
    if report.skipped:
        rows.append(("skipped (done before)", f"{report.skipped:,}", ""))
    if report.total_blocks:  # a Ray job: its unit of work
        rows += [("blocks", f"{report.blocks:,}", f"{report.total_blocks:,}"),
                 ("  failed blocks", f"{report.failed_blocks:,}",
                  f"{report.total_failed_blocks:,}")]
    docs_rate = (report.done + report.failed) / report.seconds if report.seconds > 0 else 0.0
    rows += [
        ("documents/s", f"{docs_rate:,.1f}", ""),
        ("characters", f"{report.chars:,}", ""),
        ("characters/s", f"{rate:,.0f}", ""),
        ("wall time", wall_time(report.seconds), ""),
    ]
    header = ("batch summary", "this run", "job total")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}".rstrip()
             for a, b, c in (header, *rows)]
    return "\n".join(lines)
