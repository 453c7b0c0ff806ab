"""Background work: the runner interface (``runners``: ``TaskContext``, ``Retry``, the in-process
and Celery runners), the task table (``table``) and the task modules (``notify``, ``mediafetch``,
``mentions``). Tasks take ids and are idempotent. May import the core, dispatch and the channel
contract; never HTTP, the console or the runtime.
"""
