"""Assemble one study for the model: one series per phase, checked, liver range found, paired.

The one code path that the CLI (``scan``, ``predict``), the training cohort loader and the UI
all use to go from a scanned study to an :class:`AssembledStudy`:

1. **Classify** every series of the study (:func:`app.dicom.phase.classify_study`) from its tags
   and a few sampled slices (:func:`app.dicom.phase.sample_indices`, loaded with
   :func:`app.dicom.volume.load_volume`). No file is decoded twice: the chosen series' loads
   reuse the sampled slices, and when every candidate series will be a phase anyway (no more
   candidates than phases) the volumes are loaded first and the samples taken from them.
2. **Choose** one series per phase: user overrides first; otherwise among the series called that
   phase, the one closest to the model's training data (axial, ~5 mm slices), then the widest z
   coverage. The others are reported as alternatives. A missing phase is an
   :class:`AssemblyError` naming the phase and the candidates that were considered.
3. **Check the set**: same patient and study, same frame of reference, overlapping z ranges,
   compatible spacing/thickness, acquisition order plain → arterial → portal.
4. **Liver range** per phase (:func:`app.dicom.liver_range.find_liver_range`) and **pairing** of the
   slices by table position (:mod:`app.dicom.pairing`).

Doubt never passes silently: conflicting evidence, two acquisitions claiming one phase, an odd
order or an unfound liver set ``needs_confirmation`` with the reasons; the prediction then needs
the user's confirmation or an override (``--phase plain=UID,...`` / the UI's phase editor, both
through ``overrides``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from app import PHASES
from app.dicom.errors import AssemblyError, DicomError
from app.dicom.pairing import LiverExtent, pair_slices, reconcile_livers
from app.dicom.patients import PATIENT_ID_WARNING, norm_person_name, separate_patients
from app.dicom.scan import ScanResult, StudyInfo, scan_folder
from app.dicom.types import AssembledStudy, PhaseCall, SeriesInfo, Volume
from app.dicom.volume import load_volume
from app.progress import NULL_PROGRESS, Progress, sub_progress

#: Slice thickness the model was trained on (paper: 5 mm axial reconstructions).
PREFERRED_THICKNESS_MM = 5.0
#: Thickness or spacing ratios between phases beyond this are reported.
COMPATIBLE_RATIO = 2.0
#: Reconstructions whose acquisition times differ by less than this (s) are one acquisition.
SAME_ACQUISITION_S = 3.0
#: Slices compared between two phases' volumes to find one acquisition assigned twice.
IDENTITY_SAMPLES = 5

PHASE_NAMES = {"plain": "plain (non-contrast)", "arterial": "arterial", "portal": "portal-venous"}
_ALIASES = {
    "plain": "plain", "native": "plain", "nc": "plain", "noncontrast": "plain", "c": "plain",
    "arterial": "arterial", "art": "arterial", "a": "arterial",
    "portal": "portal", "portal-venous": "portal", "portalvenous": "portal", "pv": "portal",
    "venous": "portal", "v": "portal",
}


def parse_phase_overrides(text: str) -> dict[str, str]:
    """Parse ``"plain=UID,arterial=UID,portal=UID"`` (the CLI ``--phase`` option).

    Phase names accept the usual aliases (native/nc, art, pv/venous/portal-venous). Raises
    :class:`AssemblyError` on a malformed item, an unknown phase or a phase given twice.
    """
    out: dict[str, str] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, sep, uid = item.partition("=")
        if not sep or not uid.strip():
            raise AssemblyError(f"bad phase override '{item}': expected PHASE=SERIES_UID")
        phase = _ALIASES.get(name.strip().lower())
        if phase is None:
            raise AssemblyError(
                f"unknown phase '{name.strip()}' in '{item}': use plain, arterial or portal"
            )
        if phase in out:
            raise AssemblyError(f"phase {phase} given twice in the overrides")
        out[phase] = uid.strip()
    if not out:
        raise AssemblyError("empty phase override: expected PHASE=SERIES_UID,...")
    return out


def _label(s: SeriesInfo) -> str:
    number = f"#{s.series_number}" if s.series_number is not None else s.uid
    thick = f", {s.slice_thickness:g} mm" if s.slice_thickness else ""
    return f"{number} '{s.description}'{thick}"


def _call_text(call: PhaseCall | None) -> str:
    return f"{call.phase} {call.confidence:.2f}" if call is not None else "not classified"


def _find(study: StudyInfo, uid: str) -> SeriesInfo | None:
    for s in study.series:
        if s.uid == uid:
            return s
    for s in study.series:
        if s.series_instance_uid == uid:
            return s
    return None


def _preference(s: SeriesInfo) -> tuple[float, ...]:
    """Sort key: closest to 5 mm, then widest z coverage, fewest warnings, then UID."""
    thick = s.slice_thickness or s.slice_spacing or 0.0
    cover = (s.z_range[1] - s.z_range[0]) if s.z_range else 0.0
    return (abs(thick - PREFERRED_THICKNESS_MM), -cover, len(s.warnings))


def _same_acquisition(a: SeriesInfo, b: SeriesInfo) -> bool:
    ta = a.acquisition_time if a.acquisition_time is not None else a.content_time
    tb = b.acquisition_time if b.acquisition_time is not None else b.content_time
    if ta is None or tb is None:
        return False
    return a.frame_of_reference_uid == b.frame_of_reference_uid and abs(ta - tb) <= SAME_ACQUISITION_S


def classify(
    study: StudyInfo, progress: Progress | None = None, workers: int | None = None
) -> dict[str, PhaseCall]:
    """Phase calls for every series of a study, with image evidence from sampled slices.

    Also stores each call on its :class:`SeriesInfo` (``phase_call``), so that the scan report
    shows them. A series whose samples cannot be decoded is classified from its tags alone.
    """
    return _classify(study, progress, workers)[0]


def _classify(
    study: StudyInfo,
    progress: Progress | None = None,
    workers: int | None = None,
    loaded: Mapping[str, Volume] | None = None,
) -> tuple[dict[str, PhaseCall], dict[str, Volume]]:
    """:func:`classify`, also returning the sampled slices (reused when loading volumes).

    ``loaded``: whole volumes already decoded (see :func:`_preload`); their sampled slices are
    copied, not decoded again.
    """
    from app.dicom.phase import classify_study, sample_indices

    progress = progress or NULL_PROGRESS
    loaded = loaded or {}
    candidates = study.usable_series()
    volumes: dict[str, Volume] = {}
    for k, s in enumerate(candidates):
        progress.check()
        progress.update(0.8 * k / max(len(candidates), 1), f"sampling series {s.series_number}")
        idx = sample_indices(s)
        if not idx:
            continue
        try:
            volumes[s.uid] = load_volume(s, indices=idx, workers=workers, reuse=loaded.get(s.uid))
        except DicomError:
            continue  # tags-only opinion; the load error resurfaces if the series is chosen
    calls = classify_study(study.series, volumes, progress=sub_progress(progress, 0.8, 1.0))
    for s in study.series:
        s.phase_call = calls.get(s.uid)
    return calls, volumes


def choose_series(
    study: StudyInfo,
    calls: Mapping[str, PhaseCall],
    overrides: Mapping[str, str] | None = None,
    phases: Sequence[str] = PHASES,
) -> tuple[dict[str, SeriesInfo], dict[str, list[str]], list[str]]:
    """Pick one series per phase.

    Returns
    -------
    tuple
        phase → chosen series, phase → alternative series UIDs, confirmation reasons.

    Raises
    ------
    AssemblyError
        An override names an unknown phase, a series not in this study or a refused series; or
        a phase has no series ("no portal-venous series found: candidates were ...").
    """
    overrides = dict(overrides or {})
    chosen: dict[str, SeriesInfo] = {}
    alternatives: dict[str, list[str]] = {}
    reasons: list[str] = []
    for phase, uid in overrides.items():
        if phase not in phases:
            raise AssemblyError(f"override for unknown phase '{phase}': use {', '.join(phases)}")
        s = _find(study, uid)
        if s is None:
            raise AssemblyError(f"override {phase}={uid}: no such series in study "
                                f"{study.study_uid}")
        if s.status == "refused":
            raise AssemblyError(f"override {phase}={uid}: series {_label(s)} is refused "
                                f"({s.refused_reason})")
        chosen[phase] = s
    taken = {s.uid for s in chosen.values()}
    if len(taken) < len(chosen):
        raise AssemblyError("overrides assign one series to two phases")
    usable = [s for s in study.usable_series() if s.uid not in taken]
    missing: list[str] = []
    for phase in phases:
        if phase in chosen:
            alternatives[phase] = [s.uid for s in usable
                                   if (c := calls.get(s.uid)) is not None and c.phase == phase]
            continue
        claimants = [s for s in usable if (c := calls.get(s.uid)) is not None and c.phase == phase]
        if not claimants:
            missing.append(phase)
            continue
        claimants.sort(key=lambda s: (*_preference(s), s.uid))
        best = claimants[0]
        chosen[phase] = best
        alternatives[phase] = [s.uid for s in claimants[1:]]
        others = [s for s in claimants[1:] if not _same_acquisition(s, best)]
        if others:
            reasons.append(
                f"{len(others) + 1} acquisitions claim the {PHASE_NAMES[phase]} phase: "
                f"{_label(best)} and {', '.join(_label(s) for s in others)}; "
                f"{_label(best)} was chosen"
            )
    if missing:
        cands = ", ".join(f"{_label(s)} ({_call_text(calls.get(s.uid))})"
                          for s in study.usable_series()) or "none"
        names = " and ".join(PHASE_NAMES.get(p, p) for p in missing)
        raise AssemblyError(f"no {names} series found: candidates were {cands}")
    from app.dicom.phase import needs_confirmation

    for phase in phases:
        s = chosen[phase]
        if phase in overrides:
            continue
        call = calls.get(s.uid)
        if call is not None and needs_confirmation(call):
            why = "conflicting evidence" if call.conflict else f"low confidence {call.confidence:.2f}"
            reasons.append(f"{PHASE_NAMES[phase]} = {_label(s)}: {why}")
    return chosen, alternatives, reasons


def check_set(chosen: Mapping[str, SeriesInfo]) -> tuple[list[str], list[str]]:
    """Consistency checks of the chosen series; returns (warnings, confirmation reasons).

    Raises :class:`AssemblyError` when the series cannot form one input (different patients or
    studies, z ranges that do not overlap).
    """
    warnings: list[str] = []
    reasons: list[str] = []
    series = list(chosen.items())
    patients = {s.patient_id for _, s in series}
    if len(patients) > 1:
        raise AssemblyError("the chosen series belong to different patients: "
                            + ", ".join(sorted(repr(p) for p in patients)))
    people = {norm_person_name(s.patient_name) for _, s in series} - {""}
    if len(people) > 1:  # one Patient ID, different names (issue 14, item 6)
        raise AssemblyError("the chosen series belong to different people with the same Patient "
                            "ID: " + ", ".join(sorted(repr(s.patient_name) for _, s in series)))
    studies = {s.study_uid for _, s in series}
    if len(studies) > 1:
        raise AssemblyError("the chosen series belong to different studies")
    fors = {s.frame_of_reference_uid for _, s in series if s.frame_of_reference_uid}
    if len(fors) > 1:
        msg = (f"the phases have {len(fors)} different frames of reference: table positions "
               "may not correspond")
        warnings.append(msg)
        reasons.append(msg)
    ranges = [s.z_range for _, s in series if s.z_range is not None]
    if len(ranges) == len(series):
        lo = max(r[0] for r in ranges)
        hi = min(r[1] for r in ranges)
        if hi < lo:
            raise AssemblyError(
                "the phases' z ranges do not overlap: " + ", ".join(
                    f"{p} {s.z_range[0]:.1f}..{s.z_range[1]:.1f} mm"  # type: ignore[index]
                    for p, s in series)
            )
    for attr, label in (("slice_thickness", "slice thickness"), ("slice_spacing", "spacing")):
        values = {p: getattr(s, attr) for p, s in series if getattr(s, attr)}
        if len(values) > 1 and max(values.values()) > COMPATIBLE_RATIO * min(values.values()):
            warnings.append(f"{label} differs between phases: " + ", ".join(
                f"{p} {v:g} mm" for p, v in values.items()))
    times = {p: (s.acquisition_time if s.acquisition_time is not None else s.content_time)
             for p, s in series}
    known = {p: t for p, t in times.items() if t is not None}
    if len(known) < len(series):
        lacking = [p for p in times if times[p] is None]
        warnings.append(f"acquisition time missing for {', '.join(lacking)}: order not checked")
    ordered = [p for p in PHASES if p in known]
    for a, b in zip(ordered, ordered[1:], strict=False):
        if known[a] == known[b]:
            warnings.append(f"{a} and {b} have the same acquisition time: order not checked")
        elif known[a] > known[b]:
            msg = (f"unexpected order: {a} acquired after {b} "
                   f"({known[a] - known[b]:.0f} s later)")
            warnings.append(msg)
            reasons.append(msg)
    return warnings, reasons


def identical_phases(chosen: Mapping[str, SeriesInfo], volumes: Mapping[str, Volume]) -> list[str]:
    """One message per pair of phases whose (different) series hold the same images.

    Three copies of one portal-venous series under new UIDs, forced onto the three phases with
    ``--phase``, were predicted without a word (issue 14, item 5): the phases were the same
    acquisition, so the model's input was meaningless. Two series are the same images when
    their volumes have the same shape and slice positions and :data:`IDENTITY_SAMPLES` slices
    spread over the stack are bit-identical (or every slice is the same SOP instance). A
    phase override does not settle this: the caller asks for confirmation even then.
    """
    out: list[str] = []
    phases = [p for p in PHASES if p in chosen and p in volumes]
    for i, a in enumerate(phases):
        for b in phases[i + 1:]:
            sa, sb = chosen[a], chosen[b]
            if sa.uid == sb.uid or not _same_images(volumes[a], volumes[b]):
                continue
            out.append(f"{a} and {b} are identical images ({_label(sa)} and {_label(sb)}: "
                       "the same pixel data) — one acquisition assigned to two phases")
    return out


def _same_images(va: Volume, vb: Volume) -> bool:
    """Whether two volumes are one acquisition (see :func:`identical_phases`)."""
    if va.hu.shape != vb.hu.shape or va.hu.shape[0] == 0:
        return False
    if list(va.sop_instance_uids) == list(vb.sop_instance_uids):
        return True
    if not np.allclose(va.z_positions, vb.z_positions, atol=1e-3):
        return False
    n = va.hu.shape[0]
    picks = sorted({int(round(k * (n - 1) / max(IDENTITY_SAMPLES - 1, 1)))
                    for k in range(IDENTITY_SAMPLES)})
    return all(np.array_equal(va.hu[k], vb.hu[k], equal_nan=True) for k in picks)


def _liver_extents(
    volumes: Mapping[str, Volume],
) -> dict[str, tuple[LiverExtent, float, list[str]]]:
    """Liver range of each phase, made consistent across the phases (:mod:`app.dicom.liver_range`)."""
    from app.dicom.liver_range import find_liver_ranges

    ranges = find_liver_ranges(volumes)
    return {
        p: (LiverExtent(lr.z_min, lr.z_max, list(lr.indices), list(lr.areas_mm2)),
            float(lr.confidence), list(lr.evidence))
        for p, lr in ranges.items()
    }


def _load_series(
    series: Sequence[SeriesInfo],
    progress: Progress,
    workers: int | None,
    *,
    samples: Mapping[str, Volume] | None = None,
    skip_failures: bool = False,
) -> dict[str, Volume]:
    """Whole volumes of ``series`` by UID, ``progress`` shared evenly between them.

    ``samples`` are slices already decoded for the classification (not decoded twice);
    ``skip_failures`` leaves a series that fails to decode out instead of raising.
    """
    out: dict[str, Volume] = {}
    for k, s in enumerate(series):
        progress.check()
        sub = sub_progress(progress, k / len(series), (k + 1) / len(series))
        try:
            out[s.uid] = load_volume(s, progress=sub, workers=workers,
                                     reuse=(samples or {}).get(s.uid))
        except DicomError:
            if not skip_failures:
                raise
    return out


def _preload(
    study: StudyInfo, phases: Sequence[str], progress: Progress, workers: int | None
) -> dict[str, Volume]:
    """Whole volumes of every candidate series when all of them will be needed anyway.

    With no more candidate series than phases (the usual plain/arterial/portal study), every
    candidate becomes a phase's volume: decoding them first lets the classification take its
    sampled slices from memory instead of decoding those files once more for itself. With more
    candidates (thin recons, a delayed phase) nothing is loaded here, so that the series not
    chosen are only sampled. A series that fails to decode is left to the sampling (the same
    tags-only fallback and error as without this step).
    """
    candidates = study.usable_series()
    if len(candidates) > len(phases):
        return {}
    return _load_series(candidates, progress, workers, skip_failures=True)


@dataclass
class _PhaseVolumes:
    """Steps 1-3 of the assembly: the phase calls, one series and its volume per phase."""

    calls: dict[str, PhaseCall]
    chosen: dict[str, SeriesInfo]
    alternatives: dict[str, list[str]]
    reasons: list[str]
    warnings: list[str]
    volumes: dict[str, Volume]
    twins: list[str]


def _classify_and_load(
    study: StudyInfo,
    overrides: Mapping[str, str] | None,
    phases: Sequence[str],
    progress: Progress,
    calls: Mapping[str, PhaseCall] | None = None,
    workers: int | None = None,
) -> _PhaseVolumes:
    """Classify (unless ``calls`` are given), choose and check the series, load their volumes.

    No file is decoded twice: slices sampled for the classification are reused by the loads,
    and when every candidate will be loaded anyway the volumes come first and the samples are
    taken from them (:func:`_preload`). Progress, 0-0.8 of ``progress``: either preload
    0-0.7, classify from memory 0.7-0.8; or classify from samples 0-0.2 (skipped when ``calls``
    are given), load the chosen series 0.2-0.8.
    """
    samples: dict[str, Volume] = {}
    loaded: dict[str, Volume] = {}
    if calls is None:
        loaded = _preload(study, phases, sub_progress(progress, 0.0, 0.7), workers)
        span = (0.7, 0.8) if loaded else (0.0, 0.2)
        calls, samples = _classify(study, sub_progress(progress, *span), workers, loaded)
    chosen, alternatives, reasons = choose_series(study, calls, overrides, phases)
    warnings, set_reasons = check_set(chosen)
    reasons += set_reasons
    to_load = list({chosen[p].uid: chosen[p] for p in phases if chosen[p].uid not in loaded}
                   .values())
    if to_load:
        start = 0.8 if loaded else 0.2  # after a preload only a failed series is left
        loaded.update(_load_series(to_load, sub_progress(progress, start, 0.8), workers,
                                   samples=samples))
    volumes = {phase: loaded[chosen[phase].uid] for phase in phases}
    twins = identical_phases(chosen, volumes)
    warnings += twins
    reasons += twins
    return _PhaseVolumes(dict(calls), chosen, alternatives, reasons, warnings, volumes, twins)


def assemble_study(
    study: StudyInfo,
    overrides: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    phases: Sequence[str] = PHASES,
    *,
    calls: Mapping[str, PhaseCall] | None = None,
    keep_volumes: bool = True,
    workers: int | None = None,
) -> AssembledStudy:
    """Turn a scanned study into the model's input: phases chosen, checked, liver found, paired.

    Parameters
    ----------
    study:
        One study from :func:`app.dicom.scan.scan_folder`.
    overrides:
        phase → series UID set by the user (CLI ``--phase``, the UI's phase editor); these win
        over the classification and are recorded in the result.
    progress:
        Progress/cancel object.
    phases:
        The phases the model needs (all three by default; a uniphase model needs one).
    calls:
        Phase calls already made (e.g. by the UI); classified here when None.
    keep_volumes:
        False to drop the loaded volumes from the result (a report that only needs the pairs).
    workers:
        Decoding threads for :func:`app.dicom.volume.load_volume`.

    Returns
    -------
    AssembledStudy

    Raises
    ------
    AssemblyError
        A phase is missing ("no portal-venous series found: candidates were ..."), an override
        is bad, or the chosen series cannot form one input.
    VolumeLoadError
        A chosen series cannot be decoded.
    """
    progress = progress or NULL_PROGRESS
    got = _classify_and_load(study, overrides, phases, progress, calls, workers)
    calls, chosen, alternatives = got.calls, got.chosen, got.alternatives
    reasons, warnings, volumes = got.reasons, got.warnings, got.volumes
    progress.check()
    progress.update(0.8, "liver range")
    livers: dict[str, LiverExtent] = {}
    found: dict[str, bool] = {}
    for phase, (extent, confidence, evidence) in _liver_extents(volumes).items():
        livers[phase] = extent
        found[phase] = confidence > 0.0
        if confidence <= 0.0:
            msg = f"{phase}: liver not found ({'; '.join(evidence)})"
            warnings.append(msg)
            reasons.append(msg)
        elif confidence < 0.7:
            warnings.append(f"{phase}: liver range uncertain ({'; '.join(evidence[1:])})")
        else:
            warnings += [f"{phase}: {e}" for e in evidence if "agree with the other" in e]
    # The liver-range module corrects ends that are off by a few slices; a range that has lost
    # most of the liver (a noisy thin recon) is replaced here by the other phases' range.
    livers, notes = reconcile_livers(volumes, livers, found)
    warnings += notes
    reasons += notes
    liver_range = {p: (lv.z_min, lv.z_max) for p, lv in livers.items()}
    result = pair_slices(volumes, livers)
    warnings += result.warnings
    for phase, zs in result.unpaired.items():
        warnings.append(f"{phase}: {len(zs)} liver slice{'s' if len(zs) > 1 else ''} unpaired "
                        f"(z {', '.join(f'{z:.1f}' for z in zs[:6])}"
                        f"{' ...' if len(zs) > 6 else ''} mm)")
    if not result.pairs:
        raise AssemblyError("no slice triplets: the phases' liver ranges do not overlap")
    progress.update(1.0, f"{len(result.pairs)} slice triplets")
    overrides = dict(overrides or {})
    # a Patient ID shared by different people (separate_patients) is said with the result
    warnings += list(dict.fromkeys(w for s in study.series for w in s.warnings
                                   if w.startswith(PATIENT_ID_WARNING)))
    return AssembledStudy(
        **_identity(study),
        assignment={p: chosen[p].uid for p in phases},
        volumes=volumes if keep_volumes else {},
        liver_range_mm=liver_range,
        pairs=result.pairs,
        unpaired=result.unpaired,
        needs_confirmation=bool(reasons),
        confirmation_reasons=reasons,
        warnings=warnings,
        overrides={p: chosen[p].uid for p in overrides},
        phase_calls=dict(calls),
        alternatives=alternatives,
        identical_phases=got.twins,
    )


class _Identity(TypedDict):
    patient_id: str
    patient_name: str
    study_uid: str
    study_date: str
    study_description: str


def _identity(study: StudyInfo) -> _Identity:
    """The patient and study fields an :class:`AssembledStudy` copies from the scan."""
    return {
        "patient_id": study.patient_id,
        "patient_name": study.patient_name,
        "study_uid": study.study_uid,
        "study_date": study.study_date,
        "study_description": study.study_description,
    }


def assemble_for_viewing(
    study: StudyInfo,
    reason: str,
    overrides: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    *,
    workers: int | None = None,
) -> AssembledStudy:
    """The series of a study that cannot be predicted, loaded for viewing (issue 17).

    A single-phase CT, a study without an arterial phase or a series the user put in a pane by
    hand must still be viewable: a reader checks the images before anything else. The panes get
    the user's ``overrides`` first (invalid ones skipped), then per phase the best series
    called that phase (:func:`_preference`, as for prediction); when no series is called any of
    the three phases, the first usable series goes to the first pane. Series that fail to
    decode are left out. No liver range and no pairing: the result has no ``pairs`` and
    ``view_only_reason`` = ``reason`` (the assembly error), so prediction stays off and the UI
    can say why.

    Raises
    ------
    AssemblyError
        No usable series could be loaded at all (``reason`` is the message).
    """
    progress = progress or NULL_PROGRESS
    usable = study.usable_series()
    chosen: dict[str, SeriesInfo] = {}
    for phase, uid in (overrides or {}).items():
        s = _find(study, uid)
        if phase in PHASES and s is not None and s.status != "refused" and s not in chosen.values():
            chosen[phase] = s
    for phase in PHASES:
        if phase in chosen:
            continue
        claimants = [s for s in usable if s not in chosen.values()
                     and s.phase_call is not None and s.phase_call.phase == phase]
        if claimants:
            chosen[phase] = min(claimants, key=lambda s: (*_preference(s), s.uid))
    if not chosen and usable:
        chosen[PHASES[0]] = usable[0]
    loaded = _load_series(list(chosen.values()), progress, workers, skip_failures=True)
    volumes = {p: loaded[s.uid] for p, s in chosen.items() if s.uid in loaded}
    if not volumes:
        raise AssemblyError(reason)
    progress.update(1.0, "loaded for viewing")
    calls = {s.uid: s.phase_call for s in study.series if s.phase_call is not None}
    return AssembledStudy(
        **_identity(study),
        assignment={p: chosen[p].uid for p in PHASES if p in volumes},
        volumes=volumes,
        liver_range_mm={},
        pairs=[],
        warnings=[f"Viewing only — prediction needs the three phases: {reason}"],
        overrides={p: uid for p, uid in (overrides or {}).items() if p in volumes},
        phase_calls=calls,
        view_only_reason=reason,
    )


def assemble_folder(
    folder: str | Path,
    overrides: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    *,
    phases: Sequence[str] = PHASES,
    keep_volumes: bool = False,
    workers: int | None = None,
) -> tuple[ScanResult, list[tuple[StudyInfo, AssembledStudy | DicomError]]]:
    """Scan a folder and assemble every study in it (the one path for CLI, UI and training).

    Overrides apply to the study holding their series; naming a series that is in no study of
    the folder is an :class:`AssemblyError`. A study that cannot be assembled gets its error in
    the list (the other studies are still assembled).

    Returns
    -------
    tuple
        The scan result and, per study with at least one usable series, the assembled study or
        the error saying why not.
    """
    progress = progress or NULL_PROGRESS
    scan_part = sub_progress(progress, 0.0, 0.3)
    result = scan_folder(folder, progress=scan_part)
    separate_patients(result)  # one Patient ID, different people: separate, with a warning
    overrides = dict(overrides or {})
    # Bad overrides are the user's input error: refuse the command, not just one study.
    for phase, uid in overrides.items():
        found = result.find_series(uid)
        if found is None:
            raise AssemblyError(f"override {phase}={uid}: no such series in {folder}")
        if found.status == "refused":
            raise AssemblyError(f"override {phase}={uid}: series {_label(found)} is refused "
                                f"({found.refused_reason})")
    studies = [st for st in result.studies if st.usable_series()]
    out: list[tuple[StudyInfo, AssembledStudy | DicomError]] = []
    for k, study in enumerate(studies):
        own = {p: u for p, u in overrides.items() if _find(study, u) is not None}
        sub = sub_progress(progress, 0.3 + 0.7 * k / len(studies),
                           0.3 + 0.7 * (k + 1) / len(studies))
        try:
            out.append((study, assemble_study(study, own or None, sub, phases,
                                              keep_volumes=keep_volumes, workers=workers)))
        except DicomError as exc:
            out.append((study, exc))
    progress.update(1.0, "done")
    return result, out


def assembly_document(study: StudyInfo, outcome: AssembledStudy | DicomError) -> dict[str, Any]:
    """The per-study assembly record of ``scan --json``."""
    if isinstance(outcome, DicomError):
        return {"assignment": {}, "needs_confirmation": True, "error": outcome.message,
                "liver_range_mm": {}, "pairs": [], "warnings": []}
    numbers = {}
    for phase, uid in outcome.assignment.items():
        s = _find(study, uid)
        numbers[phase] = s.series_number if s is not None else None
    return {
        "assignment": dict(outcome.assignment),
        "assignment_numbers": numbers,
        "needs_confirmation": outcome.needs_confirmation,
        "confirmation_reasons": list(outcome.confirmation_reasons),
        "overrides": dict(outcome.overrides),
        "alternatives": {p: list(v) for p, v in outcome.alternatives.items()},
        "liver_range_mm": {p: [round(a, 2), round(b, 2)]
                           for p, (a, b) in outcome.liver_range_mm.items()},
        "pairs": [{"z_ref": round(sp.z_ref, 2), "index": dict(sp.index),
                   "z_mm": {p: round(z, 2) for p, z in sp.z_mm.items()}}
                  for sp in outcome.pairs],
        "unpaired": {p: [round(z, 2) for z in zs] for p, zs in outcome.unpaired.items()},
        "warnings": list(outcome.warnings),
        "error": None,
    }
