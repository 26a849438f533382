"""Topic nodes in the editor: an MQTT topic as a node of the graph, wired to and from task ports.

A spec's edge may start or end at ``topic:some/topic`` (see ``docs/deployments.md``). The graph
view draws each such topic as a node of its own (``ui.graph_view``); here the editor's side
panel adds one (:func:`topic_adder`) and shows a selected one with its wires and a remove button
(:func:`topic_panel`). A topic node that no wire uses yet lives in :attr:`ui.draft.Draft.topics`.
In the Running view, clicking a topic node's dot opens the live inspector of that topic
(:func:`open_topic_inspector`).
"""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from edge.errors import SpecError
from ui.app import Panel
from ui.draft import Draft
from ui.graph_view import TOPIC
from ui.inspector import inspector_dialog

__all__ = ["TOPIC", "is_topic_node", "open_topic_inspector", "topic_adder", "topic_of", "topic_panel"]


def is_topic_node(node_id: object) -> bool:
    return isinstance(node_id, str) and node_id.startswith(TOPIC)


def topic_of(node_id: str) -> str:
    return node_id.removeprefix(TOPIC)


def topic_adder(draft: Draft, on_added: Callable[[str], None]) -> None:
    """An input and a button that add a topic node (``sensors/temp``; ``topic:`` in front is accepted)."""
    with ui.row().classes("w-full items-center no-wrap gap-1"):
        field = ui.input("MQTT topic", placeholder="sensors/temp or sensors/+/temp").props("dense").classes(
            "grow edge-mono").mark("add-topic-name")

        def add() -> None:
            topic = (field.value or "").strip().removeprefix(TOPIC)
            if not topic:
                ui.notify("type a topic first", type="warning")
                return
            try:
                draft.add_topic(topic)
            except SpecError as exc:
                ui.notify(str(exc), type="negative")
                return
            field.value = ""
            on_added(topic)

        field.on("keydown.enter", add)
        ui.button("add topic", icon="add", on_click=add).props("dense").mark("add-topic").tooltip(
            "add a topic node: wire task outputs to it to publish there, wire it to inputs to subscribe")


def topic_panel(draft: Draft, topic: str, on_removed: Callable[[], None]) -> None:
    """The side panel of a selected topic node: what it is, its wires, and a remove button."""
    wildcard = "+" in topic or "#" in topic
    ui.label(f"topic {topic}").classes("text-subtitle2 edge-mono").mark("topic-selected")
    ui.label("A topic filter: wire it to task inputs, which then subscribe to every matching topic."
             if wildcard else
             "An MQTT topic: task outputs wired to it also publish there; inputs wired from it subscribe to it."
             ).classes("text-caption")
    wires = [f"{e.source} → {e.target}" for e in draft.edges if topic in (e.source.topic, e.target.topic)]
    for wire in wires:
        ui.label(wire).classes("edge-mono text-xs")
    if not wires:
        ui.label("no wire yet: drag from an output to its left dot, or from its right dot to an input").classes(
            "text-caption text-grey-7")

    def remove() -> None:
        gone = draft.remove_topic(topic)
        ui.notify(f"removed topic {topic}" + (f" and its {gone} wire{'s' if gone != 1 else ''}" if gone else ""))
        on_removed()

    ui.button("remove topic", icon="delete", on_click=remove).props("flat color=negative").mark("remove-topic")


def open_topic_inspector(panel: Panel, topic: str) -> None:
    """The live inspector of a topic (or filter) in a dialog; closing it unsubscribes."""
    inspector_dialog(panel, title=f"topic {topic}", topic=topic)
