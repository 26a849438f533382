"""Built-in task types. Each is written exactly as a third party would write one, on ``edge`` only.

Modules by concept: ``calculator`` (on the ``formula`` language), ``logic``, ``timing``,
``timestamps``, ``replay``, ``text``, ``named``, ``bridges`` (on ``payloads``), and the dashboard
tasks ``controls`` and ``displays`` (on the panel contract of ``dashboard``); ``base`` and
``ordering`` hold what they share. ``tasks.builtin.TYPES`` lists them all for the ``builtin``
entry point. Importing ``tasks`` alone loads none of them.
"""

__all__: list[str] = []
