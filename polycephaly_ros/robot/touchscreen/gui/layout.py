"""The window's geometry as data: every widget on screen, where it lies and what it needs.

:func:`describe` walks the widget tree from the root and reports each viewable widget's class,
position relative to the window, size and requested size (a requested size larger than the
given one means clipped content), its text, and for each Treeview its visible rows and its
columns' widths beside the widths their texts need. The window reports it as the ``layout``
event (the ``layout`` command); the layout tests check it against the window's size and the
touch-target minimum. Runs in the window's thread.
"""

from __future__ import annotations

import tkinter as tk
from typing import Any


def _text(widget: tk.Misc) -> str | None:
    """Return a widget's whole text (a FitLabel's before fitting), or None."""
    full = getattr(widget, 'full_text', None)
    if full is not None:
        return str(full)
    try:
        return str(widget.cget('text'))
    except tk.TclError:
        return None


def _tree(widget: Any) -> dict:
    """The rows on screen and the columns of a Treeview (a TouchList's tree)."""
    rows = []
    inner = widget.winfo_height() - 2  # (bbox also names a row whose top lies in the border)
    for item in widget.get_children():
        box = widget.bbox(item)
        if box and box[1] < inner:
            rows.append({'id': item, 'y': box[1], 'height': box[3],
                         'values': [widget.item(item, 'text'),
                                    *map(str, widget.item(item, 'values'))],
                         'tags': list(widget.item(item, 'tags'))})
    needed = getattr(widget.master, 'needed', {})
    columns = [{'id': c, 'heading': widget.heading(c, 'text'),
                'width': int(widget.column(c, 'width')), 'needed': needed.get(c, 0)}
               for c in ('#0', *widget.cget('columns'))]
    return {'rows': rows, 'items': len(widget.get_children()), 'columns': columns}


def describe(root: tk.Tk) -> dict:
    """Return the window's geometry and every viewable widget in it."""
    rx, ry = root.winfo_rootx(), root.winfo_rooty()
    widgets: list[dict] = []

    def walk(parent: tk.Misc) -> None:
        for child in parent.winfo_children():
            if not child.winfo_viewable():
                continue
            entry: dict[str, Any] = {
                'path': str(child), 'class': child.winfo_class(),
                'x': child.winfo_rootx() - rx, 'y': child.winfo_rooty() - ry,
                'width': child.winfo_width(), 'height': child.winfo_height(),
                'reqwidth': child.winfo_reqwidth(), 'reqheight': child.winfo_reqheight()}
            text = _text(child)
            if text is not None:
                entry['text'] = text
            if entry['class'] == 'Treeview':
                entry.update(_tree(child))
            widgets.append(entry)
            walk(child)

    walk(root)
    return {'window': {'x': rx, 'y': ry, 'width': root.winfo_width(),
                       'height': root.winfo_height()},
            'screen': {'width': root.winfo_screenwidth(), 'height': root.winfo_screenheight()},
            'widgets': widgets}
