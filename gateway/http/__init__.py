"""The HTTP surface: ``create_app`` and one module per public API.

Every way in goes through ``edge`` (capped read, caller error → status, idempotency, verify →
parse → intake): the generic channel endpoint, the web form and JSON API, Open311. May import
the core, dispatch, tasks' notify, the console (to mount it) and the channel contract and
registry; the runtime is built through ``gateway.runtime``.
"""
