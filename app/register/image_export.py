"""Export of a case's three phases as de-identified DICOM (issue 19, fault 9).

``hcc-response register export-images CASE DIR --deidentify`` and the register tab's
"Export de-identified images…" both call :func:`export_case_images`: the register knows which
series the prediction used (phase → Series Instance UID) and the folder they were imported
from; the files of those series are read from there, de-identified by
:mod:`app.dicom.deidentify` and written to ``DIR/<phase>/<n>.dcm``. The folder appears only
complete and together with its ``image_export`` audit event (a failure leaves no folder and no
event), like the CSV export and the backup.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.register import db
from app.register.errors import RegisterError, RegisterInputError
from app.register.export import keyed_hash

if TYPE_CHECKING:
    from app.register.register import Register

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageExportSummary:
    """What :func:`export_case_images` wrote: the folder, files per phase, the pseudonym."""

    path: Path
    case_id: int
    files: dict[str, int]
    patient_key: str


def _series_files(folder: Path, wanted: dict[str, str]) -> dict[str, list[Path]]:
    """phase → the files of its series in ``folder`` (by Series Instance UID), in name order."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    by_uid = {uid: phase for phase, uid in wanted.items()}
    found: dict[str, list[Path]] = {phase: [] for phase in wanted}
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True,
                                 specific_tags=["SeriesInstanceUID"])
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        phase = by_uid.get(str(getattr(ds, "SeriesInstanceUID", "")))
        if phase is not None:
            found[phase].append(f)
    return found


def export_case_images(reg: Register, case_id: int, dest: Path | str, *,
                       deidentify: bool = True) -> ImageExportSummary:
    """Write the de-identified phases of case ``case_id`` into the new folder ``dest``.

    Raises
    ------
    RegisterInputError
        ``deidentify`` is False (images leave this computer de-identified only), ``dest``
        exists, the case does not exist, or its source folder or series are gone.
    """
    import pydicom

    from app.dicom.deidentify import Deidentifier

    if not deidentify:
        raise RegisterInputError("images are exported de-identified only: add --deidentify")
    dest = Path(dest).expanduser()
    if dest.exists():
        raise RegisterInputError(f"{dest} exists already; choose a new folder for the images")
    record = reg.get_prediction(case_id).record
    source = Path(record.source_folder)
    if not record.source_folder or not source.is_dir():
        raise RegisterInputError(
            f"the images of case {case_id} are no longer in {record.source_folder or '?'}; "
            f"import the study again from its current folder")
    files = _series_files(source, dict(record.series_uids))
    missing = [phase for phase, fs in files.items() if not fs]
    if missing:
        raise RegisterInputError(f"the {', '.join(missing)} series of case {case_id} are no "
                                 f"longer in {source}")
    secret = reg.meta("pseudonym_key")
    if not secret:  # pragma: no cover - created by migration 0001
        raise RegisterError("this register has no pseudonymisation key")
    key = bytes.fromhex(secret)
    patient_key = keyed_hash(key, "patient\x00" + record.patient_id)
    deid = Deidentifier(keyed_hash(key, "dicom-deidentification"), patient_key)

    tmp = dest.with_name(f"{dest.name}.{uuid.uuid4().hex[:8]}.partial")
    counts: dict[str, int] = {}
    with db.translated(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            for phase, phase_files in files.items():
                out = tmp / phase
                out.mkdir(parents=True)
                for n, f in enumerate(phase_files, start=1):
                    ds = pydicom.dcmread(f)
                    deid.deidentify(ds)
                    ds.save_as(out / f"{n:04d}.dcm", enforce_file_format=True)
                counts[phase] = len(phase_files)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise
    reg._publish(tmp, dest, "image_export", {
        "path": str(dest), "case": case_id, "files": counts, "deidentified": True,
        "profile": "PS3.15 basic"}, prediction_id=case_id)
    log.info("case %s: %s de-identified files written to %s", case_id, sum(counts.values()), dest)
    return ImageExportSummary(dest, case_id, counts, patient_key)
