"""Store result objects on the node (C-STORE of the SR and the captures).

One association for all files; each file's status is checked. Files that failed are named in
:class:`OperationFailed` after every file was tried, so the user learns which objects the PACS
has and which it does not (the result panel's "stored / not stored").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from app.dicomnet.errors import DicomNetError, OperationFailed
from app.dicomnet.link import DicomLink, status_text
from app.errors import Cancelled
from app.progress import NULL_PROGRESS, Progress


@dataclass
class StoreResult:
    """What the node accepted: SOP Instance UIDs stored, and any failures with their reason."""

    node: str
    stored: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.stored) and not self.failed


def store_files(link: DicomLink, files: Sequence[Path | str],
                progress: Progress | None = None) -> StoreResult:
    """C-STORE ``files`` (DICOM Part 10 files) on the link's node.

    Raises
    ------
    OperationFailed
        When any file was not stored (after trying all of them); the message names them.
    """
    progress = progress or NULL_PROGRESS
    headers = []
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (OSError, InvalidDicomError) as exc:
            raise DicomNetError(f"cannot read {path} to store it: {exc}") from exc
        headers.append((Path(path), ds))
    ae = link.new_ae()
    for sop_class, syntax in sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
                                     for _, ds in headers}):
        ae.add_requested_context(sop_class, syntax)
    result = StoreResult(link.node.address)
    with link.associate(f"C-STORE of {len(headers)} object(s)", ae) as assoc:
        for i, (path, ds) in enumerate(headers):
            if progress.cancelled:
                raise Cancelled(f"storing cancelled after {i} of {len(headers)} objects")
            uid = str(ds.SOPInstanceUID)
            try:
                status = assoc.send_c_store(path)
            except ValueError as exc:  # no accepted presentation context for this object
                result.failed[uid] = str(exc)
                continue
            code = status.get("Status") if status else None
            if code in (0x0000, 0xB000, 0xB007, 0xB006):
                result.stored.append(uid)
            else:
                result.failed[uid] = status_text(code)
                if code is None:
                    break  # association gone: the rest cannot be sent either
            progress.update((i + 1) / len(headers), f"stored {i + 1} of {len(headers)}")
    for _, ds in headers[len(result.stored) + len(result.failed):]:
        result.failed[str(ds.SOPInstanceUID)] = "not sent (association lost)"
    if result.failed:
        names = ", ".join(f"{uid} ({why})" for uid, why in list(result.failed.items())[:3])
        raise OperationFailed(f"{len(result.failed)} of {len(headers)} object(s) were not stored "
                              f"on {link.node.address}: {names}")
    return result
