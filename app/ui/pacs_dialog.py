"""The PACS dialog: verify the node, query studies, retrieve one into the import folder.

Everything network happens in the main window's job manager (worker threads), so the window
stays responsive and a retrieval can be cancelled; the dialog only shows what comes back. A
retrieval is all or nothing (:mod:`app.dicomnet.retrieve`): on failure or cancel the status line
says why and nothing was imported. On success :attr:`PacsDialog.retrieved` carries the new
folder, which the main window imports like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from PySide6 import QtCore, QtWidgets

from app.dicomnet.config import NetworkSettings
from app.ui import dicom_jobs
from app.ui.plain import esc, plain_label

if TYPE_CHECKING:  # pragma: no cover - typing only; app.dicomnet.link imports pynetdicom
    from app.dicomnet.association import AssociationListener
    from app.dicomnet.link import EchoResult, StudyMatch
    from app.dicomnet.retrieve import RetrieveResult
    from app.ui.workers import Job, JobManager

_T = TypeVar("_T")

COLUMNS = ("Patient", "Patient ID", "Date", "Description", "Modalities", "Images")
_OK, _BAD = "color:#1b7a1b;", "color:#b00020;"


class PacsDialog(QtWidgets.QDialog):
    """Query/retrieve against the configured node.

    Parameters
    ----------
    settings:
        The network settings (the link must be on and a node configured).
    import_dir:
        Where retrieved studies go (each in its own folder).
    jobs:
        The main window's :class:`~app.ui.workers.JobManager`.
    listener:
        Called with each association's record (the main window logs them in the register).
    """

    retrieved = QtCore.Signal(object)  # app.dicomnet.retrieve.RetrieveResult
    searched = QtCore.Signal(int)  # number of studies found
    jobEnded = QtCore.Signal(str)  # "echo" / "search" / "retrieve", after success or failure

    def __init__(self, settings: NetworkSettings, import_dir: Path, jobs: JobManager,
                 parent: QtWidgets.QWidget | None = None,
                 listener: AssociationListener | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS — query and retrieve")
        self.settings = settings
        self.import_dir = Path(import_dir)
        self.jobs = jobs
        self.listener = listener
        self.matches: list[StudyMatch] = []
        self._job: Job | None = None

        layout = QtWidgets.QVBoxLayout(self)
        node_row = QtWidgets.QHBoxLayout()
        self.node_label = QtWidgets.QLabel()
        node_row.addWidget(self.node_label, 1)
        self.echo_button = QtWidgets.QPushButton("Test connection")
        self.echo_button.clicked.connect(self.echo)
        node_row.addWidget(self.echo_button)
        layout.addLayout(node_row)

        form = QtWidgets.QHBoxLayout()
        self.patient_name = QtWidgets.QLineEdit()
        self.patient_name.setPlaceholderText("Name (DOE^J*)")
        self.patient_id = QtWidgets.QLineEdit()
        self.patient_id.setPlaceholderText("Patient ID")
        self.study_date = QtWidgets.QLineEdit()
        self.study_date.setPlaceholderText("Date (YYYYMMDD or range A-B)")
        self.search_button = QtWidgets.QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        for w in (self.patient_name, self.patient_id, self.study_date):
            w.returnPressed.connect(self.search)
            form.addWidget(w)
        form.addWidget(self.search_button)
        layout.addLayout(form)

        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.doubleClicked.connect(lambda _i: self.retrieve())
        layout.addWidget(self.table, 1)

        bottom = QtWidgets.QHBoxLayout()
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        bottom.addWidget(self.progress, 1)
        self.retrieve_button = QtWidgets.QPushButton("Retrieve and open")
        self.retrieve_button.clicked.connect(self.retrieve)
        bottom.addWidget(self.retrieve_button)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        bottom.addWidget(self.cancel_button)
        close = QtWidgets.QPushButton("Close")
        close.clicked.connect(self.reject)
        bottom.addWidget(close)
        layout.addLayout(bottom)
        self.status_label = plain_label(QtWidgets.QLabel())  # messages quote remote values
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status_label)

        if not settings.enabled or not settings.nodes:
            self.node_label.setText("The DICOM network link is off.")
            self._say("Turn it on and configure the PACS in Settings → DICOM network.", _BAD)
        else:
            node = settings.node()
            tls = " (TLS)" if node.tls else ""
            self.node_label.setText(f"<b>{esc(node.name)}</b> — {esc(node.address)}{tls}, "
                                    f"retrieve by {esc(node.retrieve)}")
            self._say(f"Retrieved studies go to {self.import_dir}.", "")
        self._update_buttons()
        self.resize(820, 480)

    # ------------------------------------------------------------------------ state
    @property
    def available(self) -> bool:
        return bool(self.settings.enabled and self.settings.nodes)

    def busy(self) -> bool:
        return self._job is not None

    def _say(self, text: str, style: str) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet(style)

    def _update_buttons(self) -> None:
        idle = self.available and not self.busy()
        for w in (self.echo_button, self.search_button, self.patient_name, self.patient_id,
                  self.study_date):
            w.setEnabled(idle)
        self.retrieve_button.setEnabled(idle and self.selected() is not None)
        self.cancel_button.setEnabled(self.busy())
        self.progress.setVisible(self.busy())

    def selected(self) -> StudyMatch | None:
        rows = self.table.selectionModel().selectedRows()
        return self.matches[rows[0].row()] if rows else None

    def _run(self, what: str, name: str, fn: dicom_jobs.JobFn[_T],
             on_done: Callable[[_T], None]) -> Job:
        job = self.jobs.start(name, fn, key="pacs")
        self._job = job
        self.progress.setValue(0)
        job.progress.connect(self._on_progress)
        job.finished.connect(on_done)
        job.failed.connect(lambda message, _details: self._say(message, _BAD))
        job.cancelled.connect(lambda: self._say(f"{name} cancelled; nothing was imported."
                                                if what == "retrieve" else f"{name} cancelled.",
                                                _BAD))
        job.done.connect(lambda: self._ended(what))
        self._update_buttons()
        return job

    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        if text:
            self._say(text, "")

    def _ended(self, what: str) -> None:
        self._job = None
        self._update_buttons()
        self.jobEnded.emit(what)

    # ------------------------------------------------------------------------ actions
    def echo(self) -> Job | None:
        """C-ECHO the node; the status line says whether it answered."""
        if not self.available or self.busy():
            return None
        self._say("Testing the connection…", "")
        def done(r: EchoResult) -> None:
            self._say(f"{r.node} answered in {r.round_trip_ms:.0f} ms.", _OK)

        return self._run("echo", "Test connection", dicom_jobs.echo_job(self.settings, self.listener),
                         done)

    def search(self) -> Job | None:
        """C-FIND studies matching the fields (empty fields match everything)."""
        if not self.available or self.busy():
            return None
        name = self.patient_name.text().strip()
        query = {"patient_name": name if not name or "*" in name else name + "*",
                 "patient_id": self.patient_id.text().strip(),
                 "study_date": self.study_date.text().strip()}
        self._say("Searching…", "")
        return self._run("search", "PACS search",
                         dicom_jobs.find_job(self.settings, self.listener, **query), self._show)

    def _show(self, matches: list[StudyMatch]) -> None:
        self.matches = list(matches)
        self.table.setRowCount(len(self.matches))
        for row, m in enumerate(self.matches):
            values = (m.patient_name, m.patient_id, m.study_date, m.study_description,
                      "/".join(m.modalities), "" if m.n_instances is None else str(m.n_instances))
            for col, value in enumerate(values):
                self.table.setItem(row, col, QtWidgets.QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
        self._say(f"{len(self.matches)} studies found." if self.matches else "No study matches.",
                  "")
        self.searched.emit(len(self.matches))

    def retrieve(self) -> Job | None:
        """Retrieve the selected study (all or nothing); emits :attr:`retrieved` on success."""
        study = self.selected()
        if study is None or not self.available or self.busy():
            return None
        self._say(f"Retrieving {study.patient_name or study.patient_id} {study.study_date}…", "")

        def done(result: RetrieveResult) -> None:
            self._say(f"Retrieved {result.n_files} images into {result.folder}.", _OK)
            self.retrieved.emit(result)

        return self._run("retrieve", "PACS retrieve",
                         dicom_jobs.retrieve_job(self.settings, study, self.import_dir,
                                                 self.listener), done)

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def reject(self) -> None:
        self.cancel()
        super().reject()
