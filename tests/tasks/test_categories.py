"""Every task type says which group the panel lists it under, in its catalog entry."""

from __future__ import annotations

from edge import fn_task
from edge.task import Task
from tasks.builtin import TYPES

KNOWN = {"logic", "timing", "text", "connections", "dashboard", "media", "flow", "data", "integration",
         "hardware"}


def test_every_builtin_type_has_a_known_category():
    assert {t.type_name: t.describe()["category"] for t in TYPES if t.describe()["category"] not in KNOWN} == {}
    assert TYPES[0].describe()["category"] == "logic"  # calculator


def test_the_type_picker_orders_every_builtin_category():
    from tasks.schedule import TYPES as SCHEDULE_TYPES
    from ui.type_picker import ORDER

    assert {t.category for t in (*TYPES, *SCHEDULE_TYPES)} <= set(ORDER)


def test_a_category_reaches_the_catalog_from_a_class_or_an_fn_task():
    class Scale(Task):
        """Multiply numbers."""

        category = "maths"

    class Plain(Task):
        """No category: the panel lists it under "other"."""

    @fn_task(category="maths")
    def adder(a: int, b: int) -> int:
        return a + b

    assert Scale.describe()["category"] == "maths" and Plain.describe()["category"] == ""
    assert adder.task_type.describe()["category"] == "maths"
