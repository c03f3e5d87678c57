"""One place for the size and tools every panel of the project's pages shares."""

from __future__ import annotations

from typing import Any

WIDTH = 520
HEIGHT = 340
TOOLS = "pan,wheel_zoom,reset,save"


def panel(title: str, **options: Any):
    """A bokeh ``figure`` of the pages' panel size and tools; ``options`` override them."""
    from bokeh.plotting import figure

    return figure(**{"title": title, "width": WIDTH, "height": HEIGHT, "tools": TOOLS, **options})
