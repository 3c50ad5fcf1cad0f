"""The touchscreen's commands: lines typed on stdin (with or without a window), and view changes.

:class:`CommandsMixin` is part of the main head (:class:`.touchscreen.TouchscreenMain`): its
``ui_command`` filter carries out one line (``help`` lists them, :data:`.screen_text.COMMANDS`),
and :meth:`CommandsMixin.show` / :meth:`CommandsMixin.shown` switch views: the view calls back
``shown(name)`` once the view is on screen (the window: drawn; headless: once the answers it
shows have come, :meth:`CommandsMixin.view_ready`), and the ``view`` event then carries the
view's content as text (:mod:`.view_text`).

Threading: runs in the main head's thread only, like the rest of the model.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from ...filters import message_filter
from .screen_text import COMMANDS, VIEWS, help_text
from .view_text import view_text


class CommandsMixin:
    """The main head's commands and view switching (mixed into TouchscreenMain)."""

    view: Any
    events: Any
    pairing: Any
    application: Any
    headless: bool
    admin: Callable[..., None]   # TouchscreenMain.admin(subject, body)

    @message_filter(subject='ui_command')
    def on_command(self, message: dict) -> None:
        """Carry out one command line (see COMMANDS)."""
        words = str(message['body']).split()
        verb, args = words[0].lower(), words[1:]
        one = args[0] if args else None
        if verb == 'quit':
            self.application.shutdown('quit')
        elif verb == 'help':
            self.events.emit('help', help_text(), commands=COMMANDS)
        elif verb == 'view' and one in VIEWS:
            self.show(one)
        elif verb in ('status', 'diagnostics', 'heads', 'network', 'updates'):
            self.admin(verb)
        elif verb in ('start', 'stop', 'restart') and one:
            self.admin(f'{verb}_head', {'head': one})
        elif verb in ('schedule', 'unschedule') and one:
            self.admin(verb, {'action': one})
        elif verb in ('idle', 'busy'):
            self.admin('robot_idle', {'idle': verb == 'idle'})
        elif verb == 'pair':
            self.pairing.renew(time.monotonic())
            if self.view.current != 'pair':
                self.show('pair')
        elif verb == 'devices':
            self.pairing.refresh_devices(time.monotonic())
            if self.view.current != 'pair':
                self.show('pair')
        elif verb == 'revoke' and one:
            self.admin('revoke_device', {'id': one})
        elif verb == 'layout' and not self.headless:
            self.view.report_layout()
        elif verb == 'layout':
            self.events.emit('error', 'layout: there is no window (headless)')
        else:
            self.events.emit('error', f'unknown command {message["body"]!r} (try help)')

    def show(self, name: str) -> None:
        """Switch views; the 'view' event follows once the view is on screen."""
        if name == 'pair':
            self.pairing.show(time.monotonic(), time.time())
        self.view.show(name)

    def view_ready(self, name: str) -> bool:
        """Tell whether the answers view name shows have come since it was shown."""
        return name != 'pair' or self.pairing.settled()

    def shown(self, name: str) -> None:
        """Report that the view name is on screen, with its content as text."""
        content = view_text(name, self, time.time())
        self.events.emit('view', f'view: {name}\n{content}', view=name, content=content)
