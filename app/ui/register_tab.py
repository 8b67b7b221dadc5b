"""The register tab: the local case register as a searchable, sortable, filterable table.

A ``QTableView`` over :class:`CaseTableModel`, fed by ``Register.list_cases`` (the register
does the searching, filtering and sorting in SQL, so the tab stays fast with thousands of
cases: a header click re-queries with another ``sort``). Around it: a search box, model and
outcome filters, "Record outcome…" (CR/PR/SD/PD, date, by), the local performance table
(``Register.performance()``), CSV export (pseudonymise option) and "Verify register".

Every register call runs in a worker (:mod:`app.case.records` through the window's
:class:`~app.ui.workers.JobManager`), never on the GUI thread: a register locked by another
program makes a call wait up to the busy timeout, and the window must stay responsive meanwhile.
Each action returns its :class:`~app.ui.workers.Job`; the table follows when the job ends.

Double-clicking a case emits ``openCase(prediction_id)``; the main window re-opens it. Register
errors are shown through :mod:`app.ui.dialogs` and never leave the tab unusable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets

from app.case import records
from app.case.records import CaseQuery, RegisterView
from app.inference.config import score_source
from app.ui import dialogs
from app.ui.plain import plain_label, plain_tip
from app.ui.workers import Job, JobManager

if TYPE_CHECKING:  # pragma: no cover - typing only
    from app.register import Register
    from app.register.performance import PerformanceRow
    from app.register.records import CaseRow, VerifyReport

log = logging.getLogger(__name__)


def _outcome(row: CaseRow) -> str | None:
    if row.outcome and row.outcome_date:
        return f"{row.outcome} ({row.outcome_date})"
    return row.outcome


#: (header, the cell's value, sort key understood by ``list_cases``)
COLUMNS: tuple[tuple[str, Callable[[CaseRow], object], str | None], ...] = (
    ("ID", lambda r: r.id, "id"),
    ("Recorded", lambda r: r.created_at, "created_at"),
    ("Patient ID", lambda r: r.patient_id, "patient_id"),
    ("Name", lambda r: r.patient_name, "patient_name"),
    ("Study date", lambda r: r.study_date, "study_date"),
    ("Prediction", lambda r: r.label, "label"),
    ("Score", lambda r: r.score, "score"),
    # a vote fraction and a patient head's probability are different scales: say which it is
    ("Score from", lambda r: score_source(r.decided_by) or None, None),
    ("Votes", lambda r: r.vote_split, "votes"),
    ("Model", lambda r: f"{r.model_name} {r.model_version}".strip(), "model"),
    ("Outcome", _outcome, "outcome"),
)

OUTCOME_FILTERS: tuple[tuple[str, str], ...] = (
    ("Any outcome", "any"),
    ("With outcome", "with"),
    ("Without outcome", "without"),
    ("CR", "CR"),
    ("PR", "PR"),
    ("SD", "SD"),
    ("PD", "PD"),
)


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


#: Tooltip of a case recorded but never shown (issue 14, item 9).
NEVER_SHOWN_TIP = ("Recorded but never shown: the app ended after recording this prediction and "
                   "before showing it. Open the case to review it.")


class CaseTableModel(QtCore.QAbstractTableModel):
    """Rows of ``Register.list_cases`` (CaseRow objects) as a read-only table."""

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[CaseRow] = []
        self._unshown: set[int] = set()

    def set_rows(self, rows: Sequence[CaseRow], unshown: Sequence[int] = ()) -> None:
        """Show ``rows``; the cases in ``unshown`` (recorded, never shown) are marked ⚠."""
        self.beginResetModel()
        self._rows = list(rows)
        self._unshown = set(unshown)
        self.endResetModel()

    def row(self, index: int) -> CaseRow:
        return self._rows[index]

    def rows(self) -> list[CaseRow]:
        return list(self._rows)

    def rowCount(self, parent: QtCore.QModelIndex | QtCore.QPersistentModelIndex = QtCore.QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QtCore.QModelIndex | QtCore.QPersistentModelIndex = QtCore.QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QtCore.QModelIndex | QtCore.QPersistentModelIndex, role: int = QtCore.Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        header, value, _sort = COLUMNS[index.column()]
        unshown = header == "ID" and row.id in self._unshown
        if role == QtCore.Qt.ItemDataRole.DisplayRole:
            return f"⚠ {_cell(value(row))}" if unshown else _cell(value(row))
        if role == QtCore.Qt.ItemDataRole.UserRole:
            return row.id
        if role == QtCore.Qt.ItemDataRole.ToolTipRole:  # names and IDs come from the files
            if unshown:
                return plain_tip(NEVER_SHOWN_TIP)
            return plain_tip(_cell(value(row)))
        if role == QtCore.Qt.ItemDataRole.TextAlignmentRole and header in ("ID", "Score"):
            return int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: QtCore.Qt.Orientation, role: int = QtCore.Qt.ItemDataRole.DisplayRole) -> object:  # noqa: N802
        if role == QtCore.Qt.ItemDataRole.DisplayRole and orientation == QtCore.Qt.Orientation.Horizontal:
            return COLUMNS[section][0]
        return None


class OutcomeDialog(QtWidgets.QDialog):
    """Record the RECIST 1.1 outcome of a case: category, date, entered by."""

    def __init__(self, case_text: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Record outcome")
        form = QtWidgets.QFormLayout(self)
        self.case_label = plain_label(QtWidgets.QLabel(case_text))  # a patient name is not markup
        form.addRow(self.case_label)
        self.category = QtWidgets.QComboBox()
        # No pre-selected category: an outcome recorded by pressing Enter would be a silent
        # "complete response". The first item is a prompt and OK stays off until a choice.
        self.category.addItem("— choose the RECIST 1.1 category —", None)
        for cat, text in (
            ("CR", "CR — complete response"),
            ("PR", "PR — partial response"),
            ("SD", "SD — stable disease"),
            ("PD", "PD — progressive disease"),
        ):
            self.category.addItem(text, cat)
        form.addRow("RECIST 1.1:", self.category)
        self.date = QtWidgets.QDateEdit(QtCore.QDate.currentDate())
        self.date.setCalendarPopup(True)
        self.date.setDisplayFormat("yyyy-MM-dd")
        form.addRow("Assessed on:", self.date)
        self.by = QtWidgets.QLineEdit()
        self.by.setPlaceholderText("name or initials")
        form.addRow("Entered by:", self.by)
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setEnabled(False)
        self.category.currentIndexChanged.connect(
            lambda _i: self.ok_button.setEnabled(self.category.currentData() is not None)
        )
        form.addRow(buttons)

    def values(self) -> tuple[str, str, str]:
        """(category, ISO date, entered by)."""
        return (
            str(self.category.currentData()),
            self.date.date().toString("yyyy-MM-dd"),
            self.by.text().strip(),
        )


def _performance_rows(perf: Sequence[PerformanceRow]) -> list[dict[str, object]]:
    """``Register.performance()`` as dicts (one per model version) for the table."""
    return [dataclasses.asdict(row) for row in perf]


def _reference_text() -> str:
    """The paper's validation figures, for comparison with the local ones."""
    from app.register.performance import DEFAULT_REFERENCE as ref

    lo, hi = ref.auc_ci
    return (
        f"<small>Reference ({ref.source}, {ref.model}, n = {ref.n}): AUC {ref.auc:.3f} "
        f"({lo:.3f}–{hi:.3f}), accuracy {ref.accuracy:.3f}, sensitivity {ref.sensitivity:.3f}, "
        f"specificity {ref.specificity:.3f}. Local figures on few cases are very uncertain.</small>"
    )


#: Column headings of the local-performance table (the row's field → what a reader understands).
PERFORMANCE_HEADINGS: dict[str, str] = {
    "model_name": "Model",
    "model_version": "Version",
    "n": "Cases",
    "n_responders": "Responders",
    "auc": "AUC",
    "auc_ci": "AUC 95 % CI",
    "sensitivity": "Sensitivity",
    "sensitivity_ci": "Sensitivity 95 % CI",
    "specificity": "Specificity",
    "specificity_ci": "Specificity 95 % CI",
    "accuracy": "Accuracy",
    "accuracy_ci": "Accuracy 95 % CI",
}

#: What the performance pane says before any case has a recorded outcome.
NO_PERFORMANCE_TEXT = (
    "No local performance yet: it is computed from cases whose RECIST 1.1 outcome has been "
    "recorded (select a case and use “Record outcome…”)."
)


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, float)) or v is None for v in value
    ):
        return "–".join(_fmt(v) for v in value)
    return str(value)


class RegisterTab(QtWidgets.QWidget):
    """The register as a table with search, filters, outcome entry, performance and export.

    Parameters
    ----------
    register:
        An open ``app.register.Register`` (or None until one is opened: the tab then says so).
    jobs:
        The window's job manager (the tab's own when not given), which runs every register
        call in a worker.

    Signals
    -------
    openCase(int)
        The user double-clicked a case (its prediction id).
    """

    openCase = QtCore.Signal(int)
    #: Number of cases recorded but never shown, after each refresh.
    unshownChanged = QtCore.Signal(int)

    def __init__(self, register: Register | None = None,
                 parent: QtWidgets.QWidget | None = None, *, jobs: JobManager | None = None) -> None:
        super().__init__(parent)
        self._register = register
        self.jobs = jobs if jobs is not None else JobManager(self)
        self._sort = ("created_at", True)
        self._select_after: int | None = None
        #: Case ids recorded for display and never shown (:mod:`app.register.display`).
        self.unshown: list[int] = []
        #: Case ids on screen whose "shown" mark is being written (not "never shown" meanwhile).
        self._marking: set[int] = set()
        layout = QtWidgets.QVBoxLayout(self)

        bar = QtWidgets.QHBoxLayout()
        self.search = QtWidgets.QLineEdit()
        self.search.setPlaceholderText("Search patient ID or name…")
        self.search.setClearButtonEnabled(True)
        bar.addWidget(self.search, 2)
        self.model_filter = QtWidgets.QComboBox()
        self.model_filter.addItem("All models", None)
        bar.addWidget(self.model_filter)
        self.outcome_filter = QtWidgets.QComboBox()
        for text, value in OUTCOME_FILTERS:
            self.outcome_filter.addItem(text, value)
        bar.addWidget(self.outcome_filter)
        self.outcome_button = QtWidgets.QPushButton("Record outcome…")
        self.outcome_button.setEnabled(False)
        bar.addWidget(self.outcome_button)
        self.open_button = QtWidgets.QPushButton("Open case")
        self.open_button.setEnabled(False)
        bar.addWidget(self.open_button)
        self.export_button = QtWidgets.QPushButton("Export CSV…")
        bar.addWidget(self.export_button)
        self.images_button = QtWidgets.QPushButton("Export de-identified images…")
        self.images_button.setToolTip("Write the selected case's three phases as DICOM "
                                      "de-identified by the PS3.15 basic profile")
        self.images_button.setEnabled(False)
        bar.addWidget(self.images_button)
        self.verify_button = QtWidgets.QPushButton("Verify")
        bar.addWidget(self.verify_button)
        layout.addLayout(bar)
        #: Cases recorded but never shown (the app was killed in between): said at the top.
        self.unshown_label = plain_label(QtWidgets.QLabel())
        self.unshown_label.setWordWrap(True)
        self.unshown_label.setStyleSheet("background:#fff3cd; color:#4d3800; padding:4px;")
        self.unshown_label.hide()
        layout.addWidget(self.unshown_label)

        splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.table = QtWidgets.QTableView()
        self.model = CaseTableModel(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionsClickable(True)
        self.table.horizontalHeader().setSortIndicatorShown(True)
        self.table.horizontalHeader().sectionClicked.connect(self._on_header)
        self.table.doubleClicked.connect(self._on_double_click)
        splitter.addWidget(self.table)

        perf_box = QtWidgets.QGroupBox("Local performance (cases with a recorded outcome)")
        perf_layout = QtWidgets.QVBoxLayout(perf_box)
        self.performance = QtWidgets.QTableWidget(0, 0)
        self.performance.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.performance.verticalHeader().hide()
        perf_layout.addWidget(self.performance)
        self.performance_empty = QtWidgets.QLabel(NO_PERFORMANCE_TEXT)
        self.performance_empty.setWordWrap(True)
        self.performance_empty.setStyleSheet("color: gray;")
        perf_layout.addWidget(self.performance_empty)
        self.performance.hide()  # until outcomes give it rows (_show_performance)
        self.reference = QtWidgets.QLabel(_reference_text())
        self.reference.setWordWrap(True)
        perf_layout.addWidget(self.reference)
        splitter.addWidget(perf_box)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        layout.addWidget(splitter, 1)

        self.status = plain_label(QtWidgets.QLabel())  # register errors quote paths and values
        layout.addWidget(self.status)

        # Searching re-queries SQL; debounce typing so that each keystroke does not.
        self._search_timer = QtCore.QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(200)
        self._search_timer.timeout.connect(self.refresh)
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self.model_filter.activated.connect(lambda _i: self.refresh())
        self.outcome_filter.activated.connect(lambda _i: self.refresh())
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.outcome_button.clicked.connect(self.record_outcome_dialog)
        self.open_button.clicked.connect(self._open_selected)
        self.export_button.clicked.connect(self.export_dialog)
        self.images_button.clicked.connect(self.export_images_dialog)
        self.verify_button.clicked.connect(self.verify)
        self.refresh()

    # -- data -------------------------------------------------------------------------------
    def set_register(self, register: Register | None) -> None:
        self._register = register
        self.refresh()

    @property
    def register(self) -> Register | None:
        return self._register

    def _run(self, name: str, fn: Callable[..., object], *, key: str | None = None,
             failure: str = "") -> Job:
        """Run a register call in a worker; a failure is shown as ``failure: message``."""
        job = self.jobs.start(name, lambda _progress: fn(), key=key)
        if failure:
            job.failed.connect(lambda msg, details: dialogs.show_error(
                self, f"{failure}: {msg}", details))
        return job

    def query(self) -> CaseQuery:
        """The search, filters and sort on screen."""
        sort, descending = self._sort
        return CaseQuery(self.search.text().strip(), self.model_filter.currentData(),
                         self.outcome_filter.currentData(), sort, descending)

    def mark_shown(self, prediction_id: int) -> Job | None:
        """Record (in a worker) that a case's result is on screen, then refresh the table."""
        reg = self._register
        if reg is None or reg.read_only:
            return None
        self._marking.add(prediction_id)
        job = self._run("Register", lambda: records.mark_shown(reg, prediction_id),
                        key=f"register-shown-{prediction_id}")

        def done(failure: str | None = None) -> None:
            self._marking.discard(prediction_id)
            if failure is not None:
                log.warning("case %s not marked shown: %s", prediction_id, failure)
            self.refresh()

        job.finished.connect(lambda _id: done())
        job.failed.connect(lambda msg, _details: done(msg))
        job.cancelled.connect(lambda: self._marking.discard(prediction_id))
        return job

    def refresh(self) -> Job | None:
        """Re-query the register (in a worker) with the current search, filters and sort."""
        reg = self._register
        for w in (self.export_button, self.verify_button, self.search):
            w.setEnabled(reg is not None)
        if reg is None:
            self.model.set_rows([])
            self.unshown = []
            self.unshown_label.hide()
            self.status.setText("No register is open (see Settings).")
            return None
        query = self.query()
        job = self._run("Register", lambda: records.load_view(reg, query), key="register-view")
        job.finished.connect(lambda view: self._show_view(reg, view))
        job.failed.connect(lambda msg, _details: self._view_failed(msg))
        return job

    def _view_failed(self, message: str) -> None:
        self.status.setText(f"Register error: {message}")
        log.warning("register list failed: %s", message)

    def _show_view(self, register: Register, view: RegisterView) -> None:
        if register is not self._register:
            return  # the register was changed meanwhile
        from app.register.display import unshown_text  # the register's modules load lazily

        self.unshown = [i for i in view.unshown if i not in self._marking]
        self.model.set_rows(view.rows, self.unshown)
        self.unshown_label.setText(unshown_text(self.unshown))
        self.unshown_label.setVisible(bool(self.unshown))
        self.unshownChanged.emit(len(self.unshown))
        # Names and model identities are read whole (issue 17, item 5: they were cut off).
        self.table.resizeColumnsToContents()
        known = {self.model_filter.itemData(i) for i in range(self.model_filter.count())}
        for name in view.model_names:
            if name not in known:
                self.model_filter.addItem(name, name)
        self.status.setText(f"{len(view.rows)} case(s) shown. Register: {register.path}")
        self._show_performance(view.performance)
        if self._select_after is not None:
            self.select_id(self._select_after)
            self._select_after = None
        self._on_selection()

    def _show_performance(self, perf: Sequence[PerformanceRow]) -> None:
        rows = _performance_rows(perf)
        keys: list[str] = []
        for row in rows:
            for k, v in row.items():
                # nested values (the paper's reference figures) are shown below the table
                if k not in keys and not isinstance(v, dict):
                    keys.append(k)
        self.performance.clear()
        self.performance.setColumnCount(len(keys))
        self.performance.setRowCount(len(rows))
        self.performance.setHorizontalHeaderLabels(
            [PERFORMANCE_HEADINGS.get(k, k.replace("_", " ").capitalize()) for k in keys]
        )
        # An empty table is a white box that says nothing; say why it is empty instead.
        self.performance.setVisible(bool(rows))
        self.performance_empty.setVisible(not rows)
        for r, row in enumerate(rows):
            for c, key in enumerate(keys):
                self.performance.setItem(r, c, QtWidgets.QTableWidgetItem(_fmt(row.get(key))))
        self.performance.resizeColumnsToContents()

    def selected_id(self) -> int | None:
        indexes = self.table.selectionModel().selectedRows()
        if not indexes:
            return None
        return int(self.model.row(indexes[0].row()).id)

    def select_id(self, prediction_id: int) -> bool:
        for i, row in enumerate(self.model.rows()):
            if row.id == prediction_id:
                self.table.selectRow(i)
                return True
        return False

    # -- actions ----------------------------------------------------------------------------
    def _on_header(self, section: int) -> None:
        key = COLUMNS[section][2]
        if key is None:
            return
        current, descending = self._sort
        descending = not descending if key == current else False
        self._sort = (key, descending)
        order = QtCore.Qt.SortOrder.DescendingOrder if descending else QtCore.Qt.SortOrder.AscendingOrder
        self.table.horizontalHeader().setSortIndicator(section, order)
        self.refresh()

    def _on_selection(self, *_args: object) -> None:
        has = self.selected_id() is not None
        self.outcome_button.setEnabled(has)
        self.open_button.setEnabled(has)
        self.images_button.setEnabled(has)

    def _on_double_click(self, index: QtCore.QModelIndex) -> None:
        if index.isValid():
            self.openCase.emit(int(self.model.row(index.row()).id))

    def _open_selected(self) -> None:
        pid = self.selected_id()
        if pid is not None:
            self.openCase.emit(pid)

    def record_outcome(self, prediction_id: int, category: str, date: str, by: str) -> Job | None:
        """Record an outcome for a case (in a worker); errors are shown, the table follows."""
        reg = self._register
        if reg is None:
            return None
        job = self._run("Record outcome",
                        lambda: records.record_outcome(reg, prediction_id, category, date, by),
                        failure="The outcome was not recorded")
        job.finished.connect(lambda pid: self._after_change(int(pid)))
        return job

    def _after_change(self, prediction_id: int | None = None) -> None:
        self._select_after = prediction_id
        self.refresh()

    def record_outcome_dialog(self) -> None:
        pid = self.selected_id()
        if pid is None:
            return
        row = next(r for r in self.model.rows() if r.id == pid)
        dialog = OutcomeDialog(
            f"Case {pid}: {row.patient_id} {row.patient_name} — predicted {row.label}", self
        )
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.record_outcome(pid, *dialog.values()))
        dialog.open()

    def export_csv(self, path: Path, pseudonymise: bool) -> Job | None:
        """Export the register as CSV (in a worker); errors are shown."""
        reg = self._register
        if reg is None:
            return None
        job = self._run("Export CSV", lambda: records.export_csv(reg, path, pseudonymise),
                        failure="Export failed")
        job.finished.connect(lambda _p: self.status.setText(
            f"Exported to {path}" + (" (pseudonymised)" if pseudonymise else "")))
        return job

    def export_dialog(self) -> None:
        if self._register is None:
            return
        dialog = QtWidgets.QFileDialog(self, "Export register as CSV", str(Path.home()), "CSV (*.csv)")
        dialog.setAcceptMode(QtWidgets.QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix("csv")
        dialog.setOption(QtWidgets.QFileDialog.Option.DontUseNativeDialog, True)
        pseudo = QtWidgets.QCheckBox("Pseudonymise patient identifiers (keyed hash)")
        pseudo.setChecked(True)
        grid = dialog.layout()
        if isinstance(grid, QtWidgets.QGridLayout):
            grid.addWidget(pseudo, grid.rowCount(), 0, 1, -1)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda f: self.export_csv(Path(f), pseudo.isChecked()))
        dialog.open()

    def export_images(self, prediction_id: int, folder: Path) -> Job | None:
        """Export the case's phases de-identified into the new folder ``folder/case-N-…``
        (in a worker); errors are shown, and a failed export leaves nothing behind."""
        reg = self._register
        if reg is None:
            return None
        dest = folder / f"case-{prediction_id}-deidentified"
        job = self._run("Export images",
                        lambda: reg.export_images(prediction_id, dest, deidentify=True),
                        failure="The images were not exported")
        job.finished.connect(lambda summary: self.status.setText(
            f"Case {prediction_id}: {sum(summary.files.values())} de-identified images "
            f"written to {summary.path}"))
        return job

    def export_images_dialog(self) -> None:
        pid = self.selected_id()
        if pid is None or self._register is None:
            return
        dialog = QtWidgets.QFileDialog(self, "Folder for the de-identified images",
                                       str(Path.home()))
        dialog.setFileMode(QtWidgets.QFileDialog.FileMode.Directory)
        dialog.setOption(QtWidgets.QFileDialog.Option.ShowDirsOnly, True)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda f: self.export_images(pid, Path(f)))
        dialog.open()

    def verify(self) -> Job | None:
        """Verify the register's integrity and audit chain (in a worker); the answer is shown."""
        reg = self._register
        if reg is None:
            return None
        job = self._run("Verify register", lambda: records.verify(reg),
                        failure="Verification failed")
        job.finished.connect(self._show_verification)
        return job

    def _show_verification(self, report: VerifyReport) -> None:
        if report.ok:
            dialogs.show_info(
                self,
                f"The register is intact: {report.n_predictions} predictions, "
                f"{report.n_outcomes} outcomes, {report.n_events} audit events, chain verified.",
            )
        else:
            dialogs.show_error(self, "The register failed verification: it may have been altered.",
                               "\n".join(report.problems))
