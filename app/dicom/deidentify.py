"""De-identification of CT images by the DICOM Basic Application Confidentiality Profile.

For sharing a case's three phases with a tumour board or a study centre (issue 19): every
attribute of PS3.15 Table E.1-1 is removed or replaced, UIDs are remapped consistently (the
same source UID always gives the same new one within a register, so the three series still
form one study on one frame of reference), and all private attributes are removed. Burned-in
text is not a concern for the CT slices this app reads (no secondary captures or screenshots
are exported).

Library: `dicognito <https://github.com/blairconrad/dicognito>`_ (MIT, pure Python on pydicom,
maintained since 2018) does the replacements that need care to stay consistent — UIDs (also
inside sequences and the file meta), person names, IDs, addresses, dates and times shifted by
one offset per seed so that intervals within a patient stay true. It was chosen over ``deid``
(whose default recipe is mostly pixel-cleaning filters for other modalities and which pulls in
matplotlib) and over hand-written UID hashing (pydicom has no de-identifier of its own;
highdicom none either). dicognito alone does not cover the whole table (descriptions,
comments, protocol names stay), so :func:`deidentify` then applies the table's Basic Profile
action to whatever the library left unchanged: ``X`` remove, ``Z`` empty, ``D`` a dummy of the
element's VR, ``U`` a remapped UID; combined codes take the most removing one the library has
not already satisfied. The table itself is data of the standard, shipped beside this module
(``ps3_15_table_e1_1.json``).

The patient's ID becomes the register's keyed pseudonym (``patient_key`` of the pseudonymised
CSV export), so de-identified images and CSV rows can be linked by whoever receives both, and
by no one else.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag

TABLE_FILE = Path(__file__).with_name("ps3_15_table_e1_1.json")

#: DICOM's UID root for UUID-derived UIDs (PS3.5 B.2): "2.25." + a 128-bit integer.
_UUID_ROOT = "2.25."

_DUMMY_BY_VR = {
    "PN": "ANONYMOUS", "LO": "ANONYMIZED", "SH": "ANONYMIZED", "LT": "ANONYMIZED",
    "ST": "ANONYMIZED", "UT": "ANONYMIZED", "UC": "ANONYMIZED", "CS": "ANONYMIZED",
    "AE": "ANONYMIZED", "DA": "19000101", "TM": "000000", "DT": "19000101000000",
    "AS": "000Y", "IS": "0", "DS": "0", "UR": "",
}


@dataclass(frozen=True)
class ProfileAttribute:
    """One row of PS3.15 Table E.1-1: the tag (``ggggeeee``, ``x`` for repeating groups),
    its name and the Basic Profile action code (``X``, ``Z``, ``D``, ``U``, or combinations)."""

    tag: str
    name: str
    action: str

    def matches(self, tag: BaseTag) -> bool:
        text = f"{int(tag):08x}"
        return all(p in ("x", t) for p, t in zip(self.tag.lower(), text, strict=True))



_TAG_PATTERN = re.compile(r"[0-9a-fA-FxX]{8}")


@functools.cache
def basic_profile() -> tuple[ProfileAttribute, ...]:
    """The rows of Table E.1-1 with a tag (loaded once).

    The table's row "Private Attributes (gggg,eeee) where gggg is odd" has no single tag: all
    private attributes are removed as a whole (``remove_private_tags``).
    """
    doc = json.loads(TABLE_FILE.read_text(encoding="utf-8"))
    return tuple(ProfileAttribute(t, n, a) for t, n, a in doc["attributes"]
                 if _TAG_PATTERN.fullmatch(t))


@functools.cache
def _exact_actions() -> dict[int, str]:
    return {int(a.tag, 16): a.action for a in basic_profile() if "x" not in a.tag.lower()}


@functools.cache
def _pattern_rows() -> tuple[ProfileAttribute, ...]:
    return tuple(a for a in basic_profile() if "x" in a.tag.lower())


def action_for(tag: BaseTag) -> str | None:
    """The Basic Profile action for ``tag`` (None: not in the table, kept)."""
    found = _exact_actions().get(int(tag))
    if found is not None:
        return found
    for row in _pattern_rows():
        if row.matches(tag):
            return row.action
    return None


class Deidentifier:
    """De-identifies the datasets of one export consistently.

    Parameters
    ----------
    seed:
        Secret text from which the UID mapping and the date offset are derived (the register's
        own pseudonymisation key): the same seed gives the same new UIDs and dates, so two
        exports of one case agree; without it nobody can map them back.
    patient_pseudonym:
        The PatientID to write (the CSV export's ``patient_key``).
    """

    def __init__(self, seed: str, patient_pseudonym: str) -> None:
        from dicognito.anonymizer import Anonymizer

        self._seed = seed
        self._anonymizer = Anonymizer(seed=seed)
        self.patient_pseudonym = patient_pseudonym

    def remap_uid(self, uid: str) -> str:
        """A new UID for ``uid`` under this seed (only for UIDs the library left unchanged)."""
        digest = hashlib.sha256(f"{self._seed}\0uid\0{uid}".encode()).digest()[:16]
        return _UUID_ROOT + str(int.from_bytes(digest, "big"))

    def deidentify(self, ds: Dataset) -> Dataset:
        """De-identify ``ds`` in place (and return it); see the module docstring."""
        original = ds.copy()
        if getattr(ds, "file_meta", None) is None:  # a dataset built in memory
            ds.file_meta = FileMetaDataset()
        with warnings.catch_warnings():
            # dicognito probes keywords newer than this pydicom's dictionary; harmless
            warnings.filterwarnings("ignore", message=".*used with the 'in' operator")
            self._anonymizer.anonymize(ds)
        ds.remove_private_tags()
        self._apply_profile(ds, original)
        if "SOPInstanceUID" in ds:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientID = self.patient_pseudonym
        ds.PatientName = f"ANON^{self.patient_pseudonym[:8]}"
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "PS3.15 Basic Profile (HCC Response, dicognito)"
        code = Dataset()
        code.CodeValue = "113100"
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = "Basic Application Confidentiality Profile"
        ds.DeidentificationMethodCodeSequence = DicomSequence([code])
        return ds

    def _apply_profile(self, ds: Dataset, original: Dataset) -> None:
        """Apply the table's action to every listed element the library left as it was."""
        for elem in list(ds):
            action = action_for(elem.tag)
            before = original.get(elem.tag) if original is not None else None
            if action is None:
                if elem.VR == "SQ":
                    for i, item in enumerate(elem.value):
                        old = before.value[i] if before is not None and i < len(before.value) \
                            else None
                        self._apply_profile(item, old if old is not None else Dataset())
                continue
            unchanged = before is not None and _same(elem, before)
            if not unchanged and elem.VR != "SQ" and "X" not in action.split("/")[0]:
                continue  # already replaced by the library: satisfies Z, D and U
            self._act(ds, elem, action, unchanged)

    def _act(self, ds: Dataset, elem: DataElement, action: str, unchanged: bool) -> None:
        codes = action.replace("*", "").split("/")
        if "U" in codes and elem.VR == "UI":
            if unchanged:
                elem.value = self._remap_value(elem.value)
            return
        if "X" in codes and (codes[0] == "X" or unchanged):
            del ds[elem.tag]
            return
        if elem.VR == "SQ":
            elem.value = DicomSequence([])
            return
        if "Z" in codes:
            elem.value = b"" if elem.VR in ("OB", "OW", "UN") else ""
            return
        if "D" in codes:
            binary = elem.VR.startswith("O") or elem.VR == "UN"
            elem.value = b"\0\0" if binary else _DUMMY_BY_VR.get(elem.VR, "")

    def _remap_value(self, value: object) -> object:
        if isinstance(value, list | pydicom.multival.MultiValue):
            return [self.remap_uid(str(v)) for v in value]
        return self.remap_uid(str(value))


def _same(a: DataElement, b: DataElement) -> bool:
    try:
        return bool(a.value == b.value)
    except (TypeError, ValueError):  # pragma: no cover - exotic values
        return False
