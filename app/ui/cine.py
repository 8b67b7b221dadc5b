"""Cine: play through the slices of the linked viewers at a set rate (issue 17).

A ``QTimer`` on the UI thread steps the :class:`~app.ui.viewer_panel.ViewerPanel` one position
per tick and wraps at the end, like the cine loop of a workstation. Nothing is precomputed:
a step is the same cheap ``show_slice`` as a wheel notch (bench/ui_viewer_speed.py), so the
default 10 frames/s leaves the event loop idle most of the time.
"""

from __future__ import annotations

from typing import Protocol

from PySide6 import QtCore

DEFAULT_FPS = 10
MAX_FPS = 30


class _Steppable(Protocol):
    def count(self) -> int: ...
    def pair_index(self) -> int: ...
    def set_pair_index(self, index: int) -> None: ...


class Cine(QtCore.QObject):
    """Plays ``panel`` (anything with ``count``/``pair_index``/``set_pair_index``) in a loop.

    Signals: ``runningChanged(bool)``.
    """

    runningChanged = QtCore.Signal(bool)

    def __init__(self, panel: _Steppable, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._panel = panel
        self._timer = QtCore.QTimer(self)
        self._timer.timeout.connect(self.tick)
        self.set_fps(DEFAULT_FPS)

    def fps(self) -> int:
        return round(1000 / max(self._timer.interval(), 1))

    def set_fps(self, fps: int) -> None:
        """Frames (slices) per second, clamped to 1 .. :data:`MAX_FPS`."""
        fps = min(max(int(fps), 1), MAX_FPS)
        self._timer.setInterval(round(1000 / fps))

    def running(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        """Start playing (nothing to play with fewer than two positions)."""
        if self._panel.count() > 1 and not self._timer.isActive():
            self._timer.start()
            self.runningChanged.emit(True)

    def stop(self) -> None:
        if self._timer.isActive():
            self._timer.stop()
            self.runningChanged.emit(False)

    def toggle(self) -> None:
        """Play / pause (the C key and the toolbar button)."""
        self.stop() if self.running() else self.start()

    def tick(self) -> None:
        """Next position, back to the first after the last."""
        n = self._panel.count()
        if n < 2:
            self.stop()
            return
        self._panel.set_pair_index((self._panel.pair_index() + 1) % n)


__all__ = ["Cine", "DEFAULT_FPS", "MAX_FPS"]
