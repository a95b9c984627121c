"""The review's files: ``images.json`` (everything the page shows), ``images.csv`` (the table, worst first) and
``index.html``, one self-contained page (inline script and style, the data embedded: browsers refuse to read a
JSON beside a page opened from the file system) that needs no server and no network.
"""

from __future__ import annotations

import csv
import io
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from seglab.fileio import atomic_path
from seglab.review.kinds import KINDS


def _number(v: Any) -> Any:
    if isinstance(v, float):
        return None if not math.isfinite(v) else round(v, 6)
    return v


def worst_first(rows: list[dict[str, Any]], headline: str) -> list[dict[str, Any]]:
    """Rows by ascending headline (worst first); images without a headline (nothing to score) last, ties by
    descending pixel error."""
    def key(r: dict[str, Any]) -> tuple[int, float, float]:
        v = r.get(headline)
        return (1, 0.0, 0.0) if v is None else (0, v, -(r.get("pixel_error_pct") or 0.0))
    return sorted(rows, key=key)


def csv_columns(record: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(header, getter)`` of each CSV column: the table's columns, per-class IoU spread out."""
    from operator import itemgetter

    def path(*keys: Any) -> Any:
        return lambda r: _dig(r, keys)

    cols: list[tuple[str, Any]] = [("rank", itemgetter("rank")), ("image", itemgetter("stem"))]
    cols += [(c["label"], path(c["key"])) for c in record["columns"]]
    if record["has_kinds"]:
        cols += [(k, path("kinds", k)) for k in KINDS]
    cols += [(f"IoU {name}", path("per_class_iou", j)) for j, name in enumerate(record["classes"])]
    return cols


def _dig(row: dict[str, Any], keys: tuple) -> Any:
    for key in keys:
        if row is None:
            return None
        row = row.get(key) if isinstance(row, dict) else row[key]
    return row


def write_files(out: Path, record: dict[str, Any]) -> dict[str, Path]:
    """Write ``images.json``, ``images.csv`` and ``index.html`` into ``out`` (atomically, each)."""
    record = json.loads(json.dumps(record, default=_number), parse_constant=lambda _: None)
    text = json.dumps(record, separators=(",", ":"), allow_nan=False)
    paths = {"json": out / "images.json", "csv": out / "images.csv", "html": out / "index.html"}
    with atomic_path(paths["json"]) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    buf = io.StringIO()
    writer = csv.writer(buf)
    cols = csv_columns(record)
    writer.writerow([h for h, _ in cols])
    for row in record["images"]:
        writer.writerow(["" if (v := get(row)) is None else v for _, get in cols])
    with atomic_path(paths["csv"]) as tmp:
        Path(tmp).write_text(buf.getvalue(), encoding="utf-8", newline="")
    template = resources.files("seglab.review").joinpath("page.html").read_text(encoding="utf-8")
    safe = text.replace("<", "\\u003c")  # no "</script>" can end the embedded data early
    html = template.replace("__TITLE__", _escape(record["title"])).replace("__DATA__", safe)
    with atomic_path(paths["html"]) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    return paths


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
