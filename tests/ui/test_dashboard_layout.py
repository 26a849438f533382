"""The dashboards' layout (pure): tasks on no dashboard go to the first, the arrange edits keep
their bounds, and the chart card draws a bounded number of points that keep the peaks."""

from __future__ import annotations

from edge.graph import DashboardCard, DashboardSpec
from ui.chart_card import downsample, window_options
from ui.dashboard_layout import DEFAULT_ID, Layout


def tasks(layout, index=0):
    return [(c.task, c.w, c.h) for c in layout.boards[index].cards]


def test_without_saved_dashboards_one_holds_every_dashboard_task():
    layout = Layout.of([], {"s": "slider", "p": "plot", "v": "video_viewer"})
    assert [b.id for b in layout.boards] == [DEFAULT_ID]
    assert tasks(layout) == [("s", 1, 1), ("p", 2, 1), ("v", 2, 2)]


def test_tasks_on_no_dashboard_go_to_the_end_of_the_first():
    saved = [DashboardSpec(id="a", cards=[DashboardCard(task="p", w=3)]),
             DashboardSpec(id="b", cards=[DashboardCard(task="s"), DashboardCard(task="gone")])]
    layout = Layout.of(saved, {"s": "slider", "p": "plot", "t": "toggle"})
    assert tasks(layout, 0) == [("p", 3, 1), ("t", 1, 1)]
    assert tasks(layout, 1) == [("s", 1, 1), ("gone", 1, 1)]  # kept: the page draws only dashboard tasks
    assert layout.board("b") is layout.boards[1] and layout.board(None) is layout.boards[0]
    assert layout.board("c") is None


def test_arranging_stays_within_bounds():
    layout = Layout.of([], {"a": "slider", "b": "toggle"})
    board = layout.boards[0]
    assert not layout.move(board, "a", -1) and layout.move(board, "a", 1) and not layout.move(board, "a", 1)
    assert tasks(layout) == [("b", 1, 1), ("a", 1, 1)]
    assert layout.place(board, "a", "b") and [c.task for c in board.cards] == ["a", "b"]  # dropped on b
    assert layout.place(board, "a", "b") and [c.task for c in board.cards] == ["b", "a"]
    assert not layout.place(board, "a", "a")
    assert not layout.resize(board, "a", dw=-1)
    for _ in range(3):
        assert layout.resize(board, "a", dw=1, dh=1)
    assert not layout.resize(board, "a", dw=1) and not layout.resize(board, "a", dh=1)
    assert tasks(layout)[1] == ("a", 4, 4)
    other = layout.add("Second one!")
    assert other is not None and other.id == "second_one" and other.label == "Second one!"
    assert layout.add("Second one!").id == "second_one2"
    assert layout.move_to(board, "b", "second_one") and not layout.move_to(board, "a", "nothing")
    assert not layout.move_to(board, "a", board.id)
    assert tasks(layout, 1) == [("b", 1, 1)]
    assert layout.remove(other) and tasks(layout) == [("a", 4, 4), ("b", 1, 1)]
    layout.remove(layout.boards[-1])
    assert len(layout.boards) == 1 and not layout.remove(layout.boards[0])
    while layout.add("x") is not None:
        pass
    assert len(layout.boards) == 16
    assert [spec.id for spec in layout.specs()][:1] == [DEFAULT_ID]


def test_downsampling_bounds_the_points_and_keeps_the_peaks():
    points = [[float(t), 100.0 if t == 5000 else float(t % 3)] for t in range(10_000)]
    drawn = downsample(points, 0, 9999, limit=100)
    assert len(drawn) <= 100 and [5000.0, 100.0] in drawn
    assert [p[0] for p in drawn] == sorted(p[0] for p in drawn)
    assert downsample(points, 9990, 9999) == points[9990:]


def test_the_windows_offered_are_those_within_the_task_window():
    assert window_options(60_000) == {0: "60 s"}
    assert window_options(600_000) == {60_000: "1 min", 0: "all 10 min"}
    assert window_options(86_400_000) == {60_000: "1 min", 600_000: "10 min", 3_600_000: "1 h", 0: "all 24 h"}


def test_a_layout_change_is_a_line_of_the_versions_diff():
    from edge.graph import parse_spec
    from ui.versions import diff_specs

    before = parse_spec({"id": "d", "tasks": [{"id": "s", "type": "slider"}]})
    after = parse_spec({**before.to_dict(), "dashboards": [{"id": "main", "cards": [{"task": "s", "w": 2}]}]})
    assert diff_specs(before, after) == ['dashboards "none" → "main: s 2x1"']
    assert diff_specs(after, after) == []


def test_a_draft_carries_the_dashboards_and_drops_the_cards_of_a_removed_task():
    from edge.graph import parse_spec
    from ui.draft import Draft

    spec = parse_spec({"id": "d", "tasks": [{"id": "s", "type": "slider"}, {"id": "t", "type": "toggle"}],
                       "dashboards": [{"id": "main", "cards": [{"task": "s", "w": 3}, {"task": "t"}]}]})
    draft = Draft.from_spec(spec)
    assert draft.to_spec() == spec
    draft.remove_task("s")
    assert [c.task for c in draft.to_spec().dashboards[0].cards] == ["t"]
    assert "dashboards" not in Draft(id="e").to_data()
