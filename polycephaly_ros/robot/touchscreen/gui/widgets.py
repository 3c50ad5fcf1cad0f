"""The touchscreen window's building blocks: text that fits, touch lists and paged rows.

* :func:`fit_text` wraps text to a width in pixels (breaking over-long words such as URLs) and,
  given a number of lines, ends the last one with an ellipsis when there is more and pads it to
  exactly that many lines, so an area of fixed height never moves what lies below it.
* :class:`FitLabel` is a ttk label that re-fits its text whenever its width changes.
* :class:`TouchList` is a Treeview of touch-sized rows that shows whole rows only and, when they
  do not all fit, two page buttons beside them.
* :class:`RowPager` shows fixed-height rows built by the caller (cards with their own buttons),
  as many as fit, with page buttons below when they do not all fit.

Threading: Tk widgets, used only in the window's thread (the main head's).
"""

from __future__ import annotations

import tkinter as tk
from tkinter import font as tkfont
from tkinter import ttk
from typing import Any, Callable, Sequence

from .theme import Theme

ELLIPSIS = '\u2026'


def _break_word(font: tkfont.Font, word: str, width: int) -> list[str]:
    """Split a word wider than width into pieces that fit."""
    pieces, piece = [], ''
    for char in word:
        if piece and font.measure(piece + char) > width:
            pieces.append(piece)
            piece = ''
        piece += char
    return pieces + [piece] if piece else pieces


def wrap_lines(font: tkfont.Font, text: str, width: int) -> list[str]:
    """Return text's lines wrapped at width pixels (paragraphs kept, long words broken)."""
    lines: list[str] = []
    for paragraph in text.split('\n'):
        line = ''
        for word in paragraph.split(' '):
            candidate = f'{line} {word}' if line else word
            if font.measure(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            pieces = _break_word(font, word, width) if font.measure(word) > width else [word]
            lines.extend(pieces[:-1])
            line = pieces[-1] if pieces else ''
        lines.append(line)
    return lines


def fit_text(font: tkfont.Font, text: str, width: int, lines: int | None = None) -> str:
    """Wrap text to width; with lines, exactly that many (the last elided if there is more)."""
    width = max(width, font.measure('MM'))
    wrapped = wrap_lines(font, text, width)
    if lines is None:
        return '\n'.join(wrapped)
    if len(wrapped) > lines:
        last = ' '.join(wrapped[lines - 1:])
        while last and font.measure(last + ELLIPSIS) > width:
            last = last[:-1]
        wrapped = wrapped[:lines - 1] + [last.rstrip() + ELLIPSIS]
    return '\n'.join(wrapped + [''] * (lines - len(wrapped)))


class FitLabel(ttk.Label):
    """A label whose text is wrapped (and with lines, held to that many lines) to its width."""

    def __init__(self, parent: tk.Misc, theme: Theme, font: str = 'body',
                 lines: int | None = None, text: str = '', hint: int = 300,
                 **options: Any) -> None:
        super().__init__(parent, font=theme.fonts[font], anchor='nw', justify='left', **options)
        self.theme = theme
        self.font = theme.fonts[font]
        self.lines = lines
        self.hint = hint
        self.full_text = ''
        self._width = 0
        self.bind('<Configure>', self._on_configure, add=True)
        self.set(text)

    def set(self, text: str, style: str | None = None) -> None:
        """Show text (wrapped to the label's width), in style when given."""
        if style is not None and str(self.cget('style')) != style:
            self.configure(style=style)
        if text != self.full_text:
            self.full_text = text
            self._fit()

    def _fit(self) -> None:
        """Set the text wrapped to the width, narrower while the label asks for more."""
        width = self._width if self._width > 1 else self.hint
        room = width - 2
        for _ in range(3):  # the label's own padding and border come on top of the text
            self.configure(text=fit_text(self.font, self.full_text, max(1, room), self.lines))
            excess = self.winfo_reqwidth() - width
            if excess <= 0 or self._width <= 1:
                return
            room -= excess

    def _on_configure(self, event: tk.Event) -> None:
        """Re-fit the text when the width changed."""
        if event.width != self._width:
            self._width = event.width
            self._fit()


class TouchList(ttk.Frame):
    """A Treeview of touch-sized rows: whole rows only, page buttons when they do not all fit."""

    def __init__(self, parent: tk.Misc, theme: Theme, columns: Sequence[tuple[str, str]],
                 select: bool = True, headings: bool = True) -> None:
        super().__init__(parent)
        self.theme = theme
        self.columns = [c for c, _ in columns]
        self.headings = headings
        self.pack_propagate(False)
        self.grid_propagate(False)
        self.tree = ttk.Treeview(self, columns=self.columns[1:], selectmode='browse' if select
                                 else 'none', show='tree headings' if headings else 'tree')
        for column, heading in columns:
            cid = '#0' if column == self.columns[0] else column
            self.tree.heading(cid, text=heading, anchor='w')
            self.tree.column(cid, anchor='w', stretch=cid == '#0', minwidth=theme.px(30))
        self.tree.tag_configure('stale', foreground='#8a8a8a')
        self.pager = ttk.Frame(self)
        self.up = ttk.Button(self.pager, text='\u25b2', width=3, command=lambda: self._page(-1))
        self.down = ttk.Button(self.pager, text='\u25bc', width=3, command=lambda: self._page(1))
        self.up.pack(side='top', fill='x')
        self.down.pack(side='bottom', fill='x')
        # (as tall as its whole rows: never a partly shown row below them)
        self.tree.pack(side='left', fill='x', expand=True, anchor='n')
        self.rows: list[tuple[str, tuple, tuple]] = []
        self.needed: dict[str, int] = {}
        self.visible = 1
        self.configure(height=self._heading() + theme.target)
        self.bind('<Configure>', lambda _e: self._fit(), add=True)

    def _heading(self) -> int:
        """Return the height of the headings row (0 without headings)."""
        return (self.theme.line('heading') + self.theme.px(6) + 4) if self.headings else 0

    def set_rows(self, rows: Sequence[tuple[str, Sequence[str], Sequence[str]]],
                 headings: dict[str, str] | None = None) -> None:
        """Show rows of (id, one text per column, tags); keep the selection when it remains."""
        rows = [(iid, tuple(values), tuple(tags)) for iid, values, tags in rows]
        for column, text in (headings or {}).items():
            self.tree.heading('#0' if column == self.columns[0] else column, text=text)
        if rows == self.rows and not headings:
            return
        selected = self.selected()
        tree = self.tree
        if [r[0] for r in rows] != [r[0] for r in self.rows]:
            tree.delete(*tree.get_children())
            for iid, values, tags in rows:
                tree.insert('', 'end', iid=iid, text=values[0], values=values[1:], tags=tags)
        else:
            for iid, values, tags in rows:
                tree.item(iid, text=values[0], values=values[1:], tags=tags)
        self.rows = rows
        if selected in tree.get_children():
            tree.selection_set(selected)
        self._fit()

    def selected(self) -> str | None:
        """Return the id of the selected row, if any."""
        picked = self.tree.selection()
        return picked[0] if picked else None

    def _page(self, direction: int) -> None:
        """Scroll one page of rows up (-1) or down (1)."""
        self.tree.yview_scroll(direction * max(1, self.visible - 1), 'units')

    def _fit(self) -> None:
        """Show as many whole rows as fit; size the columns to their widest text."""
        height = self.winfo_height()
        if height <= 1:
            return
        fits = max(1, (height - self._heading() - 4) // self.theme.target)
        paged = len(self.rows) > fits
        if paged and not self.pager.winfo_ismapped():
            self.pager.pack(side='right', fill='y', before=self.tree)
        elif not paged and self.pager.winfo_ismapped():
            self.pager.pack_forget()
        self.visible = fits
        if int(str(self.tree.cget('height'))) != fits:
            self.tree.configure(height=fits)
        body, heading = self.theme.fonts['body'], self.theme.fonts['heading']
        pad = self.theme.px(12) + 4
        width = self.winfo_width() - (self.up.winfo_reqwidth() if paged else 0) - 4
        for index, column in enumerate(self.columns):
            cid = '#0' if index == 0 else column
            texts = [r[1][index] for r in self.rows if index < len(r[1])]
            need = max([body.measure(t) for t in texts] +
                       [heading.measure(self.tree.heading(cid, 'text'))]) + pad
            if index == 0:
                need += self.theme.px(20)  # the tree column's indicator space
            self.needed[cid] = need
        rest = sum(w for c, w in self.needed.items() if c != '#0')
        for cid, need in self.needed.items():
            self.tree.column(cid, width=max(need, width - rest) if cid == '#0' else need)


class RowPager(ttk.Frame):
    """Rows of a fixed height built by make_row, as many as fit, paged when they do not all fit.

    make_row(parent) returns a row object with a ``frame`` (packed here) and ``show(item)``.
    """

    def __init__(self, parent: tk.Misc, theme: Theme, row_height: Callable[[], int],
                 make_row: Callable[[tk.Misc], Any], empty: str = '') -> None:
        super().__init__(parent)
        self.theme = theme
        self.row_height = row_height
        self.make_row = make_row
        self.pack_propagate(False)
        self.items: list[Any] = []
        self.rows: list[Any] = []
        self.page = 0
        self.fits = 1
        self.empty = FitLabel(self, theme, 'small', lines=2, text=empty, style='Small.TLabel')
        self.footer = ttk.Frame(self)
        self.back = ttk.Button(self.footer, text='\u25c0', width=3, command=lambda: self._turn(-1))
        self.forth = ttk.Button(self.footer, text='\u25b6', width=3, command=lambda: self._turn(1))
        self.where = ttk.Label(self.footer, text='', style='Small.TLabel', anchor='center')
        self.back.pack(side='left')
        self.forth.pack(side='right')
        self.where.pack(side='left', fill='x', expand=True)
        self.configure(height=row_height())
        self.bind('<Configure>', lambda _e: self._layout(), add=True)

    def set_items(self, items: Sequence[Any]) -> None:
        """Show items (re-using the rows on screen)."""
        self.items = list(items)
        self._layout()

    def _turn(self, direction: int) -> None:
        """Show the previous (-1) or next (1) page of rows."""
        self.page += direction
        self._layout()

    def _layout(self) -> None:
        """Show the rows of the current page that fit, each in a slot of the row height."""
        height = self.winfo_height()
        if height <= 1:
            return
        slot = self.row_height()
        footer = self.theme.target + self.theme.px(4)
        fits = max(1, height // slot)
        paged = len(self.items) > fits
        if paged:
            fits = max(1, (height - footer) // slot)
        pages = max(1, -(-len(self.items) // fits))
        self.page = min(max(self.page, 0), pages - 1)
        shown = self.items[self.page * fits:(self.page + 1) * fits]
        while len(self.rows) < len(shown):
            row = self.make_row(self)
            row.frame.pack_propagate(False)
            self.rows.append(row)
        packed = [row for row in self.rows if row.frame.winfo_manager()]
        if len(packed) != len(shown):
            for row in packed:
                row.frame.pack_forget()
            for row in self.rows[:len(shown)]:
                row.frame.pack(side='top', fill='x')
        for row, item in zip(self.rows, shown):
            if int(str(row.frame.cget('height'))) != slot:
                row.frame.configure(height=slot)
            row.show(item)
        self._repack(paged, pages)

    def _repack(self, paged: bool, pages: int) -> None:
        """Show the empty text without items and the page buttons when paged."""
        if not self.items and self.empty.full_text:
            if not self.empty.winfo_manager():
                self.empty.pack(side='top', fill='x')
        elif self.empty.winfo_manager():
            self.empty.pack_forget()
        if paged:
            self.where.configure(text=f'{self.page + 1} / {pages}')
            self.back.state(['!disabled'] if self.page > 0 else ['disabled'])
            self.forth.state(['!disabled'] if self.page < pages - 1 else ['disabled'])
            if not self.footer.winfo_manager():
                self.footer.pack(side='bottom', fill='x')
        elif self.footer.winfo_manager():
            self.footer.pack_forget()
