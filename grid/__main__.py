"""``python -m grid import|locate|words …``: the ``gateway grid`` commands before they are mounted."""

from grid.cli import main

raise SystemExit(main())
