"""The study browser: imported patients → studies → series, and the phase assignment.

The tree shows every series the scan found with its phase, confidence, status and warnings
(icon + tooltip); the series chosen for each phase are bold and marked ("▶ arterial"). Under
the tree, one combo per phase ("Plain: [series ▾]") changes that phase's series in one click,
and a banner lists the reasons when the assignment needs the user's confirmation, with a
"Confirm…" button. The widget only displays and emits; the main window decides what to do
(re-assemble in a worker, ask for confirmation, ...).

It shows the scan's dataclasses (``ScanResult.patients`` → ``.studies`` → ``.series`` of
:class:`app.dicom.types.SeriesInfo`) and an :class:`AssembledStudy`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtGui, QtWidgets

from app import PHASES
from app.case.flow import shown_warnings
from app.dicom.patients import patient_id_collisions
from app.dicom.studies import study_key
from app.dicom.types import AssembledStudy, PhaseCall, SeriesInfo
from app.ui.plain import plain_label, plain_tip

if TYPE_CHECKING:  # pragma: no cover - typing only; the scanner imports pydicom
    from app.dicom.scan import ScanResult, StudyInfo

PHASE_TITLES = {"plain": "Plain", "arterial": "Arterial", "portal": "Portal venous"}

COL_SERIES, COL_PHASE, COL_CONF, COL_SLICES, COL_STATUS = range(5)
HEADERS = ("Series", "Phase", "Conf.", "Slices", "Status")

#: Item data roles: what a tree row stands for.
ROLE_KIND = QtCore.Qt.ItemDataRole.UserRole
ROLE_KEY = QtCore.Qt.ItemDataRole.UserRole + 1
#: A series row's tooltip as plain text (the shown tooltip is its escaped rich-text form).
ROLE_TIP = QtCore.Qt.ItemDataRole.UserRole + 3


def series_label(series: SeriesInfo) -> str:
    """"#3 ART 5.0 B30f" — number and description, as radiographers name series."""
    number = f"#{series.series_number} " if series.series_number is not None else ""
    return f"{number}{series.description or '(no description)'}"


def series_summary(series: SeriesInfo) -> str:
    """One line for combos: label, slices, thickness."""
    thick = f", {series.slice_thickness:g} mm" if series.slice_thickness else ""
    return f"{series_label(series)} ({series.n_slices} sl{thick})"


def is_candidate(series: SeriesInfo) -> bool:
    """Series the user may assign to a phase: axial CT that the scan did not refuse."""
    return series.status != "refused" and series.orientation == "axial" and series.modality == "CT"


class StudyBrowser(QtWidgets.QWidget):
    """Patients/studies/series tree + per-phase assignment combos + confirmation banner.

    Signals
    -------
    studySelected(str)
        The user picked another study (its key, see :func:`study_key`).
    overrideRequested(str, str)
        (phase, series uid): the user chose another series for a phase.
    confirmRequested()
        The user pressed "Confirm…" on the needs-confirmation banner.
    """

    studySelected = QtCore.Signal(str)
    overrideRequested = QtCore.Signal(str, str)
    confirmRequested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._scan: ScanResult | None = None
        self._studies: dict[str, StudyInfo] = {}
        self._current: str | None = None
        self._series_items: dict[str, QtWidgets.QTreeWidgetItem] = {}
        self._updating = False

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)

        self.summary = plain_label(QtWidgets.QLabel("No folder imported."))
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)

        self.tree = QtWidgets.QTreeWidget()
        self.tree.setHeaderLabels(list(HEADERS))
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(COL_SERIES, QtWidgets.QHeaderView.ResizeMode.Stretch)
        for col in (COL_PHASE, COL_CONF, COL_SLICES, COL_STATUS):
            self.tree.header().setSectionResizeMode(
                col, QtWidgets.QHeaderView.ResizeMode.ResizeToContents
            )
        self.tree.currentItemChanged.connect(self._on_current_item)
        # Right-click a series: "Use as plain / arterial / portal venous" (one choice per phase).
        self.tree.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        layout.addWidget(self.tree, 1)

        self.banner = QtWidgets.QFrame()
        self.banner.setObjectName("confirmBanner")
        self.banner.setStyleSheet(
            "#confirmBanner { background: #fff3cd; border: 1px solid #d39e00; border-radius: 4px; }"
            "#confirmBanner QLabel { color: #4d3800; }"
        )
        banner_layout = QtWidgets.QVBoxLayout(self.banner)
        self.banner_text = QtWidgets.QLabel()
        self.banner_text.setWordWrap(True)
        banner_layout.addWidget(self.banner_text)
        self.confirm_button = QtWidgets.QPushButton("Confirm assignment…")
        self.confirm_button.clicked.connect(self.confirmRequested)
        banner_layout.addWidget(self.confirm_button, 0, QtCore.Qt.AlignmentFlag.AlignRight)
        self.banner.hide()
        layout.addWidget(self.banner)

        box = QtWidgets.QGroupBox("Phase assignment")
        form = QtWidgets.QFormLayout(box)
        self.combos: dict[str, QtWidgets.QComboBox] = {}
        for phase in PHASES:
            combo = QtWidgets.QComboBox()
            combo.setSizeAdjustPolicy(
                QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(18)
            combo.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)
            combo.activated.connect(lambda _i, p=phase: self._on_combo(p))
            combo.setEnabled(False)
            self.combos[phase] = combo
            form.addRow(f"{PHASE_TITLES[phase]}:", combo)
        self.assembly_note = QtWidgets.QLabel()
        self.assembly_note.setWordWrap(True)
        form.addRow(self.assembly_note)
        layout.addWidget(box)

    # -- content ----------------------------------------------------------------------------
    def clear(self) -> None:
        self._scan = None
        self._studies.clear()
        self._series_items.clear()
        self._current = None
        self.tree.clear()
        self.summary.setText("No folder imported.")
        self.banner.hide()
        for combo in self.combos.values():
            combo.clear()
            combo.setEnabled(False)
        self.assembly_note.clear()

    def set_scan(self, scan: ScanResult, select: str | None = None) -> None:
        """Show a scan result; selects ``select`` (a study key) or the first study."""
        self._updating = True
        try:
            self.clear()
            self._scan = scan
            style = self.style()
            warn_icon = style.standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MessageBoxWarning)
            refused_icon = style.standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MessageBoxCritical)
            first: QtWidgets.QTreeWidgetItem | None = None
            wanted: QtWidgets.QTreeWidgetItem | None = None
            shared = patient_id_collisions(scan)
            for patient in scan.patients:
                pid = patient.patient_id or "(no ID)"
                pname = patient.patient_name
                p_item = QtWidgets.QTreeWidgetItem([f"{pname}  [{pid}]" if pname else pid])
                p_item.setData(0, ROLE_KIND, "patient")
                if patient.patient_id in shared:  # issue 14, item 6: never merged silently
                    p_item.setText(0, "⚠ " + p_item.text(0))
                    p_item.setIcon(COL_STATUS, warn_icon)
                    p_item.setForeground(0, QtGui.QBrush(QtGui.QColor("#a05a00")))
                    tip = (f"Patient ID {patient.patient_id} is used by {shared[patient.patient_id]} "
                           "different people (names or birth dates differ): shown as separate "
                           "patients. Check which person each study belongs to.")
                    for col in range(len(HEADERS)):
                        p_item.setToolTip(col, plain_tip(tip))
                self.tree.addTopLevelItem(p_item)
                for study in patient.studies:
                    key = study_key(study)
                    self._studies[key] = study
                    date = study.study_date
                    desc = study.study_description or "study"
                    s_item = QtWidgets.QTreeWidgetItem([f"{_fmt_date(date)}  {desc}".strip()])
                    s_item.setData(0, ROLE_KIND, "study")
                    s_item.setData(0, ROLE_KEY, key)
                    p_item.addChild(s_item)
                    first = first or s_item
                    if key == select:
                        wanted = s_item
                    for series in study.series:
                        item = QtWidgets.QTreeWidgetItem(
                            [series_label(series), "", "", str(series.n_slices), series.status]
                        )
                        item.setData(0, ROLE_KIND, "series")
                        item.setData(0, ROLE_KEY, key)
                        item.setData(COL_SERIES, QtCore.Qt.ItemDataRole.UserRole + 2, series.uid)
                        tips = [series_summary(series), f"UID {series.uid}"]
                        if series.status == "refused":
                            item.setIcon(COL_STATUS, refused_icon)
                            tips.append(f"Refused: {series.refused_reason or 'no reason given'}")
                            item.setForeground(COL_SERIES, QtGui.QBrush(QtGui.QColor("#888888")))
                        elif series.warnings:
                            item.setIcon(COL_STATUS, warn_icon)
                        tips += [f"⚠ {w}" for w in series.warnings]
                        tip = "\n".join(tips)
                        item.setData(COL_SERIES, ROLE_TIP, tip)  # the plain text, for the phase marker
                        for col in range(len(HEADERS)):
                            item.setToolTip(col, plain_tip(tip))
                        self._apply_phase(item, series.phase_call)
                        s_item.addChild(item)
                        self._series_items[series.uid] = item
            self.tree.expandAll()
            n_series = len(self._series_items)
            self.summary.setText(
                f"{len(scan.patients)} patient(s), {len(self._studies)} study(ies), "
                f"{n_series} series. {_files_text(scan)}"
                + "".join(f"\n⚠ Patient ID {pid} is used by {n} different people: shown as "
                          "separate patients." for pid, n in shared.items())
            )
            self.summary.setStyleSheet("color: #a05a00;" if shared else "")
        finally:
            self._updating = False
        target = wanted or first
        if target is not None:
            self.tree.setCurrentItem(target)

    def _apply_phase(self, item: QtWidgets.QTreeWidgetItem, call: PhaseCall | None) -> None:
        if call is None:
            item.setText(COL_PHASE, "")
            item.setText(COL_CONF, "")
            return
        text = call.phase + (" ⚡" if call.conflict else "")
        item.setText(COL_PHASE, text)
        item.setText(COL_CONF, f"{call.confidence * 100:.0f} %")
        evidence = "\n".join(call.evidence) or "no evidence recorded"
        tip = f"{call.phase} ({call.confidence * 100:.0f} %)\n{evidence}"
        if call.conflict:
            tip += "\nTag and image evidence disagree."
        item.setToolTip(COL_PHASE, plain_tip(tip))
        item.setToolTip(COL_CONF, plain_tip(tip))

    def set_assembly(self, key: str, study: AssembledStudy | None, error: str | None = None) -> None:
        """Show the assignment of study ``key``: bold rows, combos, banner (or the error)."""
        scan_study = self._studies.get(key)
        if scan_study is None:
            return
        self._updating = True
        try:
            assignment = dict(study.assignment) if study is not None else {}
            calls = dict(study.phase_calls) if study is not None else {}
            for series in scan_study.series:
                item = self._series_items.get(series.uid)
                if item is None:
                    continue
                call = calls.get(series.uid) or series.phase_call
                self._apply_phase(item, call)
                phases = [p for p, uid in assignment.items() if uid == series.uid]
                font = item.font(COL_SERIES)
                font.setBold(bool(phases))
                for col in range(len(HEADERS)):
                    item.setFont(col, font)
                label = series_label(series)
                # bold + a marker; the phase itself is in the Phase column next to it
                item.setText(COL_SERIES, f"▶ {label}" if phases else label)
                base = item.data(COL_SERIES, ROLE_TIP) or ""  # the series' summary and warnings
                used = f"Used as the {phases[0]} phase\n" if phases else ""
                item.setToolTip(COL_SERIES, plain_tip(used + base))
            candidates = [s for s in scan_study.series if is_candidate(s)]
            for phase, combo in self.combos.items():
                combo.clear()
                for s in candidates:
                    call = calls.get(s.uid) or s.phase_call
                    # The phase call first: it is what the choice is about, and a narrow dock
                    # cuts the end of the text (issue 17, item 5); the full text is the tooltip.
                    prefix = f"{call.phase} {call.confidence * 100:.0f} % · " if call else ""
                    combo.addItem(prefix + series_summary(s), s.uid)
                    combo.setItemData(combo.count() - 1, plain_tip(prefix + series_summary(s)),
                                      QtCore.Qt.ItemDataRole.ToolTipRole)
                chosen = assignment.get(phase)
                if chosen is None:
                    combo.insertItem(0, "— none —", None)
                    combo.setCurrentIndex(0)
                else:
                    combo.setCurrentIndex(max(0, combo.findData(chosen)))
                combo.setToolTip(plain_tip(combo.currentText()))
                # the drop-down list is as wide as its longest entry, whatever the dock's width
                fm = combo.fontMetrics()
                widest = max((fm.horizontalAdvance(combo.itemText(i)) for i in range(combo.count())), default=0)
                combo.view().setMinimumWidth(widest + 32)
                combo.setEnabled(bool(candidates))
            if error:
                self.assembly_note.setText(f"<b>Cannot predict:</b> {html.escape(error)}")
            elif study is not None and study.view_only_reason:
                self.assembly_note.setText(
                    "<b>Viewing only — prediction is off:</b> "
                    f"{html.escape(study.view_only_reason)}. Any series can still be shown in "
                    "a pane (choose it above)."
                )
            elif study is not None:
                # what the prediction will record as shown: the assembly's warnings, the chosen
                # series' own (a gap, lossy compression...) and the files the scan rejected
                notes = shown_warnings(self._scan, study)
                if study.overrides:
                    notes.insert(0, "set by hand: " + ", ".join(sorted(study.overrides)))
                n = len(study.pairs)
                self.assembly_note.setText(
                    f"{n} paired slice level(s) in the liver range."
                    + "".join(f"<br>⚠ {html.escape(w)}" for w in notes)
                )
            else:
                self.assembly_note.setText("Assembling…")
        finally:
            self._updating = False

    def set_confirmation(self, reasons: Sequence[str] | None, confirmed: bool) -> None:
        """Show the needs-confirmation banner (reasons) unless confirmed; hide it otherwise."""
        if not reasons:
            self.banner.hide()
            return
        items = "".join(f"<li>{html.escape(r)}</li>" for r in reasons)
        if confirmed:
            self.banner_text.setText(f"<b>Assignment confirmed by you.</b><ul>{items}</ul>")
            self.confirm_button.hide()
        else:
            self.banner_text.setText(
                "<b>Needs your confirmation before prediction:</b>"
                f"<ul>{items}</ul>Check the series (or change a phase below), then confirm."
            )
            self.confirm_button.show()
        self.banner.show()

    # -- queries ----------------------------------------------------------------------------
    def current_key(self) -> str | None:
        return self._current

    def study(self, key: str) -> StudyInfo | None:
        return self._studies.get(key)

    def series_item(self, uid: str) -> QtWidgets.QTreeWidgetItem | None:
        return self._series_items.get(uid)

    def select_study(self, key: str) -> None:
        for i in range(self.tree.topLevelItemCount()):
            p_item = self.tree.topLevelItem(i)
            if p_item is None:
                continue
            for j in range(p_item.childCount()):
                s_item = p_item.child(j)
                if s_item is not None and s_item.data(0, ROLE_KEY) == key:
                    self.tree.setCurrentItem(s_item)
                    return

    # -- events -----------------------------------------------------------------------------
    def _on_current_item(self, item: QtWidgets.QTreeWidgetItem | None,
                         _prev: QtWidgets.QTreeWidgetItem | None) -> None:
        if item is None:
            return
        key = item.data(0, ROLE_KEY)
        first_child = item.child(0) if item.childCount() else None
        if key is None and first_child is not None:  # a patient: take its first study
            key = first_child.data(0, ROLE_KEY)
        if key and key != self._current:
            self._current = key
            self.studySelected.emit(key)

    def series_menu(self, item: QtWidgets.QTreeWidgetItem) -> QtWidgets.QMenu | None:
        """The "Use as ..." menu of a series row (None for patients, studies, refused series)."""
        if item.data(0, ROLE_KIND) != "series":
            return None
        uid = item.data(COL_SERIES, QtCore.Qt.ItemDataRole.UserRole + 2)
        key = item.data(0, ROLE_KEY)
        study = self._studies.get(key)
        series = next((s for s in study.series if s.uid == uid), None) if study else None
        if series is None or not is_candidate(series) or key != self._current:
            return None
        menu = QtWidgets.QMenu(self)
        for phase in PHASES:
            act = menu.addAction(f"Use as {PHASE_TITLES[phase].lower()} phase")
            act.triggered.connect(lambda _c=False, p=phase, u=uid: self.overrideRequested.emit(p, u))
        return menu

    def _context_menu(self, pos: QtCore.QPoint) -> None:
        item = self.tree.itemAt(pos)
        menu = self.series_menu(item) if item is not None else None
        if menu is not None:
            menu.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
            menu.popup(self.tree.viewport().mapToGlobal(pos))

    def _on_combo(self, phase: str) -> None:
        if self._updating:
            return
        uid = self.combos[phase].currentData()
        if uid:
            self.overrideRequested.emit(phase, uid)


def _fmt_date(value: str) -> str:
    """DICOM DA "20240131" → "2024-01-31" (other strings unchanged)."""
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def _files_text(scan: ScanResult) -> str:
    """"120 files used, 3 skipped, 1 rejected" from the scan's file outcomes."""
    counts = scan.counts
    parts = [f"{counts[s]} {s}" for s in ("used", "skipped", "rejected") if counts.get(s)]
    return "Files: " + ", ".join(parts) + "." if parts else ""
