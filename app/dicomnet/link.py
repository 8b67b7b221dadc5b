"""The link to one configured node: verification (C-ECHO) and queries (C-FIND).

Retrieval and storage live in :mod:`.retrieve` and :mod:`.store`; all three open their
associations through :meth:`DicomLink.associate`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # generated names
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from app.dicomnet.association import (
    AssociationListener,
    configure_ae,
    open_association,
)
from app.dicomnet.config import DicomNode, NetworkSettings
from app.dicomnet.errors import OperationFailed

#: C-FIND answers kept at most (a query for "*" on a big PACS must not flood the table).
MAX_MATCHES = 500


@dataclass
class EchoResult:
    """A successful C-ECHO: the node and the round trip in milliseconds."""

    node: str
    round_trip_ms: float


@dataclass
class PatientMatch:
    """One patient found by C-FIND."""

    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    n_studies: int | None


@dataclass
class StudyMatch:
    """One study found by C-FIND (the PACS dialog's table row)."""

    study_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    study_description: str
    accession_number: str
    modalities: list[str]
    n_series: int | None
    n_instances: int | None


def _int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _modalities(ds: Dataset) -> list[str]:
    value = ds.get("ModalitiesInStudy")
    if value in (None, ""):
        return []
    return [str(v) for v in value] if not isinstance(value, str) else [value]


class DicomLink:
    """Operations with one node under one settings object.

    Parameters
    ----------
    settings:
        The network settings (``enabled`` must be True for anything to happen).
    node:
        The node to talk to; the first configured one when None.
    listener:
        Called with an :class:`~app.dicomnet.association.AssociationRecord` after each
        association (the UI's log view, the register's audit trail).
    """

    def __init__(self, settings: NetworkSettings, node: DicomNode | None = None,
                 listener: AssociationListener | None = None) -> None:
        self.settings = settings
        self.node = node or settings.node()
        self.listener = listener

    def new_ae(self) -> AE:
        return configure_ae(self.settings)

    @contextmanager
    def associate(self, purpose: str, ae: AE, ext_neg: Sequence[Any] | None = None
                  ) -> Iterator[Association]:
        with open_association(self.settings, self.node, purpose, ae, ext_neg,
                              self.listener) as assoc:
            yield assoc

    def broken(self, what: str, since: float, *, started: bool = False) -> str:
        """The sentence for an association that ended without a final answer.

        pynetdicom aborts the association itself when its message timeout runs out, so the
        time waited (``since``: ``time.monotonic()`` at the request) tells a hung node from one
        that aborted at once (Orthanc does that to an AE title it does not allow). ``started``:
        the operation had begun delivering, so the connection was lost rather than refused.
        """
        if started:
            return f"the connection to {self.node.address} was lost or aborted during the {what}"
        if time.monotonic() - since < 0.9 * float(self.settings.timeout_s):
            return (f"{self.node.address} aborted the association during the {what}; check that "
                    f"the PACS knows this AE title ({self.settings.local_ae_title}) and allows it")
        return (f"{self.node.address} did not answer the {what} within "
                f"{self.settings.timeout_s:g} s")

    # ----------------------------------------------------------------------- verification

    def echo(self) -> EchoResult:
        """C-ECHO: is the node there and does it accept this AE title?"""
        ae = self.new_ae()
        ae.add_requested_context(Verification)
        t0 = time.perf_counter()
        with self.associate("C-ECHO", ae) as assoc:
            status = assoc.send_c_echo()
            code = status.get("Status") if status else None
            if code != 0x0000:
                raise OperationFailed(f"{self.node.address} answered the C-ECHO with status "
                                      f"{status_text(code)}")
        return EchoResult(self.node.address, round((time.perf_counter() - t0) * 1000.0, 1))

    # ----------------------------------------------------------------------- queries

    def _find(self, purpose: str, model: Any, query: Dataset) -> list[Dataset]:
        ae = self.new_ae()
        ae.add_requested_context(model)
        found: list[Dataset] = []
        since = time.monotonic()
        with self.associate(purpose, ae) as assoc:
            for status, identifier in assoc.send_c_find(query, model):
                code = status.get("Status") if status else None
                if code is None:
                    raise OperationFailed(self.broken("query", since))
                if code in (0xFF00, 0xFF01) and identifier is not None:
                    if len(found) < MAX_MATCHES:
                        found.append(identifier)
                elif code == 0x0000:
                    break
                else:
                    raise OperationFailed(f"{self.node.address} refused the query: "
                                          f"{status_text(code)}")
        return found

    def find_patients(self, patient_id: str = "", patient_name: str = "") -> list[PatientMatch]:
        """C-FIND at patient level (Patient Root); ``*`` and ``?`` wildcards as in DICOM."""
        q = Dataset()
        q.QueryRetrieveLevel = "PATIENT"
        q.PatientID = patient_id
        q.PatientName = patient_name
        q.PatientBirthDate = ""
        q.PatientSex = ""
        q.NumberOfPatientRelatedStudies = ""
        rows = self._find("C-FIND patients", PatientRootQueryRetrieveInformationModelFind, q)
        return sorted((PatientMatch(str(r.get("PatientID", "")), str(r.get("PatientName", "")),
                                    str(r.get("PatientBirthDate", "")), str(r.get("PatientSex", "")),
                                    _int(r, "NumberOfPatientRelatedStudies")) for r in rows),
                      key=lambda m: (m.patient_name, m.patient_id))

    def find_studies(self, patient_id: str = "", patient_name: str = "", study_date: str = "",
                     accession_number: str = "", study_uid: str = "") -> list[StudyMatch]:
        """C-FIND at study level (Study Root); ``study_date`` may be a range ``YYYYMMDD-YYYYMMDD``."""
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.PatientID = patient_id
        q.PatientName = patient_name
        q.StudyDate = study_date
        q.AccessionNumber = accession_number
        q.StudyInstanceUID = study_uid
        q.StudyDescription = ""
        q.ModalitiesInStudy = ""
        q.NumberOfStudyRelatedSeries = ""
        q.NumberOfStudyRelatedInstances = ""
        rows = self._find("C-FIND studies", StudyRootQueryRetrieveInformationModelFind, q)
        matches = [StudyMatch(str(r.get("StudyInstanceUID", "")), str(r.get("PatientID", "")),
                              str(r.get("PatientName", "")), str(r.get("StudyDate", "")),
                              str(r.get("StudyDescription", "")), str(r.get("AccessionNumber", "")),
                              _modalities(r), _int(r, "NumberOfStudyRelatedSeries"),
                              _int(r, "NumberOfStudyRelatedInstances")) for r in rows]
        return sorted(matches, key=lambda m: (m.study_date, m.patient_name), reverse=True)


_STATUS_TEXT = {
    0x0000: "success",
    0xA700: "out of resources",
    0xA701: "out of resources (matches)",
    0xA702: "out of resources (sub-operations)",
    0xA801: "move destination unknown",
    0xA900: "identifier does not match SOP class",
    0xB000: "sub-operations complete, one or more failures",
    0xC000: "unable to process",
    0xFE00: "cancelled",
    0x0122: "SOP class not supported",
    0x0124: "refused: not authorised",
}


def status_text(code: int | None) -> str:
    if code is None:
        return "no status (association aborted or timed out)"
    return f"0x{code:04X} ({_STATUS_TEXT.get(code, 'failure')})"


