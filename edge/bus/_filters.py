"""Which topic filters a bus subscribes to at the broker.

MQTT 3.1.1 lets a broker send one copy of a message per matching subscription of a client
(rumqttd does; Mosquitto sends one). A bus whose subscriptions overlap (``a/#`` and ``a/b``)
would then deliver duplicates. So the bus subscribes at the broker only to the filters no
other open filter covers, and routes locally to all of them: every message arrives once.

A filter opened under a covering one gets no lasting SUBSCRIBE of its own. To still receive
the retained messages it asks for, it is *probed*: subscribed and unsubscribed right after the
SUBACK (both brokers send retained messages with the SUBACK; re-subscribing the covering
filter would not do: rumqttd ignores a repeated SUBSCRIBE). The retained messages then reach
every local subscription matching them, flagged retained, which is harmless for retained state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FilterSet", "Plan", "covers"]


def covers(outer: str, inner: str) -> bool:
    """Whether every topic matching ``inner`` also matches ``outer``."""
    if outer == inner:
        return True
    if outer.startswith("$share/") or inner.startswith("$share/"):
        return False
    o_levels = outer.split("/")
    i_levels = inner.split("/")
    if o_levels[0] in ("+", "#") and i_levels[0].startswith("$"):
        return False
    for i, o in enumerate(o_levels):
        if o == "#":
            return True
        if i >= len(i_levels):
            return False
        level = i_levels[i]
        if level == "#" or (o != "+" and (level == "+" or level != o)):
            return False
    return len(o_levels) == len(i_levels)


@dataclass(slots=True)
class Plan:
    """What to send the broker after a change, in this order."""

    subscribe: list[tuple[str, int]] = field(default_factory=list)
    unsubscribe: list[str] = field(default_factory=list)
    #: a covered filter to subscribe and unsubscribe at once, for its retained messages
    probe: tuple[str, int] | None = None


class FilterSet:
    """The open filters of a bus (with their QoS) and the subset subscribed at the broker."""

    def __init__(self) -> None:
        self._open: dict[str, tuple[int, int]] = {}  # filter -> (open subscriptions, max qos)
        self.broker: dict[str, int] = {}  # filter -> qos, the maximal filters

    def _maximal(self) -> dict[str, int]:
        # only a filter with a wildcard covers another, so compare against those alone:
        # O(filters x wildcard filters), with exact stream topics the common case
        wild = [f for f in self._open if "+" in f or "#" in f]
        result: dict[str, int] = {}
        for f, (_, own_qos) in self._open.items():
            if any(w != f and covers(w, f) for w in wild):
                continue
            covered = (q for g, (_, q) in self._open.items() if covers(f, g))
            result[f] = max(covered) if f in wild else own_qos
        return result

    def _plan(self, before: dict[str, int]) -> Plan:
        after = self._maximal()
        self.broker = after
        plan = Plan()
        plan.subscribe = [(f, qos) for f, qos in after.items() if before.get(f) != qos]
        plan.unsubscribe = [f for f in before if f not in after]
        return plan

    def add(self, pattern: str, qos: int) -> Plan:
        count, old_qos = self._open.get(pattern, (0, 0))
        self._open[pattern] = (count + 1, max(old_qos, qos))
        plan = self._plan(dict(self.broker))
        if pattern in self.broker:
            if all(f != pattern for f, _ in plan.subscribe):
                plan.subscribe.append((pattern, self.broker[pattern]))  # again, for its retained messages
        else:
            plan.probe = (pattern, qos)
        return plan

    def remove(self, pattern: str) -> Plan:
        count, qos = self._open.get(pattern, (0, 0))
        if count > 1:
            self._open[pattern] = (count - 1, qos)
            return Plan()
        self._open.pop(pattern, None)
        return self._plan(dict(self.broker))
