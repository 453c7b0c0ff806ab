"""Grid management (网格化): the city's grid units, and placing a report in them.

What it owns: grid units as data (``units``: the import format and its validation), where the
imported grid is stored (``store``), the loaded spatial index and point/address lookups
(``index``, ``gazetteer``), coordinate datums (``datum``), routing scopes on grid units
(``routing``), the ``grid`` CLI commands (``cli``) and synthetic grids (``synthetic``).

What it may import: shapely, numpy, jieba, PyYAML; nothing of the project. The gateway calls it,
never the other way round (see docs/grid.md, "Integration").
"""
