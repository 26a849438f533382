"""The live table pages, sorts and filters all rows on the server; the browser holds one page."""

from __future__ import annotations

from nicegui import ElementFilter, ui

from ui.live_table import Column, LiveTable

COLUMNS = (Column(name="id", label="Agent"), Column(name="status", label="Status", kind="badge"),
           Column(name="cpu", label="CPU", kind="spark", unit=" %"))


def rows(count: int, *, cpu_of=lambda k: float(k % 7)) -> list[dict]:
    return [{"id": f"agent-{k:05d}", "status": {"text": "online" if k % 3 else "offline", "color": "green"},
             "cpu": [1.0, cpu_of(k)]} for k in range(count)]


def table_of(user) -> LiveTable:
    with user:
        return next(iter(ElementFilter(kind=LiveTable, only_visible=False)))


async def test_a_big_table_sends_one_page_and_pages_sorts_and_filters_all_rows(user):
    @ui.page("/live-table-test")
    def page() -> None:
        table = LiveTable(columns=COLUMNS, page_size=100)
        table.set_rows(rows(10_000))

    await user.open("/live-table-test")
    table = table_of(user)
    assert len(table.rows) == 10_000 and len(table.shown_rows) == 100 and table.sent_rows == 100
    assert table.props["rows"] == table.shown_rows  # what the browser gets: the page, never 10,000 rows
    await user.should_see("1-100 of 10,000")
    await user.should_see("agent-00099")
    await user.should_not_see("agent-00100")

    table.set_page(1)
    await user.should_see("101-200 of 10,000")
    assert [r["id"] for r in table.shown_rows][:2] == ["agent-00100", "agent-00101"]

    # the filter searches every row, not the page: back to page 1, the matches counted
    table.set_filter("agent-0999")
    await user.should_see("1-10 of 10 matching, 10,000 in all")
    assert [r["id"] for r in table.shown_rows] == [f"agent-0999{k}" for k in range(10)]
    table.set_filter("")

    # a header click sorts all rows by that column: descending on the second click, as given on the third
    table.sort_by("id")
    table.sort_by("id")
    assert table.shown_rows[0]["id"] == "agent-09999" and table.props["sort"] == {"column": "id", "descending": True}
    table.sort_by("id")
    assert table.shown_rows[0]["id"] == "agent-00000" and table.props["sort"] is None
    table.sort_by("cpu")  # a sparkline sorts by its last value
    assert {r["cpu"][-1] for r in table.shown_rows} == {0.0}

    # a live update sends only the rows of the page that changed; one off the page sends nothing
    sent = table.sent_rows
    changed = rows(10_000, cpu_of=lambda k: 50.0 if k in (7, 9_000) else float(k % 7))
    table.set_rows(changed)
    assert table.sent_rows == sent + 1  # agent-00007 is on the page (cpu 0 before), agent-09000 is not


async def test_paging_past_the_end_after_rows_go_stays_on_the_last_page(user):
    @ui.page("/live-table-shrink")
    def page() -> None:
        table = LiveTable(columns=COLUMNS, page_size=10)
        table.set_rows(rows(35))
        table.set_page(3)

    await user.open("/live-table-shrink")
    table = table_of(user)
    await user.should_see("31-35 of 35")
    table.set_rows(rows(12))
    await user.should_see("11-12 of 12")
    table.set_rows(rows(5))
    assert len(table.shown_rows) == 5 and table.props["pager"]["text"] == ""  # one page: no pager
    await user.should_not_see("of 5")
