"""The viewer's extra windows in one place: coronal reformat, DICOM tags, series thumbnails,
help (issue 17).

The main window creates one :class:`ViewerTools` and calls :meth:`ViewerTools.study_shown`
when a study is on view; everything else (actions with their keys, the thumbnail dock, the
dialogs and the thumbnail job) lives here, so that the main window only gains a few lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets

from app import PHASES
from app.dicom.types import AssembledStudy, SeriesInfo
from app.errors import HCCError
from app.ui import dialogs
from app.ui.coronal import CoronalView
from app.ui.help_dialog import HelpDialog
from app.ui.tag_viewer import TagViewer
from app.ui.thumbnails import ThumbnailStrip, thumbnail, thumbnail_job

if TYPE_CHECKING:  # pragma: no cover - typing only; the window imports this module
    from app.dicom.scan import StudyInfo
    from app.ui.main_window import MainWindow

log = logging.getLogger(__name__)


class ViewerTools(QtCore.QObject):
    """Actions, docks and dialogs of the viewing tools of ``window`` (a ``MainWindow``)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.coronal: CoronalView | None = None
        self.tags: TagViewer | None = None
        self.help: HelpDialog | None = None
        self._series: list[SeriesInfo] = []

        self.thumbnails = ThumbnailStrip()
        self.thumbnails.showInPane.connect(window.set_override)
        self.thumbnails.tagsRequested.connect(self.show_series_tags)
        dock = QtWidgets.QDockWidget("Series", window)
        dock.setObjectName("seriesDock")
        dock.setWidget(self.thumbnails)
        dock.setMaximumHeight(self.thumbnails.height() + 40)  # the strip, not a share of the window
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable)
        # The studies dock keeps the whole left side; the strip sits under the viewers only.
        window.setCorner(QtCore.Qt.Corner.BottomLeftCorner, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        window.addDockWidget(QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.dock = dock
        # A prediction cancels every running job (so that no stale heat map lands); pictures
        # it interrupted are decoded again afterwards.
        window.stepDone.connect(self._after_step)

        self.act_coronal = self._action("&Coronal reformat", "Ctrl+Shift+C", self.show_coronal)
        self.act_tags = self._action("DICOM &tags of the slice on view…", "Ctrl+T", self.show_slice_tags)
        self.act_shortcuts = self._action("&Keyboard and mouse", "F1", lambda: self.show_help("shortcuts"))
        self.act_guide = self._action("&User guide", None, lambda: self.show_help("guide"))

    def _action(self, text: str, key: str | None, slot: Callable[[], object]) -> QtGui.QAction:
        act = QtGui.QAction(text, self.window)
        if key:
            act.setShortcut(QtGui.QKeySequence(key))
        act.triggered.connect(lambda _c=False: slot())
        return act

    def view_actions(self) -> list[QtGui.QAction]:
        return [self.act_coronal, self.act_tags]

    def help_actions(self) -> list[QtGui.QAction]:
        return [self.act_shortcuts, self.act_guide]

    # -- the study on view -----------------------------------------------------------------
    def study_shown(self, study: AssembledStudy | None, scan_study: StudyInfo | None) -> None:
        """A study (or none) is on view: list its series, decode their thumbnails, re-cut."""
        self._series = [s for s in scan_study.series if s.status != "refused"] if scan_study else []
        self.thumbnails.set_series(self._series, dict(study.assignment) if study else {})
        loaded = {v.series_uid: v for v in (study.volumes.values() if study else [])}
        self.thumbnails.set_images(
            {s.uid: thumbnail(loaded[s.uid].hu[loaded[s.uid].n_slices // 2])
             for s in self._series if s.uid in loaded and loaded[s.uid].n_slices}
        )
        self._start_thumbnails()
        if self.coronal is not None:
            self.coronal.refresh()

    def _after_step(self, step: str) -> None:
        if step == "predicted" and any(not self.thumbnails.has_image(u) for u in self.thumbnails.uids()):
            self._start_thumbnails()

    def _start_thumbnails(self) -> None:
        """Decode the pictures still missing (series not in a pane) in a worker."""
        missing = [s for s in self._series if not self.thumbnails.has_image(s.uid)]
        if missing:
            job = self.window.jobs.start("Thumbnails", thumbnail_job(missing), key="thumbs")
            job.finished.connect(self.thumbnails.set_images)

    # -- windows ----------------------------------------------------------------------------
    def show_coronal(self) -> CoronalView:
        """Open (or raise) the coronal reformat of the study on view."""
        if self.coronal is None:
            self.coronal = CoronalView(self.window.viewer, self.window)
        else:
            self.coronal.refresh()
        self.coronal.show()
        self.coronal.raise_()
        return self.coronal

    def slice_file(self, phase: str) -> Path | None:
        """The file of the slice on view in ``phase``'s pane (None when nothing is shown)."""
        viewer = self.window.viewer.viewers[phase]
        volume, index = viewer.volume, viewer.current_index()
        if volume is None or index is None:
            return None
        sop = volume.sop_instance_uids[index]
        for s in self._series:
            if s.uid == volume.series_uid or s.series_instance_uid == volume.series_uid:
                for inst in s.instances:
                    if inst.sop_instance_uid == sop:
                        return Path(inst.path)
        return None

    def show_slice_tags(self, phase: str | None = None) -> TagViewer | None:
        """Tags of the slice on view (``phase``, default: the first pane with a series)."""
        shown = [p for p in PHASES if self.window.viewer.viewers[p].volume is not None]
        if not shown:
            dialogs.show_info(self.window, "No series is on view.")
            return None
        phase = phase if phase in shown else shown[0]
        path = self.slice_file(phase)
        if path is None:
            dialogs.show_info(self.window, f"The file of the {phase} slice on view is not known.")
            return None
        viewer = self.window.viewer.viewers[phase]
        volume = viewer.volume
        if volume is None:  # pragma: no cover - ``phase`` is one of ``shown``
            return None
        title = f"{phase}: slice {(viewer.current_index() or 0) + 1} of {volume.n_slices}"
        return self._show_tags(path, title)

    def show_series_tags(self, uid: str) -> TagViewer | None:
        """Tags of the middle file of series ``uid``."""
        series = next((s for s in self._series if s.uid == uid), None)
        if series is None or not series.instances:
            return None
        inst = series.instances[len(series.instances) // 2]
        number = f"#{series.series_number} " if series.series_number is not None else ""
        return self._show_tags(Path(inst.path), f"{number}{series.description}: middle slice")

    def _show_tags(self, path: Path, title: str) -> TagViewer | None:
        if self.tags is None:
            self.tags = TagViewer(self.window)
        try:
            self.tags.show_file(path, title)
        except HCCError as exc:
            dialogs.show_error(self.window, exc.message, exc.details or "")
            return None
        self.tags.show()
        self.tags.raise_()
        return self.tags

    def show_help(self, tab: str) -> HelpDialog:
        """The help window on its "shortcuts" or "guide" tab."""
        if self.help is None:
            self.help = HelpDialog(self.window)
        self.help.show_tab(tab)
        self.help.show()
        self.help.raise_()
        return self.help


__all__ = ["ViewerTools"]
