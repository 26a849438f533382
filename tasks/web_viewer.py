"""web_viewer: a web page shown on the deployment's dashboard, in a frame of the panel.

A dashboard display (contract in :mod:`tasks.dashboard`): its view says which page to show. The
page comes from the config's ``url``; a text frame on the ``url`` input replaces it (a graph can
point the viewer at a camera's page, a report it just wrote, ...). Only absolute ``http://`` and
``https://`` URLs are taken (:func:`edge.protocol.web_url_problem`): a config with another is
refused at deploy time; a frame with another is counted as an input error, the page shown stays,
and the view says what was refused and why. The panel checks the view's URL again before it
draws the frame.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from edge.frames import Frame
from edge.protocol import MAX_NAME, MAX_URL, WebViewerView, web_url_problem
from tasks.base import TEXT
from tasks.dashboard import VIEW
from tasks.displays import DisplayConfig, DisplayTask

__all__ = ["WebViewer"]

SHOWN_OF_REFUSED = 80  # characters of a refused URL repeated in the view


class WebViewer(DisplayTask):
    """A web page on the dashboard: the panel shows `url` (http or https) in a frame.

    A text on the `url` input replaces the page shown (surrounding spaces are dropped). A URL that is
    not an absolute `http://` or `https://` one (`javascript:`, `data:`, `file:`, no host, spaces) is
    refused: in the config when deployed; on the input it is an input error, the page shown stays
    and the view's `refused` says what was refused and why, until a good URL comes. Some sites do not
    allow being shown in a frame of another site (`X-Frame-Options`); the browser then shows an empty
    frame. View: `{kind: web_viewer, label, url, height, refused}` (`url` null: no page yet).
    """

    kind = "web_viewer"

    class Config(DisplayConfig):
        url: str = Field(default="", max_length=MAX_URL,
                         description="the page shown, http:// or https:// (empty: none until the url input sends one)")
        height: int = Field(default=400, ge=100, le=4000, description="the frame's height in pixels")

        @field_validator("url")
        @classmethod
        def _url(cls, url: str) -> str:
            why = web_url_problem(url) if url else None
            if why is not None:
                raise ValueError(why)
            return url

    inputs = {"url": TEXT("the URL to show")}
    outputs = {"view": VIEW}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url: str | None = self.config.url or None
        self.refused = ""

    def update(self, port: str, frame: Frame) -> bool:
        text = self.text(port, frame)
        if text is None:
            return False
        url = text.strip()
        why = web_url_problem(url)
        if why is not None:
            shown = repr(url[:SHOWN_OF_REFUSED]) + ("…" if len(url) > SHOWN_OF_REFUSED else "")
            self.refused = f"refused {shown}: {why}"[:MAX_NAME]
            self.reject(port, self.refused)
            return True
        changed = (url, "") != (self.url, self.refused)
        self.url, self.refused = url, ""
        return changed

    def view(self) -> WebViewerView:
        config: WebViewer.Config = self.config
        return WebViewerView(kind="web_viewer", label=config.label, url=self.url, height=config.height,
                             refused=self.refused)
