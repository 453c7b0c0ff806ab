"""Where the imported grid lives: one GeoJSON file under the var dir, in WGS-84.

A file, not a database table: the grid is read whole at start-up into the in-memory index
anyway, changes a few times a year by a full re-import, and a file keeps the import independent
of the database schema. ``import_grid`` validates first and replaces the stored file
atomically, so a bad file never replaces a good grid; the previous grid is kept beside it
(``grid.prev.geojson``). Without an import, the bundled Longhua sample is used.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from grid.index import SAMPLE_PATH, GridIndex
from grid.units import feature_collection, parse_feature_collection


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import stored: counts per level (Chinese labels) and where."""

    units: int
    per_level: dict[str, int]
    source_datum: str
    stored_at: Path


def default_store_path(var_dir: str | os.PathLike[str] | None = None) -> Path:
    """``$GATEWAY_VAR_DIR/grid/grid.geojson`` (the var dir defaults to ``var``, as the gateway's)."""
    base = Path(var_dir if var_dir is not None else os.environ.get("GATEWAY_VAR_DIR", "var"))
    return base / "grid" / "grid.geojson"


def read_grid_file(path: str | os.PathLike[str]) -> tuple[dict[str, object], str]:
    """The parsed JSON of a grid file and its declared datum; ValueError if it is not JSON."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    datum = str(doc.get("datum") or "wgs84") if isinstance(doc, dict) else "wgs84"
    return doc, datum


def import_grid(source: str | os.PathLike[str], store: str | os.PathLike[str], dry_run: bool = False) -> ImportSummary:
    """Validate ``source`` (GridImportError lists its problems) and store it at ``store`` in WGS-84."""
    doc, datum = read_grid_file(source)
    units = parse_feature_collection(doc)
    GridIndex(units)  # the index must build (it does for any valid file; this is the last check)
    target = Path(store)
    if not dry_run:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(feature_collection(units), ensure_ascii=False) + "\n", encoding="utf-8")
        if target.exists():
            os.replace(target, target.with_name("grid.prev.geojson"))
        os.replace(tmp, target)
    per_level = Counter(u.level.label for u in units)
    return ImportSummary(len(units), dict(per_level), datum, target)


def load_index(store: str | os.PathLike[str] | None = None) -> GridIndex:
    """The imported grid at ``store`` (default ``default_store_path()``), else the bundled sample."""
    path = Path(store) if store is not None else default_store_path()
    return GridIndex.load(path if path.exists() else SAMPLE_PATH)
