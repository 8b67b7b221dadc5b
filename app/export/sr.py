"""The prediction as a Comprehensive SR in the patient's study (template in :mod:`.codes`).

Why Comprehensive SR and a simple documented template rather than TID 1500 (Measurement
Report): TID 1500 is built around measurement groups of tracked findings (a lesion, a region);
a patient-level response prediction by slice vote has no finding to track, and the tie rule,
device, software version and intended-use notice would have no place in it. The template here
uses standard codes where they exist (LOINC report title, TID 4019 algorithm identification,
DICOM source-image and series references, SNOMED yes/no) and a local ``99HCCR`` scheme for the
rest, so a PACS shows it as a readable tree and a program can read it back
(:func:`read_prediction_sr`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import highdicom as hd
from pydicom.dataset import Dataset

from app import INTENDED_USE, __version__
from app.export import codes
from app.export.errors import ExportError
from app.export.sources import SourceImages

if TYPE_CHECKING:  # pragma: no cover - typing only; importing inference pulls in torch
    from app.inference.result import PredictionResult

MANUFACTURER = "HCC Response"
SR_SERIES_DESCRIPTION = "HCC Response prediction (research, not for diagnosis)"


@dataclass
class PredictionSR:
    """The values an SR written by :func:`build_prediction_sr` carries (read back)."""

    label: str
    responder_votes: int
    total_votes: int
    mean_probability: float
    tie: bool
    tie_rule: str
    model_name: str
    model_version: str
    model_sha256: str
    weights_kind: str
    device: str
    software_version: str
    intended_use: str
    warnings: list[str]
    series_uids: dict[str, str]
    source_images: dict[str, list[str]]


def _text(name: hd.sr.CodedConcept, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value, relationship_type="CONTAINS")


def _num(name: hd.sr.CodedConcept, value: float, unit: hd.sr.CodedConcept) -> hd.sr.NumContentItem:
    return hd.sr.NumContentItem(name=name, value=value, unit=unit, relationship_type="CONTAINS")


def _source_series(phase: str, series_uid: str, headers: list[Dataset]) -> hd.sr.ContainerContentItem:
    container = hd.sr.ContainerContentItem(name=codes.SOURCE_SERIES, relationship_type="CONTAINS")
    items: list[Any] = [
        hd.sr.CodeContentItem(name=codes.CONTRAST_PHASE, value=codes.PHASE_CODES[phase],
                              relationship_type="CONTAINS"),
        hd.sr.UIDRefContentItem(name=codes.SERIES_UID, value=series_uid, relationship_type="CONTAINS"),
    ]
    items += [
        hd.sr.ImageContentItem(name=codes.SOURCE_IMAGE, referenced_sop_class_uid=ds.SOPClassUID,
                               referenced_sop_instance_uid=ds.SOPInstanceUID,
                               relationship_type="CONTAINS")
        for ds in headers
    ]
    container.ContentSequence = hd.sr.ContentSequence(items)
    return container


def prediction_content(result: PredictionResult, sources: SourceImages,
                       warnings: Sequence[str] | None = None) -> hd.sr.ContainerContentItem:
    """The SR's content tree for one prediction (the template of :mod:`app.export.codes`)."""
    if result.label not in codes.LABEL_CODES:
        raise ExportError(f"unknown prediction label {result.label!r}")
    items: list[Any] = [
        hd.sr.CodeContentItem(name=codes.PREDICTED_RESPONSE, value=codes.LABEL_CODES[result.label],
                              relationship_type="CONTAINS"),
        _num(codes.RESPONDER_VOTES, int(result.responder_votes), codes.SLICES_UNIT),
        _num(codes.TOTAL_VOTES, int(result.total_votes), codes.SLICES_UNIT),
        _num(codes.MEAN_PROBABILITY, round(float(result.mean_probability), 6), codes.NO_UNITS),
        hd.sr.CodeContentItem(name=codes.VOTE_TIED, value=codes.YES if result.tie else codes.NO,
                              relationship_type="CONTAINS"),
        _text(codes.TIE_RULE, result.tie_rule),
    ]
    algorithm = hd.sr.AlgorithmIdentification(
        name=result.model_name, version=result.model_version,
        parameters=[f"sha256={result.model_sha256}", f"weights={result.weights_kind}"],
    )
    for item in algorithm:
        item.RelationshipType = "CONTAINS"
        items.append(item)
    items += [
        _text(codes.DEVICE, result.device),
        _text(codes.SOFTWARE_VERSION, f"HCC Response {result.software_version}"),
        _text(codes.INTENDED_USE, INTENDED_USE),
        *(_text(codes.WARNING, w) for w in (result.warnings if warnings is None else warnings)),
    ]
    for phase, headers in sources.by_phase.items():
        items.append(_source_series(phase, result.series_uids[phase], headers))
    root = hd.sr.ContainerContentItem(name=codes.TITLE, template_id=None)
    root.ContentSequence = hd.sr.ContentSequence(items)
    return root


def build_prediction_sr(result: PredictionResult, sources: SourceImages, *, series_uid: str,
                        sop_uid: str, series_number: int = 9901, instance_number: int = 1,
                        warnings: Sequence[str] | None = None) -> hd.sr.ComprehensiveSR:
    """A Comprehensive SR of ``result`` in the study of ``sources``.

    Patient and study attributes come from the source headers (highdicom requires them to agree:
    a result is never filed under another patient). The SR is complete but not verified: no
    physician has signed it. ``warnings``: everything said with the result - the study's and
    the images' warnings with the model's (the register record's list); default the model's own.
    """
    content = prediction_content(result, sources, warnings)
    try:
        sr = hd.sr.ComprehensiveSR(
            evidence=sources.all, content=content, series_instance_uid=series_uid,
            series_number=series_number, sop_instance_uid=sop_uid,
            instance_number=instance_number, manufacturer=MANUFACTURER,
            is_complete=True, is_final=False, is_verified=False,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExportError(f"cannot build the DICOM SR from the source images: {exc}") from exc
    scheme = Dataset()
    scheme.CodingSchemeDesignator = codes.SCHEME
    scheme.CodingSchemeName = codes.SCHEME_NAME
    scheme.CodingSchemeResponsibleOrganization = "HCC Response project"
    sr.CodingSchemeIdentificationSequence = [scheme]
    # UTF-8, whatever the source used: model names, weights notes ("random-initialised — not
    # trained") and the site's texts must not turn into replacement characters (ISO_IR 100
    # cannot hold an em dash). The copied patient attributes are re-encoded losslessly.
    sr.SpecificCharacterSet = "ISO_IR 192"
    sr.SeriesDescription = SR_SERIES_DESCRIPTION
    sr.SoftwareVersions = __version__
    return sr


# ------------------------------------------------------------------------------ reading back

def _name(item: Dataset) -> tuple[str, str]:
    c = item.ConceptNameCodeSequence[0]
    return (str(c.CodeValue), str(c.CodingSchemeDesignator))


def _key(concept: hd.sr.CodedConcept) -> tuple[str, str]:
    return (concept.value, concept.scheme_designator)


def read_prediction_sr(ds: Dataset) -> PredictionSR:
    """Read the values of an SR written by :func:`build_prediction_sr` back from a dataset.

    Raises
    ------
    ExportError
        When ``ds`` is not such an SR (another title, a missing item).
    """
    if ds.get("ContentSequence") is None or _name(ds) != _key(codes.TITLE):
        raise ExportError("not an HCC Response prediction SR")
    values: dict[tuple[str, str], Any] = {}
    warnings: list[str] = []
    algorithm: dict[str, list[str]] = {}
    series_uids: dict[str, str] = {}
    source_images: dict[str, list[str]] = {}
    code_to_phase = {_key(c): p for p, c in codes.PHASE_CODES.items()}
    for item in ds.ContentSequence:
        key = _name(item)
        vt = item.ValueType
        if vt == "CODE":
            c = item.ConceptCodeSequence[0]
            values[key] = (str(c.CodeValue), str(c.CodingSchemeDesignator))
        elif vt == "NUM":
            values[key] = float(item.MeasuredValueSequence[0].NumericValue)
        elif vt == "TEXT":
            if key[1] == "DCM":
                algorithm.setdefault(key[0], []).append(str(item.TextValue))
            elif key == _key(codes.WARNING):
                warnings.append(str(item.TextValue))
            else:
                values[key] = str(item.TextValue)
        elif vt == "CONTAINER" and key == _key(codes.SOURCE_SERIES):
            phase, uid, images = "", "", []
            for sub in item.ContentSequence:
                if sub.ValueType == "CODE":
                    c = sub.ConceptCodeSequence[0]
                    phase = code_to_phase[(str(c.CodeValue), str(c.CodingSchemeDesignator))]
                elif sub.ValueType == "UIDREF":
                    uid = str(sub.UID)
                elif sub.ValueType == "IMAGE":
                    images.append(str(sub.ReferencedSOPSequence[0].ReferencedSOPInstanceUID))
            series_uids[phase] = uid
            source_images[phase] = images
    label_of = {_key(c): label for label, c in codes.LABEL_CODES.items()}
    params = dict(p.split("=", 1) for p in algorithm.get("111002", []))
    try:
        return PredictionSR(
            label=label_of[values[_key(codes.PREDICTED_RESPONSE)]],
            responder_votes=int(values[_key(codes.RESPONDER_VOTES)]),
            total_votes=int(values[_key(codes.TOTAL_VOTES)]),
            mean_probability=float(values[_key(codes.MEAN_PROBABILITY)]),
            tie=values[_key(codes.VOTE_TIED)] == _key(codes.YES),
            tie_rule=values[_key(codes.TIE_RULE)],
            model_name=algorithm["111001"][0],
            model_version=algorithm["111003"][0],
            model_sha256=params["sha256"],
            weights_kind=params["weights"],
            device=values[_key(codes.DEVICE)],
            software_version=values[_key(codes.SOFTWARE_VERSION)],
            intended_use=values[_key(codes.INTENDED_USE)],
            warnings=warnings,
            series_uids=series_uids,
            source_images=source_images,
        )
    except KeyError as exc:
        raise ExportError(f"the prediction SR lacks item {exc}") from exc


def content_tree_text(ds: Dataset) -> str:
    """The SR's content tree as indented text (for a reader, a log or the closing note)."""
    lines: list[str] = []

    def value_of(item: Dataset) -> str:
        vt = item.ValueType
        if vt == "CODE":
            c = item.ConceptCodeSequence[0]
            return f"= {c.CodeMeaning} ({c.CodeValue}, {c.CodingSchemeDesignator})"
        if vt == "NUM":
            mv = item.MeasuredValueSequence[0]
            return f"= {mv.NumericValue} {mv.MeasurementUnitsCodeSequence[0].CodeValue}"
        if vt == "TEXT":
            return f"= {item.TextValue!r}"
        if vt == "UIDREF":
            return f"= {item.UID}"
        if vt == "IMAGE":
            return f"= {item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID}"
        return ""

    def walk(item: Dataset, depth: int) -> None:
        c = item.ConceptNameCodeSequence[0]
        rel = item.get("RelationshipType", "")
        lines.append(f"{'  ' * depth}{rel + ' ' if rel else ''}{item.ValueType} "
                     f"({c.CodeValue}, {c.CodingSchemeDesignator}, \"{c.CodeMeaning}\") "
                     f"{value_of(item)}".rstrip())
        for child in item.get("ContentSequence", []):
            walk(child, depth + 1)

    walk(ds, 0)
    return "\n".join(lines)
