"""The dispatch loop (统一分拨, 统一评价): the outbox that hands ready reports to dispatch, the
ratings residents give, and the handling figures. May import the core, ``adapters`` and the task
runner interface (``gateway.tasks.runners``); never HTTP, the console or a channel.
"""
