"""Three synchronised phase viewers (plain | arterial | portal) with a shared slice position.

How the main window uses it::

    panel = ViewerPanel()
    panel.set_study(study, descriptions={"arterial": "ART 5.0 B30f", ...})   # AssembledStudy
    panel.cursorInfo.connect(status_bar.showMessage)
    strip = VoteStrip(); link_vote_strip(panel, strip)   # clicks jump, marker follows
    # after prediction:
    strip.set_result([s.probability for s in result.slices], [s.label for s in result.slices])
    # Grad-CAM as it arrives (worker thread -> signal -> these slots, on the UI thread):
    panel.set_cam_result(gradcam_slice(...))                  # the viewed slice first
    panel.set_cam_result(gradcam_study(...), replace=True)    # then the whole study
    # (or lower level: set_cam(phase, array, pair_index) / set_cam_cache(...) + set_cam_scale)
    panel.has_cam(i)                                          # is pair i's CAM cached?
    # W/L: windowChanged(width, level); panel.window_level() -> WindowLevel (.name = preset)
    # Tools (issue 17): panel.measure (app.ui.measure: distance, ROIs, crosshair), panel.cine
    # (app.ui.cine), panel.set_inverted(True), panel.view_actions() (hot keys for a menu).

The shared position is an index into ``study.pairs`` (the slice triplets the model sees);
:meth:`ViewerPanel.indices_at` gives each phase's slice index at a position. A study without
pairs yet (assembled before the liver range was found, or a failed pairing) is still viewable:
the position then runs over the slices of the first assigned phase and the other phases show
the slice nearest in table position; the panel starts at the middle slice.

Zoom and pan are linked in millimetres (every viewer is asked to show the same patient
region), not by pyqtgraph's ``setXLink``/``setYLink``: those fight the locked aspect ratio
(pyqtgraph issues #1103, #1348: runaway zoom on resize), and the phases may have different
matrices or fields of view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app import PHASES
from app.dicom.types import AssembledStudy
from app.ui.cam_legend import CamLegend
from app.ui.cam_overlay import COLORMAPS, DEFAULT_COLORMAP, DEFAULT_OPACITY
from app.ui.cine import DEFAULT_FPS, MAX_FPS, Cine
from app.ui.liver_slider import LiverRangeSlider
from app.ui.measure import TOOLS, MeasureController
from app.ui.viewer import KEY_JUMPS, KEY_STEPS, PhaseViewer
from app.ui.windowing import (
    DEFAULT_WINDOW,
    LEVEL_RANGE,
    MAX_WIDTH,
    MIN_WIDTH,
    PRESET_KEYS,
    PRESETS,
    WindowLevel,
    drag_window,
    make_window,
    match_preset,
)

if TYPE_CHECKING:
    from app.inference.gradcam import CamResult


class ViewerPanel(QtWidgets.QWidget):
    """Three synchronised viewers, a slice slider with the liver range, and a small toolbar.

    Signals
    -------
    pairIndexChanged(int)
        The shared position changed (scroll, keys, slider, :meth:`set_pair_index`).
    cursorInfo(str)
        "arterial  z = -123.5 mm  (col 120, row 87)  HU = 87" for the status bar.
    windowChanged(float, float)
        Window width and level after a preset, drag or :meth:`set_window`.
    camVisibleChanged(bool)
        The Grad-CAM toggle changed (keep a main-window toolbar action in sync).
    """

    pairIndexChanged = QtCore.Signal(int)
    cursorInfo = QtCore.Signal(str)
    windowChanged = QtCore.Signal(float, float)
    camVisibleChanged = QtCore.Signal(bool)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._study: AssembledStudy | None = None
        self._ref_phase: str | None = None
        self._n_positions = 0
        self._position = 0
        self._window: WindowLevel = DEFAULT_WINDOW
        self._drag_start: WindowLevel | None = None
        self._cams: dict[tuple[str, int], np.ndarray] = {}
        #: Pairs that did not take part in the model's decision (lesion-weighted vote): no heat
        #: map is shown there, and the pane says why (CamResult.shown).
        self._unused: set[int] = set()
        self._liver = np.zeros(0, dtype=bool)
        self._cam_visible = True
        self._syncing = False

        self.viewers: dict[str, PhaseViewer] = {p: PhaseViewer(p) for p in PHASES}
        for viewer in self.viewers.values():
            viewer.stepRequested.connect(self.step)
            viewer.jumpRequested.connect(self._jump)
            viewer.windowDragged.connect(self._window_dragged)
            viewer.cursorInfo.connect(self.cursorInfo)
            viewer.view.sigRangeChanged.connect(self._view_range_changed)

        self.measure = MeasureController(self.viewers, self)
        self.pairIndexChanged.connect(lambda _i: self.measure.refresh())
        self.cine = Cine(self, self)
        self._inverted = False

        self.slider = LiverRangeSlider()
        self.slider.valueChanged.connect(self.set_pair_index)
        self.position_label = QtWidgets.QLabel("No study")
        self.position_label.setMinimumWidth(300)
        self.toolbar = self._build_toolbar()
        self.tools_bar = self._build_tools_bar()
        self._build_actions()

        viewers_box = QtWidgets.QWidget()
        viewers_box.setAutoFillBackground(True)
        palette = viewers_box.palette()
        palette.setColor(QtGui.QPalette.ColorRole.Window, QtGui.QColor(40, 40, 40))
        viewers_box.setPalette(palette)
        viewers_row = QtWidgets.QHBoxLayout(viewers_box)
        viewers_row.setContentsMargins(0, 0, 0, 0)
        viewers_row.setSpacing(2)
        for viewer in self.viewers.values():
            viewers_row.addWidget(viewer, 1)
        slider_row = QtWidgets.QHBoxLayout()
        slider_row.addWidget(self.slider, 1)
        slider_row.addWidget(self.position_label)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.tools_bar)
        layout.addWidget(viewers_box, 1)
        layout.addLayout(slider_row)
        self._apply_window(self._window, emit=False)
        self._update_enabled()

    # ------------------------------------------------------------------ study & position
    def set_study(
        self, study: AssembledStudy | None, descriptions: Mapping[str, str] | None = None
    ) -> None:
        """Show ``study`` (None clears the panel); forgets any cached Grad-CAM.

        Parameters
        ----------
        study:
            The assembled study. Phases without a volume leave their viewer empty.
        descriptions:
            phase → series description for the top-left corner (the scan's ``SeriesInfo``
            has it; :class:`~app.dicom.types.Volume` does not).
        """
        self.cine.stop()
        self.measure.clear()
        self._study = study
        self._cams.clear()
        self._unused = set()
        for viewer in self.viewers.values():
            viewer.cam.set_scale(None)  # the next study brings its own scale
        descriptions = dict(descriptions or {})
        volumes = study.volumes if study is not None else {}
        for phase, viewer in self.viewers.items():
            viewer.set_volume(volumes.get(phase), descriptions.get(phase, ""))
        self._ref_phase = next((p for p in PHASES if p in volumes), None)
        if study is None or self._ref_phase is None:
            self._n_positions = 0
        elif study.pairs:
            self._n_positions = len(study.pairs)
        else:
            self._n_positions = volumes[self._ref_phase].n_slices
        self._liver = self._compute_liver_mask()
        mask = self.liver_mask()
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(self._n_positions - 1, 0))
        self.slider.setPageStep(10)
        self.slider.blockSignals(False)
        self.slider.set_marks(mask)
        self._position = -1
        self._update_enabled()
        if self._n_positions:
            self.set_pair_index(self._start_position())
            self.reset_views()
        else:
            self.position_label.setText("No study")
            self.pairIndexChanged.emit(-1)

    def clear(self) -> None:
        """Empty the panel."""
        self.set_study(None)

    @property
    def study(self) -> AssembledStudy | None:
        """The study on display."""
        return self._study

    @property
    def paired(self) -> bool:
        """True when the position is an index into ``study.pairs``."""
        return bool(self._study is not None and self._study.pairs)

    def count(self) -> int:
        """Number of scroll positions (pairs, or the reference phase's slices)."""
        return self._n_positions

    def pair_index(self) -> int:
        """The shared position (-1 when there is no study)."""
        return self._position if self._n_positions else -1

    def set_pair_index(self, index: int) -> None:
        """Move all three viewers to position ``index`` (clamped) and emit ``pairIndexChanged``."""
        if not self._n_positions:
            return
        index = min(max(int(index), 0), self._n_positions - 1)
        if index == self._position:
            return
        self._position = index
        note = self._slice_note(index)
        for phase, slice_index in self.indices_at(index).items():
            viewer = self.viewers[phase]
            viewer.show_slice(slice_index, note)
            viewer.set_cam(self._cams.get((phase, index)) if self.paired else None)
        if self.slider.value() != index:
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)
        self._update_position_label(bool(self._liver[index]))
        self.pairIndexChanged.emit(index)

    def step(self, n: int) -> None:
        """Move the shared position by ``n`` (wheel, arrow keys, page keys)."""
        if self._n_positions:
            self.set_pair_index(self._position + int(n))

    def indices_at(self, position: int) -> dict[str, int]:
        """phase → slice index shown at ``position``."""
        study = self._study
        if study is None or not self._n_positions:
            return {}
        if study.pairs:
            pair = study.pairs[position]
            return {p: int(i) for p, i in pair.index.items() if p in study.volumes}
        assert self._ref_phase is not None
        ref = study.volumes[self._ref_phase]
        z = float(ref.z_positions[position])
        return {p: (position if p == self._ref_phase else v.index_of_z(z)) for p, v in study.volumes.items()}

    def z_at(self, position: int) -> float | None:
        """Table position (mm) of ``position``: the pair's ``z_ref`` or the reference slice's z."""
        study = self._study
        if study is None or not (0 <= position < self._n_positions):
            return None
        if study.pairs:
            return float(study.pairs[position].z_ref)
        assert self._ref_phase is not None
        return float(study.volumes[self._ref_phase].z_positions[position])

    def liver_mask(self) -> np.ndarray:
        """Boolean per position: True where every phase's slice lies in that phase's liver range.

        Computed once per study (:meth:`set_study`); a copy is returned.
        """
        return self._liver.copy()

    def _compute_liver_mask(self) -> np.ndarray:
        """The liver-range mask of :meth:`liver_mask`.

        A slice counts as in the range when the slab it represents (its position ± half the
        slice spacing) reaches into the range: the phases are separate acquisitions whose
        slices can sit half a slice apart, and a pair at the liver's edge should not drop out
        because one phase's nearest slice centre lies 2.5 mm outside. Shared with the vote strip
        (:func:`link_vote_strip`) so both mark the same positions.
        """
        study = self._study
        mask = np.zeros(self._n_positions, dtype=bool)
        if study is None or not study.liver_range_mm:
            return mask
        for pos in range(self._n_positions):
            ok = False
            for phase, idx in self.indices_at(pos).items():
                rng = study.liver_range_mm.get(phase)
                if rng is None:
                    continue
                volume = study.volumes[phase]
                z = float(volume.z_positions[idx])
                half = abs(float(volume.slice_spacing)) / 2.0 + 1e-3
                lo, hi = min(rng), max(rng)
                ok = lo - half <= z <= hi + half
                if not ok:
                    break
            mask[pos] = ok
        return mask

    # ------------------------------------------------------------------ window / level
    def window_level(self) -> WindowLevel:
        """The window/level shared by the three viewers."""
        return self._window

    def set_window(self, width: float, level: float) -> None:
        """Apply window ``width``/``level`` (HU) to all three viewers."""
        self._apply_window(match_preset(*_pair(make_window(width, level))))

    def set_preset(self, name: str) -> None:
        """Apply a preset by name ("Abdomen", "Liver", "Model W400/L0")."""
        for p in PRESETS:
            if p.name.lower() == name.lower():
                self._apply_window(p)
                return
        raise KeyError(f"no window preset {name!r}")

    def set_inverted(self, inverted: bool) -> None:
        """Invert the grey scale of all three viewers (I)."""
        self._inverted = bool(inverted)
        for viewer in self.viewers.values():
            viewer.set_inverted(self._inverted)
        if self.act_invert.isChecked() != self._inverted:
            self.act_invert.setChecked(self._inverted)

    def inverted(self) -> bool:
        return self._inverted

    def _apply_window(self, window: WindowLevel, emit: bool = True) -> None:
        self._window = window
        for viewer in self.viewers.values():
            viewer.set_window(window)
        self._preset_box.blockSignals(True)
        idx = next((i for i, p in enumerate(PRESETS) if p.name == window.name), -1)
        self._preset_box.setCurrentIndex(idx if idx >= 0 else self._preset_box.count() - 1)
        self._preset_box.blockSignals(False)
        for spin, value in ((self.width_spin, window.width), (self.level_spin, window.level)):
            spin.blockSignals(True)
            spin.setValue(round(value))
            spin.blockSignals(False)
        if emit:
            self.windowChanged.emit(window.width, window.level)

    def _window_dragged(self, dx: float, dy: float, start: bool) -> None:
        if start or self._drag_start is None:
            self._drag_start = self._window
        self._apply_window(drag_window(self._drag_start, dx, dy))

    # ------------------------------------------------------------------ Grad-CAM
    def set_cam(self, phase: str, cam_slice: np.ndarray | None, pair_index: int) -> None:
        """Cache (or with None forget) the CAM of ``phase`` at ``pair_index``; show it if current.

        ``cam_slice`` has the rows × columns of that phase's original slice (as
        ``app.inference`` maps it back), raw values: the colours are scaled by
        :meth:`set_cam_scale` for the whole study.
        """
        key = (phase, int(pair_index))
        if cam_slice is None:
            self._cams.pop(key, None)
        else:
            self._cams[key] = np.asarray(cam_slice)
        if self.paired and int(pair_index) == self._position and phase in self.viewers:
            self.viewers[phase].set_cam(self._cams.get(key))

    def set_cam_cache(
        self,
        cams: Mapping[str, Sequence[np.ndarray | None] | np.ndarray],
        global_max: float | None = None,
        shown: Sequence[bool] = (),
    ) -> None:
        """Replace the whole CAM cache: phase → per-pair arrays (a list, or ``(n_pairs, H, W)``).

        ``global_max`` (``CamResult.global_max``) fixes one colour scale for the study;
        ``shown`` (``CamResult.shown``, per pair) marks the pairs the model did not use, whose
        panes then say so (all used when empty).
        """
        self._cams.clear()
        self._unused = {i for i, on in enumerate(shown) if not on}
        self._show_notes()
        if global_max is not None:
            self.set_cam_scale(global_max)
        for phase, per_pair in cams.items():
            for i, cam in enumerate(per_pair):
                if cam is not None:
                    self._cams[(phase, i)] = np.asarray(cam)
        self._refresh_cams()

    def set_cam_result(self, cam: CamResult, replace: bool = False) -> None:
        """Show an ``app.inference.gradcam.CamResult`` (from ``gradcam_slice`` or ``gradcam_study``).

        Its ``maps[phase][j]`` belong to pair ``pair_indices[j]`` and are already divided by
        the result's ``scale`` (the study's ``global_max``, or the slice's own maximum for a
        viewed slice computed before the study), so the colour scale is fixed to 0..1 here.
        ``replace=True`` drops CAMs of other pairs (use it for a whole-study result, so that a
        provisional per-slice map never survives next to study-normalised ones).
        """
        if replace:
            self._cams.clear()
        for viewer in self.viewers.values():
            viewer.cam.set_scale(1.0)
        maps: Mapping[str, np.ndarray] = cam.maps
        for phase, stack in maps.items():
            for j, pair_index in enumerate(cam.pair_indices):
                self._cams[(phase, int(pair_index))] = np.asarray(stack[j])
        if replace:
            self._unused = {int(p) for p, on in zip(cam.pair_indices, cam.shown, strict=False) if not on}
            self._show_notes()
        self._refresh_cams()

    def _slice_note(self, index: int) -> str:
        """The pane note of pair ``index``: in the liver range, and whether the model used it."""
        parts = ["in liver range"] if bool(self._liver[index]) else []
        if index in self._unused:
            parts.append("not used by the model (no tumour seen): no heat map")
        return " · ".join(parts)

    def _show_notes(self) -> None:
        if not self._n_positions:
            return
        note = self._slice_note(self._position)
        for phase, slice_index in self.indices_at(self._position).items():
            self.viewers[phase].show_slice(slice_index, note)

    def set_cam_scale(self, global_max: float | None) -> None:
        """Colour scale ``0 .. global_max`` for every CAM of the study (None: per slice)."""
        for viewer in self.viewers.values():
            viewer.cam.set_scale(global_max)
        self._refresh_cams()

    def clear_cams(self) -> None:
        """Forget every cached CAM (e.g. a new prediction started)."""
        self._cams.clear()
        self._unused = set()
        self._show_notes()
        self._refresh_cams()

    def has_cam(self, pair_index: int, phase: str | None = None) -> bool:
        """True when the CAM of ``phase`` (default: every shown phase) at ``pair_index`` is cached."""
        phases = [phase] if phase else list(self.indices_at(0)) if self._n_positions else []
        return bool(phases) and all((p, int(pair_index)) in self._cams for p in phases)

    def cam_visible(self) -> bool:
        """The Grad-CAM toggle."""
        return self._cam_visible

    def set_cam_visible(self, visible: bool) -> None:
        """Show or hide the heat maps on all three viewers."""
        visible = bool(visible)
        changed = visible != self._cam_visible
        self._cam_visible = visible
        for viewer in self.viewers.values():
            viewer.cam.set_visible(visible)
        self._cam_check.blockSignals(True)
        self._cam_check.setChecked(visible)
        self._cam_check.blockSignals(False)
        self._refresh_cams()
        if changed:
            self.camVisibleChanged.emit(visible)

    def set_cam_opacity(self, opacity: float) -> None:
        """Opacity 0..1 of the heat maps on all three viewers."""
        opacity = min(max(float(opacity), 0.0), 1.0)
        for viewer in self.viewers.values():
            viewer.cam.set_opacity(opacity)
        self._opacity_slider.blockSignals(True)
        self._opacity_slider.setValue(round(opacity * 100))
        self._opacity_slider.blockSignals(False)

    def set_cam_colormap(self, name: str) -> None:
        """Colour map of the heat maps (:data:`app.ui.cam_overlay.COLORMAPS`)."""
        for viewer in self.viewers.values():
            viewer.cam.set_colormap(name)
        self.cam_legend.set_colormap(name)
        idx = self._cmap_box.findText(name)
        if idx >= 0:
            self._cmap_box.blockSignals(True)
            self._cmap_box.setCurrentIndex(idx)
            self._cmap_box.blockSignals(False)
        self._refresh_cams()

    def _refresh_cams(self) -> None:
        for viewer in self.viewers.values():
            viewer.cam.set_visible(self._cam_visible)
        if not self._n_positions:
            return
        for phase in self.indices_at(self._position):
            self.viewers[phase].set_cam(
                self._cams.get((phase, self._position)) if self.paired else None
            )

    def set_smooth(self, smooth: bool) -> None:
        """Bilinear (default) or nearest-neighbour magnification in all three viewers."""
        for viewer in self.viewers.values():
            viewer.set_smooth(smooth)
        self._smooth_check.blockSignals(True)
        self._smooth_check.setChecked(bool(smooth))
        self._smooth_check.blockSignals(False)

    # ------------------------------------------------------------------ linked zoom / pan
    def reset_views(self) -> None:
        """Fit the union of all phases' slices into the viewers (linked, so one fit for all).

        The union, not the reference phase's field of view: a phase reconstructed with a
        wider field of view must not be cropped.
        """
        rects = [v.geometry_mm.rect for v in self.viewers.values() if v.geometry_mm is not None]
        if not rects or self._ref_phase is None:
            return
        union = rects[0]
        for r in rects[1:]:
            union = union.united(r)
        self._syncing = True
        try:
            for viewer in self.viewers.values():
                viewer.view.setRange(rect=union, padding=0.0)
        finally:
            self._syncing = False

    def _view_range_changed(self, view: pg.ViewBox, *_: object) -> None:
        if not self._syncing:
            self._link_from(view)

    def _link_from(self, source: pg.ViewBox) -> None:
        """Give every other viewer the region ``source`` was asked to show (its target, in mm).

        The target rectangle, not the visible one: with a locked aspect ratio the visible
        region is the target widened to the widget's shape, and copying that widened region
        would widen it again at every resize (a runaway zoom-out, pyqtgraph #1348). Targets
        do not change when a widget is resized, so linking them is stable.
        """
        target = source.targetRect()
        self._syncing = True
        try:
            for viewer in self.viewers.values():
                view = viewer.view
                if view is source or _same_rect(view.targetRect(), target):
                    continue
                view.setRange(rect=target, padding=0.0)
        finally:
            self._syncing = False

    # ------------------------------------------------------------------ keys
    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:  # noqa: N802
        key = QtCore.Qt.Key(ev.key())
        if key in KEY_STEPS:
            self.step(KEY_STEPS[key])
        elif key in KEY_JUMPS:
            self._jump(KEY_JUMPS[key])
        else:
            super().keyPressEvent(ev)
            return
        ev.accept()

    def _jump(self, where: str) -> None:
        if self._n_positions:
            self.set_pair_index(0 if where == "first" else self._n_positions - 1)

    # ------------------------------------------------------------------ helpers
    def _start_position(self) -> int:
        """Middle of the liver range when known, else the middle position."""
        mask = self._liver
        if mask.any():
            where = np.flatnonzero(mask)
            return int(where[len(where) // 2])
        return self._n_positions // 2

    def _update_position_label(self, in_liver: bool) -> None:
        z = self.z_at(self._position)
        z_text = f"z = {z:.1f} mm" if z is not None else ""
        if self.paired:
            where = "in liver range" if in_liver else "outside liver range"
            text = f"Pair {self._position + 1} / {self._n_positions}  ·  {z_text}  ·  {where}"
        else:
            view_only = self._study is not None and self._study.view_only_reason
            text = (
                f"Slice {self._position + 1} / {self._n_positions} ({self._ref_phase})  ·  "
                f"{z_text}  ·  {'viewing only' if view_only else 'not paired yet'}"
            )
        self.position_label.setText(text)

    def _update_enabled(self) -> None:
        self.slider.setEnabled(self._n_positions > 1)

    def _build_toolbar(self) -> QtWidgets.QToolBar:
        """Row 1, the display: window (preset, W, L, invert), Grad-CAM (toggle, opacity, colour
        map and its scale), interpolation, fit. One control per setting: the main window has no
        second W/L box or Grad-CAM toggle (issue 17, item 6)."""
        bar, row = _tool_row()
        self._preset_box = QtWidgets.QComboBox()
        for p in PRESETS:
            self._preset_box.addItem(f"{p.name} ({PRESET_KEYS[p.name]})")
        self._preset_box.addItem("Custom")
        self._preset_box.setToolTip("Window/level preset (keys 1-6); right-drag on an image adjusts it")
        self._preset_box.activated.connect(self._preset_chosen)
        row.addWidget(self._preset_box)
        self.width_spin = _spin(MIN_WIDTH, MAX_WIDTH, "W ", "Window width (HU); Enter applies")
        self.level_spin = _spin(LEVEL_RANGE[0], LEVEL_RANGE[1], "L ", "Window level (HU); Enter applies")
        for spin in (self.width_spin, self.level_spin):
            spin.editingFinished.connect(self._window_typed)
            row.addWidget(spin)
        self._invert_button = QtWidgets.QToolButton()
        row.addWidget(self._invert_button)
        row.addSpacing(12)
        self._cam_check = QtWidgets.QCheckBox("Grad-CAM (H)")
        self._cam_check.setChecked(self._cam_visible)
        self._cam_check.toggled.connect(self.set_cam_visible)
        row.addWidget(self._cam_check)
        self.cam_legend = CamLegend()
        row.addWidget(self.cam_legend)
        self._opacity_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self._opacity_slider.setRange(0, 100)
        self._opacity_slider.setValue(round(DEFAULT_OPACITY * 100))
        self._opacity_slider.setMinimumWidth(60)
        self._opacity_slider.setMaximumWidth(90)
        self._opacity_slider.setToolTip("Opacity of the heat maps (the colour scale is beside)")
        self._opacity_slider.valueChanged.connect(lambda v: self.set_cam_opacity(v / 100.0))
        row.addWidget(self._opacity_slider)
        self._cmap_box = QtWidgets.QComboBox()
        self._cmap_box.addItems(list(COLORMAPS))
        self._cmap_box.setCurrentText(DEFAULT_COLORMAP)
        self._cmap_box.currentTextChanged.connect(self.set_cam_colormap)
        row.addWidget(self._cmap_box)
        row.addSpacing(12)
        self._smooth_check = QtWidgets.QCheckBox("Interpolate")
        self._smooth_check.setChecked(True)
        self._smooth_check.setToolTip("Bilinear magnification; off shows the acquired pixels")
        self._smooth_check.toggled.connect(self.set_smooth)
        row.addWidget(self._smooth_check)
        fit = QtWidgets.QPushButton("Fit")
        fit.setToolTip("Fit the slices to the viewers")
        fit.clicked.connect(self.reset_views)
        row.addWidget(fit)
        row.addStretch(1)
        return bar

    def _build_tools_bar(self) -> QtWidgets.QToolBar:
        """Row 2, the tools: left-button mode (pan, distance, ROIs, crosshair), clear, cine."""
        bar, row = _tool_row()
        self.tool_buttons: dict[str, QtWidgets.QToolButton] = {}
        group = QtWidgets.QButtonGroup(bar)
        group.setExclusive(True)
        for tool, (key, text) in TOOLS.items():
            button = QtWidgets.QToolButton()
            button.setText(f"{text.replace(' ROI', '')} ({key})")
            button.setToolTip(f"Left button: {text.lower()} ({key})")
            button.setCheckable(True)
            button.setChecked(tool == "navigate")
            button.clicked.connect(lambda _c=False, t=tool: self.measure.set_tool(t))
            group.addButton(button)
            self.tool_buttons[tool] = button
            row.addWidget(button)
        self.measure.toolChanged.connect(lambda t: self.tool_buttons[t].setChecked(True))
        clear = QtWidgets.QToolButton()
        clear.setText("Clear")
        clear.setToolTip("Remove every measurement and the crosshair (Shift+Del)")
        clear.clicked.connect(self.measure.clear)
        row.addWidget(clear)
        row.addSpacing(12)
        self.cine_button = QtWidgets.QToolButton()
        self.cine_button.setText("▶ Cine (C)")
        self.cine_button.setCheckable(True)
        self.cine_button.setToolTip("Play through the slices in a loop")
        self.cine_button.clicked.connect(lambda _c=False: self.cine.toggle())
        self.cine.runningChanged.connect(self._cine_state)
        row.addWidget(self.cine_button)
        self.fps_spin = QtWidgets.QSpinBox()
        self.fps_spin.setRange(1, MAX_FPS)
        self.fps_spin.setValue(DEFAULT_FPS)
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.valueChanged.connect(self.cine.set_fps)
        row.addWidget(self.fps_spin)
        row.addStretch(1)
        hint = QtWidgets.QLabel("F1: keyboard and mouse")
        hint.setStyleSheet("color: gray")
        hint.setToolTip("wheel/↑↓: slice · Ctrl+wheel: zoom · drag: pan · right-drag: W/L")
        row.addWidget(hint)
        return bar

    def _build_actions(self) -> None:
        """Hot keys of the viewer, as actions on this widget (active while it is shown).

        They live here, not in the main window, so that the viewer carries its own keys;
        :meth:`view_actions` lists them for a View menu.
        """
        self._view_actions: list[QtGui.QAction] = []

        def action(text: str, key: str, slot: Callable[..., object], checkable: bool = False) -> QtGui.QAction:
            act = QtGui.QAction(text, self)
            act.setShortcut(QtGui.QKeySequence(key))
            act.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            act.setCheckable(checkable)
            if checkable:
                act.toggled.connect(slot)
            else:
                act.triggered.connect(lambda _c=False: slot())
            self.addAction(act)
            self._view_actions.append(act)
            return act

        for p in PRESETS:
            action(f"Window: {p.name}", PRESET_KEYS[p.name], lambda n=p.name: self.set_preset(n))
        self.act_invert = action("Invert grey scale", "I", self.set_inverted, checkable=True)
        self._invert_button.setDefaultAction(self.act_invert)
        self._invert_button.setText("Invert (I)")
        for tool, (key, text) in TOOLS.items():
            action(f"Tool: {text}", key, lambda t=tool: self.measure.set_tool(t))
        action("Clear measurements", "Shift+Del", self.measure.clear)
        self.act_cine = action("Cine (play through the slices)", "C", self.cine.toggle)

    def view_actions(self) -> list[QtGui.QAction]:
        """The viewer's hot-key actions (for the main window's View menu)."""
        return list(self._view_actions)

    def _window_typed(self) -> None:
        self.set_window(self.width_spin.value(), self.level_spin.value())

    def _cine_state(self, running: bool) -> None:
        self.cine_button.setChecked(running)
        self.cine_button.setText("⏸ Cine (C)" if running else "▶ Cine (C)")

    def _preset_chosen(self, index: int) -> None:
        if 0 <= index < len(PRESETS):
            self._apply_window(PRESETS[index])


class _ToolRow:
    """``addWidget`` / ``addSpacing`` / ``addStretch`` onto a ``QToolBar``.

    A toolbar, not a box layout: when the viewer is narrower than its controls (a 1366 px
    laptop with the studies dock open) the controls that do not fit go into the toolbar's "»"
    menu instead of forcing the window wider or being cut off (issue 17, item 5).
    """

    def __init__(self, bar: QtWidgets.QToolBar) -> None:
        self.bar = bar

    def addWidget(self, widget: QtWidgets.QWidget, stretch: int = 0) -> None:  # noqa: N802
        self.bar.addWidget(widget)

    def addSpacing(self, _px: int) -> None:  # noqa: N802
        self.bar.addSeparator()

    def addStretch(self, _factor: int = 1) -> None:  # noqa: N802
        spacer = QtWidgets.QWidget()
        spacer.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Preferred)
        self.bar.addWidget(spacer)


def _tool_row() -> tuple[QtWidgets.QToolBar, _ToolRow]:
    bar = QtWidgets.QToolBar()
    bar.setMovable(False)
    bar.setFloatable(False)
    bar.setIconSize(QtCore.QSize(16, 16))
    bar.setContentsMargins(2, 0, 2, 0)
    return bar, _ToolRow(bar)


def _spin(low: float, high: float, prefix: str, tip: str) -> QtWidgets.QSpinBox:
    spin = QtWidgets.QSpinBox()
    spin.setRange(int(low), int(high))
    spin.setPrefix(prefix)
    spin.setToolTip(tip)
    spin.setKeyboardTracking(False)
    spin.setMinimumWidth(78)
    return spin


def link_vote_strip(panel: ViewerPanel, strip: QtWidgets.QWidget) -> None:
    """Wire a :class:`app.ui.vote_strip.VoteStrip` to ``panel``.

    Clicking a bar moves the viewers, scrolling moves the strip's marker, and a new study
    gives the strip the panel's liver-range mask. Call once after creating both widgets.
    """
    strip.sliceClicked.connect(panel.set_pair_index)  # type: ignore[attr-defined]
    panel.pairIndexChanged.connect(strip.set_current)  # type: ignore[attr-defined]

    def _sync_mask(_: int) -> None:
        mask = panel.liver_mask() if panel.paired else np.zeros(0, dtype=bool)
        if not np.array_equal(mask, strip.liver_mask()):  # type: ignore[attr-defined]
            strip.set_liver_mask(mask)  # type: ignore[attr-defined]

    panel.pairIndexChanged.connect(_sync_mask)
    _sync_mask(panel.pair_index())
    strip.set_current(panel.pair_index())  # type: ignore[attr-defined]


def _same_rect(a: QtCore.QRectF, b: QtCore.QRectF, tol: float = 1e-6) -> bool:
    return all(
        abs(x - y) <= tol
        for x, y in zip((a.x(), a.y(), a.width(), a.height()), (b.x(), b.y(), b.width(), b.height()), strict=True)
    )


def _pair(w: WindowLevel) -> tuple[float, float]:
    return (w.width, w.level)


__all__ = ["LiverRangeSlider", "ViewerPanel", "link_vote_strip"]
