"""Retrieve a study into the local import folder, all or nothing (C-GET, or C-MOVE on request).

The instances are written into a hidden staging folder ``.incoming-<n>`` inside the import
folder and moved to their own folder only after the node reported success with no failed or
warning sub-operations AND the number of files received equals the number the node announced
(C-FIND's Number of Study Related Instances, else the completed sub-operations). Anything else —
node down mid-transfer, association aborted, a timeout, a failed sub-operation, a cancel — removes
the staging folder: a half-received study is never left where the import would find it.

C-GET (the default) receives the images on the association the app opened, so the app never
listens on a port. C-MOVE makes the node open a second association to the app's storage SCP:
that server is started only when the user turned it on, bound only to the configured address,
accepts only the configured node's AE title, and is shut down when the retrieval ends.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # generated names
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from app.dicomnet.errors import DicomNetError, NodeConfigError, OperationFailed, RetrieveIncomplete
from app.dicomnet.link import DicomLink, status_text
from app.errors import Cancelled
from app.offline import allow_endpoint
from app.progress import NULL_PROGRESS, Progress

#: Storage SOP classes accepted on retrieval: CT (single and enhanced frames) and the objects
#: a study may hold next to them (earlier results, screenshots, reports). Anything else is a
#: failed sub-operation, and so an incomplete study — stated, never silently dropped.
RETRIEVE_SOP_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",      # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",    # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.7",      # Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR Storage
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR Storage
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF Storage
    "1.2.840.10008.5.1.4.1.1.11.1",   # Grayscale Softcopy Presentation State Storage
)
#: Transfer syntaxes accepted: uncompressed and the compressions the import decodes.
RETRIEVE_TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.1",     # Explicit VR Little Endian
    "1.2.840.10008.1.2",       # Implicit VR Little Endian
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",     # RLE Lossless
)


@dataclass
class RetrieveResult:
    """A study retrieved completely into ``folder``."""

    study_uid: str
    folder: Path
    n_files: int
    method: str
    seconds: float


class _Receiver:
    """Writes each received instance into the staging folder; counts and remembers failures."""

    def __init__(self, stage: Path, expected: int | None, progress: Progress) -> None:
        self.stage = stage
        self.expected = expected
        self.progress = progress
        self.count = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, event: evt.Event) -> int:
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            name = re.sub(r"[^0-9.]", "_", str(ds.SOPInstanceUID)) or "instance"
            ds.save_as(self.stage / f"{name}.dcm", enforce_file_format=True)
        except Exception as exc:  # noqa: BLE001 - any failure is this sub-operation's status
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            return 0xA700  # out of resources: the node counts a failed sub-operation
        with self._lock:
            self.count += 1
            n = self.count
        if self.expected:
            self.progress.update(min(0.99, n / self.expected), f"received {n} of {self.expected}")
        else:
            self.progress.update(0.5, f"received {n}")
        return 0x0000


def _study_folder_name(study_uid: str, patient_id: str) -> str:
    safe_pid = re.sub(r"[^A-Za-z0-9_-]", "_", patient_id)[:40] or "patient"
    return f"{safe_pid}_{study_uid[-24:]}"


def _query(study_uid: str) -> Dataset:
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = study_uid
    return q


def retrieve_study(link: DicomLink, study_uid: str, import_dir: Path | str,
                   progress: Progress | None = None, *, patient_id: str = "",
                   expected: int | None = None) -> RetrieveResult:
    """Retrieve one study into its own folder under ``import_dir``, completely or not at all.

    Parameters
    ----------
    link:
        The node to retrieve from (its ``retrieve`` setting chooses C-GET or C-MOVE).
    study_uid:
        Study Instance UID (from :meth:`DicomLink.find_studies`).
    import_dir:
        The local import folder; the study lands in ``<import_dir>/<patient>_<uid tail>``.
    progress:
        Reports received instances; cancelling aborts the association and keeps nothing.
    expected:
        Number of instances announced by C-FIND; asked for when None.

    Raises
    ------
    RetrieveIncomplete
        Fewer instances than announced, failed sub-operations, or the association broke.
    Cancelled
        The user cancelled; nothing was kept.
    """
    progress = progress or NULL_PROGRESS
    base = Path(import_dir)
    if expected is None:
        found = link.find_studies(study_uid=study_uid)
        if not found:
            raise OperationFailed(f"{link.node.address} does not know study {study_uid}")
        expected = found[0].n_instances
        patient_id = patient_id or found[0].patient_id
    try:
        base.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".incoming-", dir=base))
    except OSError as exc:
        raise DicomNetError(f"cannot write to the import folder {base}: {exc.strerror or exc}") from exc
    receiver = _Receiver(stage, expected, progress)
    t0 = time.monotonic()
    method = link.node.retrieve
    try:
        progress.update(0.0, f"retrieving study from {link.node.address} ({method})")
        if method == "C-MOVE":
            final = _move(link, study_uid, receiver, progress)
        else:
            final = _get(link, study_uid, receiver, progress)
        _check_complete(link, final, receiver, expected)
        target = base / _study_folder_name(study_uid, patient_id)
        n = 2
        while target.exists():
            target = base / f"{_study_folder_name(study_uid, patient_id)}-{n}"
            n += 1
        os.replace(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    progress.update(1.0, f"received {receiver.count} instances")
    return RetrieveResult(study_uid, target, receiver.count, method,
                          round(time.monotonic() - t0, 3))


def _storage_contexts(ae: AE, *, scp: bool) -> list[Any]:
    roles = []
    for uid in RETRIEVE_SOP_CLASSES:
        if scp:
            ae.add_supported_context(uid, list(RETRIEVE_TRANSFER_SYNTAXES))
        else:
            ae.add_requested_context(uid, list(RETRIEVE_TRANSFER_SYNTAXES))
            roles.append(build_role(uid, scp_role=True))
    return roles


def _follow(link: DicomLink, assoc: Any, responses: Any, progress: Progress,
            receiver: _Receiver) -> Dataset | None:
    """Read C-GET/C-MOVE responses to the final one; abort on cancel. Returns the final status."""
    final: Dataset | None = None
    since = time.monotonic()
    for status, _identifier in responses:
        if progress.cancelled:
            assoc.abort()
            raise Cancelled("retrieval cancelled; nothing was kept")
        if not status:  # pynetdicom's sign for an aborted association or a timeout
            raise RetrieveIncomplete(
                f"the transfer broke off after {receiver.count} instances: "
                f"{link.broken('retrieval', since, started=receiver.count > 0)}; nothing was kept")
        final = status
        if status.Status not in (0xFF00, 0xFF01):
            break
    if progress.cancelled:
        raise Cancelled("retrieval cancelled; nothing was kept")
    return final


def _get(link: DicomLink, study_uid: str, receiver: _Receiver, progress: Progress) -> Dataset | None:
    ae = link.new_ae()
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    roles = _storage_contexts(ae, scp=False)
    with link.associate("C-GET study", ae, ext_neg=roles) as assoc:
        assoc.bind(evt.EVT_C_STORE, receiver)
        return _follow(link, assoc, assoc.send_c_get(
            _query(study_uid), StudyRootQueryRetrieveInformationModelGet), progress, receiver)


def _move(link: DicomLink, study_uid: str, receiver: _Receiver, progress: Progress) -> Dataset | None:
    settings = link.settings
    if not settings.storage_scp:
        raise NodeConfigError("C-MOVE needs the storage SCP: turn it on in Settings → DICOM "
                              "network (or retrieve with C-GET)")
    scp_ae = link.new_ae()
    _storage_contexts(scp_ae, scp=True)
    scp_ae.require_calling_aet = [link.node.ae_title]
    address = (settings.storage_scp_host, settings.storage_scp_port)
    # the offline guard lets the app listen only on this address, and only while the move runs
    with allow_endpoint(*address):
        try:
            server = scp_ae.start_server(address, block=False,
                                         evt_handlers=[(evt.EVT_C_STORE, receiver)])
        except OSError as exc:
            raise DicomNetError(f"cannot start the storage SCP on {address[0]}:{address[1]}: "
                                f"{exc.strerror or exc}") from exc
        assert server is not None  # block=False returns the running server
        try:
            ae = link.new_ae()
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
            with link.associate("C-MOVE study", ae) as assoc:
                return _follow(link, assoc, assoc.send_c_move(
                    _query(study_uid), settings.local_ae_title,
                    StudyRootQueryRetrieveInformationModelMove), progress, receiver)
        finally:
            server.shutdown()


def _check_complete(link: DicomLink, final: Dataset | None, receiver: _Receiver,
                    expected: int | None) -> None:
    if final is None:
        raise RetrieveIncomplete(f"{link.node.address} sent no final status; nothing was kept")
    code = int(final.Status)
    failed = int(final.get("NumberOfFailedSuboperations") or 0)
    warned = int(final.get("NumberOfWarningSuboperations") or 0)
    completed = final.get("NumberOfCompletedSuboperations")
    problems = []
    if code != 0x0000:
        problems.append(f"final status {status_text(code)}")
    if failed or warned:
        problems.append(f"{failed} failed and {warned} warning sub-operations")
    if receiver.errors:
        problems.append(f"could not save {len(receiver.errors)} instance(s): {receiver.errors[0]}")
    want = expected if expected is not None else (int(completed) if completed is not None else None)
    if want is not None and receiver.count != want:
        problems.append(f"received {receiver.count} of {want} instances")
    if receiver.count == 0 and not problems:
        problems.append("no instance received")
    if problems:
        raise RetrieveIncomplete(f"the study from {link.node.address} is incomplete ("
                                 + "; ".join(problems) + "); nothing was kept")
