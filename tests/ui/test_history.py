"""The editor's history (ui.history) and the draft's snapshots: bounded, coalesced by field and time."""

from __future__ import annotations

from ui.draft import Draft
from ui.history import History


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_edits_of_one_field_coalesce_within_the_window_only():
    clock = Clock()
    history: History[int] = History(window=1.5, clock=clock)
    assert history.record(0, "config:a")
    clock.now = 1.0
    assert not history.record(1, "config:a")  # the same field, soon after: the same step
    clock.now = 2.0
    assert not history.record(2, "config:a")  # the window runs from the last edit
    assert history.record(3, "config:b")  # another field: a step
    clock.now = 10.0
    assert history.record(4, "config:b")  # the same field, later: a step
    assert history.record(5) and history.record(6)  # edits without a key never coalesce
    assert history.undo(7) == 6
    assert history.record(6, "config:b")  # after an undo, a step of its own
    assert not history.can_redo  # and what could be redone is gone
    assert [history.undo(99) for _ in range(6)] == [6, 5, 4, 3, 0, None]


def test_the_history_is_bounded():
    history: History[int] = History(depth=3)
    for i in range(10):
        history.record(i)
    assert len(history) == 3
    assert [history.undo(0) for _ in range(4)] == [9, 8, 7, None]


def test_the_draft_records_only_real_changes_and_undo_redo_restore_everything():
    draft = Draft(id="d")
    before = draft.snapshot()
    assert not draft.record(before)  # nothing changed: no step
    draft.add_task("double")
    draft.positions["double1"] = (5, 6)
    draft.add_note("hello", 1, 2)
    draft.add_group("g", ["double1", "unknown"])
    draft.label = "L"
    assert draft.record(before)
    after = draft.snapshot()
    assert draft.undo() and draft.snapshot() == before and draft.tasks == [] and draft.groups == []
    assert draft.redo() and draft.snapshot() == after
    assert draft.groups[0].tasks == ["double1"]  # only tasks of the draft
    assert not draft.redo()


def test_comment_and_group_changes_are_lines_of_the_diff_and_the_deploy_summary():
    from edge.graph import parse_spec
    from ui.deploy_plan import plan_deploy
    from ui.versions import diff_specs

    tasks = [{"id": "a", "type": "t"}, {"id": "b", "type": "t"}]
    old = parse_spec({"id": "d", "tasks": tasks, "notes": [{"id": "n1", "text": "x"}, {"id": "n2"}],
                      "groups": [{"id": "g1", "tasks": ["a"]}]})
    new = parse_spec({"id": "d", "tasks": tasks, "notes": [{"id": "n1", "text": "y", "x": 5}, {"id": "n3"}],
                      "groups": [{"id": "g1", "label": "L", "tasks": ["a", "b"]}]})
    assert diff_specs(old, new) == ["- comment n2", "+ comment n3", "comment n1: text, x changed",
                                    "group g1: label, tasks changed"]
    assert plan_deploy(old, new).summary() == "2 unchanged, 4 comment or group changes"
    assert diff_specs(new, new) == [] and plan_deploy(new, new).summary() == "none: the draft is what runs"
