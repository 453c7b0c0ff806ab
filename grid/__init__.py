"""Grid management (网格化): the city's grid units, and placing a report in them.

What it owns: grid units as data (``units``: the import format and its validation), where the
imported grid is stored (``store``), the loaded spatial index and point/address lookups
(``index``, ``gazetteer``, ``match``), coordinate datums (``datum``), routing scopes on grid units
(``routing``), the ``grid`` CLI commands (``cli``) and synthetic grids (``synthetic``).

What it may import: shapely, numpy, jieba, PyYAML; nothing of the project. The gateway calls it,
never the other way round (see docs/grid.md, "Integration").
"""

from grid.datum import CHANNEL_DATUMS, Datum, gcj02_to_wgs84, wgs84_to_gcj02
from grid.index import GridIndex
from grid.match import GridMatch, Method, PathStep
from grid.routing import GridScope
from grid.store import default_store_path, import_grid, load_index
from grid.units import GridImportError, GridUnit, ImportProblem, Level, parse_feature_collection

__all__ = [
    "CHANNEL_DATUMS",
    "Datum",
    "GridImportError",
    "GridIndex",
    "GridMatch",
    "GridScope",
    "GridUnit",
    "ImportProblem",
    "Level",
    "Method",
    "PathStep",
    "default_store_path",
    "gcj02_to_wgs84",
    "import_grid",
    "load_index",
    "parse_feature_collection",
    "wgs84_to_gcj02",
]
