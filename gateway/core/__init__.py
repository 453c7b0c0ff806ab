"""The intake core: messages in, reports through their lifecycle.

Units of work (``units``), intake (``intake``, the hot path), the lifecycle table and its moves
(``lifecycle``, ``transitions``), triage and classification (``triage``, ``classify``,
``duplicates``, ``reviews``, ``retrain``), sweeping (``sweeping``), case numbers, the published
report schema and resident-facing replies; ``Pipeline`` assembles them. May import the foundation
(``gateway.models``, ``settings``, ``db``, …) and ``nlp``; never HTTP, tasks, dispatch or channels.
"""
