"""The codes of the SR template ("HCC Response prediction", documented here).

Standard codes where DICOM/SNOMED/LOINC have one; a private coding scheme ``99HCCR`` (the
``99`` prefix is the standard's way to mark a local scheme, PS3.16 section 8.2) for the concepts
no standard code covers (a response prediction by slice vote).

Template (all relationships CONTAINS unless said otherwise)::

    CONTAINER  (18748-4, LN, "Diagnostic Imaging Report")
      CODE     (PRED, 99HCCR, "Predicted response") = RESP "Responder" | NRESP "Non-responder"
      NUM      (RVOTES, 99HCCR, "Responder slice votes")     {slices}
      NUM      (TVOTES, 99HCCR, "Slice votes")               {slices}
      NUM      (MPROB, 99HCCR, "Patient responder probability") 1 (no units): the mean slice probability, lesion-weighted mean or patient-head probability, by the model's aggregation
      CODE     (TIE, 99HCCR, "Vote tied") = SCT Yes | No
      TEXT     (TIERULE, 99HCCR, "Tie rule")
      TEXT     (111001, DCM, "Algorithm Name")       TID 4019 Algorithm Identification,
      TEXT     (111003, DCM, "Algorithm Version")    parameters: "sha256=<hex>",
      TEXT     (111002, DCM, "Algorithm Parameters") "weights=<kind>"
      TEXT     (DEVICE, 99HCCR, "Processing device")
      TEXT     (SWVER, 99HCCR, "Software version")
      TEXT     (USE, 99HCCR, "Intended use")
      TEXT     (WARN, 99HCCR, "Warning") — one per warning shown with the result (untrained
               weights, a tied vote, an assignment that needed confirmation, a CPU fallback)
      CONTAINER (SRCSER, 99HCCR, "Source series") — one per phase
        CODE    (PHASE, 99HCCR, "Contrast phase") = PLAIN | ART | PV
        UIDREF  (112002, DCM, "Series Instance UID")
        IMAGE   (121322, DCM, "Source image for image processing operation") — each slice read

The references to every source image also appear in the Current Requested Procedure Evidence
Sequence (highdicom writes it from the evidence), which is what PACS viewers use to link an SR
to its images.
"""

from __future__ import annotations

from pydicom.sr.codedict import codes

from app.export.errors import ExportError

try:
    from highdicom.sr import CodedConcept
except ImportError as exc:  # pragma: no cover - highdicom is a declared dependency
    raise ExportError("the DICOM export needs the 'highdicom' package") from exc

SCHEME = "99HCCR"
SCHEME_NAME = "HCC Response local codes"


def _code(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning)


TITLE = CodedConcept.from_code(codes.LN.DiagnosticImagingReport)
PREDICTED_RESPONSE = _code("PRED", "Predicted response")
RESPONDER = _code("RESP", "Responder")
NON_RESPONDER = _code("NRESP", "Non-responder")
RESPONDER_VOTES = _code("RVOTES", "Responder slice votes")
TOTAL_VOTES = _code("TVOTES", "Slice votes")
MEAN_PROBABILITY = _code("MPROB", "Patient responder probability")
VOTE_TIED = _code("TIE", "Vote tied")
TIE_RULE = _code("TIERULE", "Tie rule")
DEVICE = _code("DEVICE", "Processing device")
SOFTWARE_VERSION = _code("SWVER", "Software version")
INTENDED_USE = _code("USE", "Intended use")
WARNING = _code("WARN", "Warning")
SOURCE_SERIES = _code("SRCSER", "Source series")
CONTRAST_PHASE = _code("PHASE", "Contrast phase")
SERIES_UID = CodedConcept.from_code(codes.DCM.SeriesInstanceUID)
SOURCE_IMAGE = CodedConcept.from_code(codes.DCM.SourceImageForImageProcessingOperation)
YES = CodedConcept.from_code(codes.SCT.Yes)
NO = CodedConcept.from_code(codes.SCT.No)
SLICES_UNIT = CodedConcept(value="{slices}", scheme_designator="UCUM", meaning="slices")
NO_UNITS = CodedConcept.from_code(codes.UCUM.NoUnits)

PHASE_CODES: dict[str, CodedConcept] = {
    "plain": _code("PLAIN", "Plain (non-contrast) phase"),
    "arterial": _code("ART", "Arterial phase"),
    "portal": _code("PV", "Portal venous phase"),
}
LABEL_CODES: dict[str, CodedConcept] = {"responder": RESPONDER, "non-responder": NON_RESPONDER}
