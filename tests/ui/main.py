"""The control panel as the ``user``-fixture tests run it (``main_file`` in pyproject.toml).

The settings come from the ``EDGE_*`` variables the ``panel_settings`` fixture sets: a real
broker, a namespace of the test's own, a temporary data dir.
"""

from nicegui import ui as nicegui_ui

import ui
from edge.settings import load_settings

ui.setup(load_settings())
nicegui_ui.run(storage_secret="user-fixture tests", show_welcome_message=False, reload=False)
