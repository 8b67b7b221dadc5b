"""One synthetic patient: draw, render and write the study, and its ``truth.json``.

:func:`build_patient` draws everything about patient ``index`` of cohort ``seed`` (latent
features, outcome, anatomy, lesions, positions, scanner conventions) without rendering;
:func:`write_study` renders and writes the DICOM series and returns the truth document.

Series written per study (phase truth in brackets):

- plain, arterial, portal axial series at ``slice_mm`` (plain / arterial / portal);
- with ``delayed_phase``: a delayed (~180 s) axial series (other);
- with ``thin_recon``: a 1 mm (GE: 1.25 mm) reconstruction of each phase (its phase);
- with ``coronal``: a coronal reformat of the portal phase (other);
- with ``localizer``: one scout image (other);
- with ``dose_report``: one Secondary Capture image with the dose table (other).

``liver_z_range_mm`` in the truth is, per axial series, ``[z_min, z_max]``: the lowest and
highest table position (ImagePositionPatient z, mm) of the slice centres whose rendered image
contains at least one liver pixel (parenchyma, intrahepatic vessel or tumour); ``null`` when no
slice does. Because slices are rendered at their centre plane, this is exactly the range of
slices on which the liver is visible. ``liver_area_mm2`` gives the liver's area on every slice
(in file order), so a consumer can apply its own minimum area: the dome and the inferior tip
of the right lobe can be only a few pixels large.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, SecondaryCaptureImageStorage

from app import __version__
from app.progress import NULL_PROGRESS, Progress, sub_progress
from app.synthetic.anatomy import Anatomy, PhaseGeometry, draw_anatomy, draw_phase_geometry
from app.synthetic.conventions import Convention, draw_convention
from app.synthetic.labelmaps import CODES, LabelVolume, codes_from_canvas, write_label_volume
from app.synthetic.lesions import Lesion, Thrombus, draw_lesions, draw_thrombus
from app.synthetic.options import StudyOptions
from app.synthetic.outcome import (
    LatentFeatures,
    Outcome,
    draw_features,
    draw_outcome,
    model_description,
    response_probability,
)
from app.synthetic.render import Grid, add_noise_and_blur, render_clean_slice_labelled
from app.synthetic.rng import patient_streams
from app.synthetic.writer import (
    base_dataset,
    dicom_time,
    ds_number,
    finish_and_save,
    make_uid,
    set_pixels,
    stored_values,
)

GENERATOR_VERSION = f"hcc-response-synthetic {__version__}"
#: Top of the axial series above the liver dome (mm): lung bases are in the first slices.
TOP_MARGIN_MM = 30.0
AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
CORONAL = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
PHASE_TRUTH = {"plain": "plain", "arterial": "arterial", "portal": "portal", "delayed": "other"}


@dataclass
class PatientDraw:
    """Everything drawn for one patient before any rendering."""

    seed: int
    index: int
    patient_id: str
    features: LatentFeatures
    outcome: Outcome
    anatomy: Anatomy
    lesions: list[Lesion]
    thrombus: Thrombus | None
    geometry: dict[str, PhaseGeometry]
    convention: Convention
    noise_hu: float
    blur_mm: float
    patient: dict[str, Any]
    timing_s: dict[str, float]


def patient_id_for(seed: int, index: int) -> str:
    """Patient ID (also the folder name) of patient ``index`` of cohort ``seed``."""
    return f"SYN{seed}-{index + 1:04d}"


def draw_outcome_only(seed: int, index: int) -> tuple[LatentFeatures, Outcome]:
    """Latent features and outcome of one patient (cheap; same as in the rendered study)."""
    streams = patient_streams(seed, index)
    features = draw_features(streams.outcome)
    outcome = draw_outcome(response_probability(features), streams.outcome)
    return features, outcome


def build_patient(
    seed: int, index: int, options: StudyOptions, features: LatentFeatures | None = None
) -> PatientDraw:
    """Draw patient ``index`` of cohort ``seed`` (optionally with given latent features).

    Parameters
    ----------
    features:
        Override of the latent features (the first-start demo uses a clear responder-like
        tumour); the outcome is then drawn from these features' probability.
    """
    streams = patient_streams(seed, index)
    # Always draw, so that an override leaves the rest of the outcome stream where it would be.
    drawn = draw_features(streams.outcome)
    features = features or drawn
    outcome = draw_outcome(response_probability(features), streams.outcome)
    anatomy = draw_anatomy(streams.anatomy)
    phases = ("plain", "arterial", "portal", "delayed")
    geometry = draw_phase_geometry(streams.anatomy, anatomy, phases, TOP_MARGIN_MM)
    lesions = draw_lesions(features, anatomy, streams.lesions)
    thrombus = draw_thrombus(features, streams.lesions)
    noise_hu = float(streams.noise.uniform(8.0, 20.0))
    blur_mm = float(streams.noise.uniform(0.35, 0.8))
    d = streams.dicom
    convention = draw_convention(options.convention, d)
    age = int(d.integers(38, 82))
    study_day = int(d.integers(0, 4 * 365))
    year = 2019 + study_day // 365
    month = 1 + (study_day % 365) // 31
    day = 1 + (study_day % 365) % 28
    weight = float(np.round(d.uniform(48.0, 92.0), 1))
    t0 = float(d.integers(8 * 3600, 16 * 3600)) + float(np.round(d.uniform(0, 1), 3))
    bolus = t0 + float(d.uniform(50.0, 110.0))
    timing = {
        "localizer": t0 - float(d.uniform(40.0, 90.0)),
        "plain": t0,
        "bolus_start": bolus,
        "arterial": bolus + 25.0 + 15.0 * anatomy.arterial_timing + float(d.uniform(-2.0, 2.0)),
        "portal": bolus + float(d.uniform(60.0, 80.0)),
        "delayed": bolus + float(d.uniform(170.0, 190.0)),
    }
    patient = {
        "PatientName": f"PHANTOM^{patient_id_for(seed, index)}",
        "PatientID": patient_id_for(seed, index),
        "PatientBirthDate": f"{year - age:04d}{int(d.integers(1, 13)):02d}{int(d.integers(1, 29)):02d}",
        "PatientSex": "M" if d.random() < 0.84 else "F",
        "PatientAge": f"{age:03d}Y",
        "PatientWeight": ds_number(weight, 1),
        "StudyDate": f"{year:04d}{month:02d}{day:02d}",
        "AccessionNumber": f"{int(d.integers(10**9, 10**10 - 1))}",
        "ContrastBolusVolume": ds_number(round(1.5 * weight), 0),
        "kvp": int(d.choice([100, 120, 120, 120])),
        "ctdivol": float(np.round(d.uniform(8.0, 16.0), 2)),
        "study_description_index": int(d.integers(2)),
    }
    return PatientDraw(
        seed=seed,
        index=index,
        patient_id=patient_id_for(seed, index),
        features=features,
        outcome=outcome,
        anatomy=anatomy,
        lesions=lesions,
        thrombus=thrombus,
        geometry=geometry,
        convention=convention,
        noise_hu=noise_hu,
        blur_mm=blur_mm,
        patient=patient,
        timing_s=timing,
    )


class _Namer:
    """File names and folders of one study (series folders or flat; ordered or shuffled)."""

    def __init__(self, study_dir: Path, options: StudyOptions, rng: np.random.Generator) -> None:
        self.study_dir = study_dir
        self.options = options
        self.rng = rng
        self.used: set[str] = set()

    def path(self, series_number: int, instance: int) -> Path:
        if self.options.shuffle_names:
            while True:
                name = "".join(f"{int(v):02X}" for v in self.rng.integers(0, 256, size=8))
                if name not in self.used:
                    self.used.add(name)
                    break
        elif self.options.flat:
            name = f"IM-{series_number:04d}-{instance:04d}.dcm"
        else:
            name = f"IM{instance:05d}.dcm"
        if self.options.flat:
            return self.study_dir / name
        return self.study_dir / f"SE{series_number:04d}" / name


class StudyWriter:
    """Writes the series of one patient and collects their truth entries."""

    def __init__(self, draw: PatientDraw, options: StudyOptions, study_dir: Path) -> None:
        self.draw = draw
        self.options = options
        self.study_dir = study_dir
        self.conv = draw.convention
        self.vendor = draw.convention.vendor
        key = (draw.seed, draw.index)
        self.study_uid = make_uid(*key, "study")
        self.for_uid = make_uid(*key, "frame-of-reference")
        self.namer = _Namer(
            study_dir, options, np.random.default_rng(np.random.SeedSequence([draw.seed, draw.index, 0x4E41]))
        )
        self.series_truth: dict[str, dict[str, Any]] = {}
        self.numbers = self._plan_series_numbers()
        self.charset = "ISO_IR 192" if self.conv.chinese else "ISO_IR 100"
        self.grid = Grid.square(draw.anatomy.fov_mm, options.matrix)

    # --- tags ---------------------------------------------------------------------------------

    def _plan_series_numbers(self) -> dict[str, int]:
        """Series numbers in acquisition order (scout first), in the vendor's numbering style."""
        o = self.options
        phases = ["plain", "arterial", "portal"] + (["delayed"] if o.delayed_phase else [])
        keys = (["localizer"] if o.localizer else []) + phases
        keys += [f"{p}_thin" for p in phases] if o.thin_recon else []
        keys += ["coronal"] if o.coronal else []
        step = self.vendor.series_number_step
        return {k: (i + 1) * step + (1 if step > 1 else 0) for i, k in enumerate(keys)}

    def _series_number(self, key: str) -> int:
        return self.numbers[key]

    def _common(self, series_uid: str, series_number: int, description: str, time_s: float) -> dict[str, Any]:
        p = self.draw.patient
        study_desc = (
            "上腹部CT增强" if self.conv.chinese else self.vendor.study_descriptions[p["study_description_index"]]
        )
        desc = None if self.options.blank_descriptions else description
        return {
            "ImageType": None,
            "SOPClassUID": CTImageStorage,
            "StudyDate": p["StudyDate"],
            "SeriesDate": p["StudyDate"],
            "AcquisitionDate": p["StudyDate"],
            "ContentDate": p["StudyDate"],
            "StudyTime": dicom_time(self.draw.timing_s["localizer"]),
            "SeriesTime": dicom_time(time_s + 5.0),
            "AccessionNumber": p["AccessionNumber"],
            "Modality": "CT",
            "Manufacturer": self.vendor.manufacturer,
            "InstitutionName": "Synthetic Liver Centre",
            "ReferringPhysicianName": "",
            "StationName": f"CT{1 + self.draw.index % 3:02d}",
            "StudyDescription": None if self.options.blank_descriptions else study_desc,
            "SeriesDescription": desc if desc is not None else "",
            "ManufacturerModelName": self.conv.model,
            "PatientName": p["PatientName"],
            "PatientID": p["PatientID"],
            "PatientBirthDate": p["PatientBirthDate"],
            "PatientSex": p["PatientSex"],
            "PatientAge": p["PatientAge"],
            "PatientWeight": p["PatientWeight"],
            "BodyPartExamined": "ABDOMEN",
            "SoftwareVersions": GENERATOR_VERSION,
            "ProtocolName": "" if self.options.blank_descriptions else ("肝脏三期" if self.conv.chinese else "Liver 3 phase"),
            "PatientPosition": "FFS",
            "StudyInstanceUID": self.study_uid,
            "SeriesInstanceUID": series_uid,
            "StudyID": "1",
            "SeriesNumber": series_number,
            "FrameOfReferenceUID": self.for_uid,
            "PositionReferenceIndicator": "",
        }

    def _contrast(self, phase: str) -> dict[str, Any]:
        """Contrast tags: absent for the plain scan or when blanked."""
        if phase == "plain" or self.options.blank_contrast_tags:
            return {}
        return {
            "ContrastBolusAgent": self.conv.contrast_agent,
            "ContrastBolusRoute": "IV",
            "ContrastBolusVolume": self.draw.patient["ContrastBolusVolume"],
            "ContrastBolusStartTime": dicom_time(self.draw.timing_s["bolus_start"]),
            "ContrastFlowRate": "3.5",
            "ContrastBolusIngredient": "IODINE",
        }

    def _ct_acquisition(self, thickness: float) -> dict[str, Any]:
        return {
            "KVP": str(self.draw.patient["kvp"]),
            "SliceThickness": ds_number(thickness, 3),
            "DataCollectionDiameter": "500",
            "ReconstructionDiameter": ds_number(self.draw.anatomy.fov_mm, 1),
            "GantryDetectorTilt": "0",
            "TableHeight": ds_number(160.0 - self.draw.anatomy.table_offset_xy[1], 1),
            "RotationDirection": "CW",
            "ConvolutionKernel": self.vendor.kernel,
            "XRayTubeCurrent": 250,
            "ExposureTime": 500,
            "CTDIvol": self.draw.patient["ctdivol"],
            "RescaleIntercept": ds_number(self.vendor.intercept, 1),
            "RescaleSlope": "1",
            "RescaleType": "HU",
            "WindowCenter": "40",
            "WindowWidth": "400",
        }

    # --- series -------------------------------------------------------------------------------

    def write_axial(
        self,
        key: str,
        render_phase: str,
        thickness: float,
        z_positions: np.ndarray,
        noise_hu: float,
        progress: Progress,
        keep: bool,
    ) -> np.ndarray | None:
        """Render and write one axial series; returns the HU volume when ``keep``."""
        d = self.draw
        series_uid = make_uid(d.seed, d.index, "series", key)
        number = self._series_number(key)
        time_s = d.timing_s[render_phase]
        desc = self.conv.describe(render_phase, thickness)
        # Thin reconstructions are made after the scan: same acquisition time, later series time.
        common = self._common(series_uid, number, desc, time_s + (25.0 if key.endswith("_thin") else 0.0))
        common["ImageType"] = ["ORIGINAL", "PRIMARY", "AXIAL"]
        common.update(self._ct_acquisition(thickness))
        common.update(self._contrast(render_phase))
        common["AcquisitionTime"] = dicom_time(time_s)
        common["ContentTime"] = dicom_time(time_s + 10.0)
        common["AcquisitionNumber"] = 1
        common["ImageOrientationPatient"] = AXIAL
        common["PixelSpacing"] = [ds_number(self.grid.spacing, 6)] * 2
        spacing = float(abs(z_positions[1] - z_positions[0])) if len(z_positions) > 1 else thickness
        common["SpacingBetweenSlices"] = ds_number(spacing, 3)
        geometry = d.geometry[render_phase]
        # Each series has its own noise stream, so adding a series never changes another one.
        rng = np.random.default_rng(np.random.SeedSequence([d.seed, d.index, 0x4E4F, _stable_hash(key)]))
        n = len(z_positions)
        vol = np.empty((n, self.grid.ys.size, self.grid.xs.size), dtype=np.float32) if keep else None
        liver = np.zeros(n, dtype=np.int64)
        labels = np.empty((n, self.grid.ys.size, self.grid.xs.size), dtype=np.uint8) if self.options.label_maps else None
        sop_uids: list[str] = []
        files: list[str] = []
        x0, y0 = float(self.grid.xs[0]), float(self.grid.ys[0])
        ds: Dataset | None = None
        for k, zt in enumerate(z_positions):
            progress.check()
            clean, canvas, liver[k] = render_clean_slice_labelled(
                d.anatomy, d.lesions, d.thrombus, render_phase, geometry, self.grid, float(zt))
            if labels is not None:
                labels[k] = codes_from_canvas(canvas)
            hu = add_noise_and_blur(clean, self.grid.spacing, noise_hu if self.options.noise else 0.0,
                                    d.blur_mm if self.options.noise else 0.0, rng if self.options.noise else None)
            if vol is not None:
                vol[k] = hu
            pixels = stored_values(hu, self.vendor)
            sop_uid = make_uid(d.seed, d.index, "image", key, k)
            sop_uids.append(sop_uid)
            # One dataset per series, updated per slice and written at once: pydicom then converts
            # the ~80 shared elements once per series instead of once per file.
            if ds is None:
                ds = base_dataset(common, self.charset)
            ds.SOPInstanceUID = sop_uid
            ds.InstanceNumber = k + 1
            ds.ImagePositionPatient = [ds_number(x0), ds_number(y0), ds_number(float(zt))]
            ds.SliceLocation = ds_number(float(zt))
            set_pixels(ds, pixels, self.vendor.signed, self.vendor.bits_stored)
            path = self.namer.path(number, k + 1)
            finish_and_save(ds, path, CTImageStorage, self.options.transfer_syntax, pixels)
            files.append(path.relative_to(self.study_dir).as_posix())
            progress.update((k + 1) / n, f"{d.patient_id} {key}")
        zs = np.asarray(z_positions, dtype=float)
        if labels is not None:
            # z as written into ImagePositionPatient (ds_number rounds to 4 decimals)
            written_z = np.array([float(ds_number(float(zt))) for zt in z_positions])
            path = write_label_volume(self.study_dir, LabelVolume(series_uid, labels, written_z, sop_uids, dict(CODES), key))
        visible = zs[liver > 0]
        self.series_truth[series_uid] = {
            "phase": PHASE_TRUTH[render_phase],
            "rendered_phase": render_phase,
            "kind": "axial",
            "key": key,
            "series_number": number,
            "description": common["SeriesDescription"],
            "slice_thickness_mm": thickness,
            "n_images": n,
            "z_first_mm": float(zs[0]),
            "z_last_mm": float(zs[-1]),
            "liver_z_range_mm": [float(visible.min()), float(visible.max())] if visible.size else None,
            "liver_slices": int(visible.size),
            "liver_area_mm2": [round(float(c) * self.grid.spacing**2, 1) for c in liver],
            "files": files,
        }
        if labels is not None:
            self.series_truth[series_uid]["label_map"] = path.relative_to(self.study_dir).as_posix()
        return vol

    def write_coronal(self, portal: np.ndarray, z_positions: np.ndarray, progress: Progress) -> None:
        """Coronal reformat of the portal volume: planes every 5 mm through the body."""
        d = self.draw
        series_uid = make_uid(d.seed, d.index, "series", "coronal")
        number = self._series_number("coronal")
        time_s = d.timing_s["portal"]
        common = self._common(series_uid, number, self.conv.extra("coronal"), time_s + 60.0)
        common["ImageType"] = ["DERIVED", "SECONDARY", "REFORMATTED"]
        common.update(self._ct_acquisition(5.0))
        common["SpacingBetweenSlices"] = "5"
        common.update(self._contrast("portal"))
        common["AcquisitionTime"] = dicom_time(time_s)
        common["ContentTime"] = dicom_time(time_s + 70.0)
        common["ImageOrientationPatient"] = CORONAL
        dz = float(abs(z_positions[1] - z_positions[0]))
        common["PixelSpacing"] = [ds_number(dz, 6), ds_number(self.grid.spacing, 6)]
        ys = self.grid.ys
        oy = d.anatomy.table_offset_xy[1]
        planes = np.arange(oy - 0.7 * d.anatomy.body_b, oy + 0.7 * d.anatomy.body_b, 5.0)
        files = []
        order = np.argsort(-np.asarray(z_positions))  # rows top (head) to bottom
        for k, yp in enumerate(planes):
            progress.check()
            row = int(np.clip(np.rint((yp - ys[0]) / self.grid.spacing), 0, ys.size - 1))
            hu = portal[order, row, :]
            pixels = stored_values(hu, self.vendor)
            attrs = dict(common)
            attrs.update(
                {
                    "SOPInstanceUID": make_uid(d.seed, d.index, "image", "coronal", k),
                    "InstanceNumber": k + 1,
                    "ImagePositionPatient": [ds_number(float(self.grid.xs[0])), ds_number(float(ys[row])),
                                             ds_number(float(np.max(z_positions)))],
                }
            )
            ds = base_dataset(attrs, self.charset)
            set_pixels(ds, pixels, self.vendor.signed, self.vendor.bits_stored)
            path = self.namer.path(number, k + 1)
            finish_and_save(ds, path, CTImageStorage, self.options.transfer_syntax, pixels)
            files.append(path.relative_to(self.study_dir).as_posix())
            progress.update((k + 1) / len(planes))
        self.series_truth[series_uid] = {
            "phase": "other", "rendered_phase": "portal", "kind": "coronal", "key": "coronal",
            "series_number": number, "description": common["SeriesDescription"], "n_images": len(files),
            "files": files,
        }

    def write_localizer(self, plain: np.ndarray, z_positions: np.ndarray) -> None:
        """An AP scout: the mean attenuation along y of the plain volume, as a coronal image."""
        d = self.draw
        series_uid = make_uid(d.seed, d.index, "series", "localizer")
        number = self._series_number("localizer")
        t = d.timing_s["localizer"]
        common = self._common(series_uid, number, self.conv.extra("localizer"), t)
        common["ImageType"] = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        common.update(self._ct_acquisition(0.6))
        common["AcquisitionTime"] = dicom_time(t)
        common["ContentTime"] = dicom_time(t + 2.0)
        common["ImageOrientationPatient"] = CORONAL
        mu = np.clip(plain + 1000.0, 0.0, None).mean(axis=1)  # (nz, nx), linear attenuation ~ HU + 1000
        order = np.argsort(-np.asarray(z_positions))
        mu = mu[order]
        coverage = float(abs(z_positions[-1] - z_positions[0])) + abs(float(z_positions[1] - z_positions[0]))
        rows = max(2, int(round(coverage / self.grid.spacing)))
        img = cv2.resize(mu.astype(np.float32), (self.grid.xs.size, rows), interpolation=cv2.INTER_LINEAR)
        hu_like = img * 2.0 - 1000.0  # a scout's values are arbitrary; keep them in a CT-like range
        pixels = stored_values(hu_like, self.vendor)
        common["PixelSpacing"] = [ds_number(coverage / rows, 6), ds_number(self.grid.spacing, 6)]
        attrs = dict(common)
        attrs.update(
            {
                "SOPInstanceUID": make_uid(d.seed, d.index, "image", "localizer", 0),
                "InstanceNumber": 1,
                "ImagePositionPatient": [ds_number(float(self.grid.xs[0])), "0", ds_number(float(np.max(z_positions)))],
            }
        )
        ds = base_dataset(attrs, self.charset)
        set_pixels(ds, pixels, self.vendor.signed, self.vendor.bits_stored)
        path = self.namer.path(number, 1)
        finish_and_save(ds, path, CTImageStorage, self.options.transfer_syntax, pixels)
        self.series_truth[series_uid] = {
            "phase": "other", "rendered_phase": "plain", "kind": "localizer", "key": "localizer",
            "series_number": number, "description": common["SeriesDescription"], "n_images": 1,
            "files": [path.relative_to(self.study_dir).as_posix()],
        }

    def write_dose_report(self) -> None:
        """A dose summary as an 8-bit Secondary Capture image (not a CT image of the patient)."""
        d = self.draw
        series_uid = make_uid(d.seed, d.index, "series", "dose")
        number = self.vendor.dose_series_number
        t = d.timing_s["delayed"] + 120.0
        common = self._common(series_uid, number, self.conv.extra("dose_report"), t)
        common["SOPClassUID"] = SecondaryCaptureImageStorage
        common["ImageType"] = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
        common["ConversionType"] = "WSD"
        common["ContentTime"] = dicom_time(t)
        for k in ("FrameOfReferenceUID", "PositionReferenceIndicator"):
            common.pop(k)
        size = 512  # dose screens are captured at 512 × 512 whatever the CT matrix
        img = np.zeros((size, size), dtype=np.uint8)
        ctdi = d.patient["ctdivol"]
        lines = ["Dose Report", f"kV {d.patient['kvp']}", f"CTDIvol {ctdi:.2f} mGy",
                 f"DLP {ctdi * 25.0 * 4:.0f} mGy*cm", "Phantom"]
        scale = size / 512.0
        for i, text in enumerate(lines):
            cv2.putText(img, text, (int(20 * scale), int((60 + 60 * i) * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                        1.2 * scale, 255, max(1, int(2 * scale)), cv2.LINE_8)
        attrs = dict(common)
        attrs.update({"SOPInstanceUID": make_uid(d.seed, d.index, "image", "dose", 0), "InstanceNumber": 1})
        ds = base_dataset(attrs, self.charset)
        set_pixels(ds, img, False, 8)
        path = self.namer.path(number, 1)
        finish_and_save(ds, path, SecondaryCaptureImageStorage, self.options.transfer_syntax, img)
        self.series_truth[series_uid] = {
            "phase": "other", "rendered_phase": None, "kind": "dose_report", "key": "dose",
            "series_number": number, "description": common["SeriesDescription"], "n_images": 1,
            "files": [path.relative_to(self.study_dir).as_posix()],
        }


def _stable_hash(text: str) -> int:
    """A platform-independent small hash (Python's ``hash`` is salted per process)."""
    h = 2166136261
    for ch in text.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h


def write_study(
    draw: PatientDraw, options: StudyOptions, study_dir: Path, progress: Progress = NULL_PROGRESS
) -> dict[str, Any]:
    """Render and write all series of one patient into ``study_dir`` and its ``truth.json``.

    Returns the truth document (also written to ``study_dir / "truth.json"``).
    """
    w = StudyWriter(draw, options, study_dir)
    render_phases = ["plain", "arterial", "portal"] + (["delayed"] if options.delayed_phase else [])
    n_units = len(render_phases) * (2 if options.thin_recon else 1) + 1
    unit = 0
    kept: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    main_uid: dict[str, str] = {}
    for phase in render_phases:
        g = draw.geometry[phase]
        zs = g.z_start - np.arange(options.n_slices) * options.slice_mm
        keep = (phase == "portal" and options.coronal) or (phase == "plain" and options.localizer)
        vol = w.write_axial(phase, phase, options.slice_mm, zs, draw.noise_hu,
                            sub_progress(progress, unit / n_units, (unit + 1) / n_units), keep)
        unit += 1
        main_uid[phase] = next(u for u, t in w.series_truth.items() if t["key"] == phase)
        if vol is not None:
            kept[phase] = (vol, zs)
    if options.thin_recon:
        thin = w.vendor.thin_mm
        for phase in render_phases:
            g = draw.geometry[phase]
            n = max(2, int(round(options.z_coverage_mm / thin)))
            zs = g.z_start + 0.5 * (thin - options.slice_mm) - np.arange(n) * thin
            # Thinner slices are noisier: noise grows with 1/sqrt(thickness).
            w.write_axial(f"{phase}_thin", phase, thin, zs, draw.noise_hu * float(np.sqrt(options.slice_mm / thin)),
                          sub_progress(progress, unit / n_units, (unit + 1) / n_units), False)
            unit += 1
    if options.coronal:
        w.write_coronal(*kept["portal"], NULL_PROGRESS)
    if options.localizer:
        w.write_localizer(*kept["plain"])
    if options.dose_report:
        w.write_dose_report()
    truth = _truth(draw, options, w, main_uid)
    (study_dir / "truth.json").write_text(json.dumps(truth, indent=1, ensure_ascii=False), encoding="utf-8")
    progress.update(1.0, draw.patient_id)
    return truth


def _to_table(p: tuple[float, float, float] | list[float], shift: tuple[float, float, float]) -> list[float]:
    return [round(float(p[i]) + float(shift[i]), 3) for i in range(3)]


def _truth(draw: PatientDraw, options: StudyOptions, w: StudyWriter, main_uid: dict[str, str]) -> dict[str, Any]:
    an = draw.anatomy
    phases = list(main_uid)
    z_lo, z_hi = an.liver_z_extent()
    landmarks = an.landmarks()
    return {
        "generator": GENERATOR_VERSION,
        "seed": draw.seed,
        "index": draw.index,
        "patient_id": draw.patient_id,
        "study_instance_uid": w.study_uid,
        "frame_of_reference_uid": w.for_uid,
        "series": w.series_truth,
        "phases": {p: main_uid[p] for p in phases if p in ("plain", "arterial", "portal")},
        "delayed_series": main_uid.get("delayed"),
        "liver_z_range_mm": {p: w.series_truth[main_uid[p]]["liver_z_range_mm"] for p in phases},
        "liver_z_extent_mm": {
            p: [round(z_lo + draw.geometry[p].shift_mm[2], 3), round(z_hi + draw.geometry[p].shift_mm[2], 3)]
            for p in phases
        },
        "breath_hold_shift_mm": {p: list(draw.geometry[p].breath_hold_mm) for p in phases},
        "patient_shift_mm": {p: list(draw.geometry[p].shift_mm) for p in phases},
        "landmarks_mm": {
            p: {name: _to_table(pt, draw.geometry[p].shift_mm) for name, pt in landmarks.items()} for p in phases
        },
        "lesions": [
            {
                "centre_mm": {p: _to_table(les.centre, draw.geometry[p].shift_mm) for p in phases},
                "diameter_mm": round(les.diameter_mm, 2),
                "target": i == 0,
                "necrosis_fraction": round(les.necrosis_fraction, 4),
                "arterial_enhancement_hu": round(les.arterial_enhancement_hu, 2),
                "washout_hu": round(les.washout_hu, 2),
                "heterogeneity": round(les.heterogeneity, 4),
                "capsule_mm": round(les.capsule_mm, 2),
                "oil_deposits": [
                    {"centre_mm_anatomy": list(b.centre), "radius_mm": b.radius, "hu": b.amplitude} for b in les.oil
                ],
            }
            for i, les in enumerate(draw.lesions)
        ],
        "pvtt": asdict(draw.thrombus) if draw.thrombus is not None else None,
        "latent_features": draw.features.to_dict(),
        "outcome_model": model_description(),
        "p_true": draw.outcome.p_true,
        "responder": draw.outcome.responder,
        "recist": draw.outcome.recist,
        "hu_targets": {p: {k: round(v, 1) for k, v in an.hu(p).items()} for p in phases},
        "anatomy": {
            "liver_span_mm": an.liver_span_mm,
            "cirrhosis": an.cirrhosis,
            "liver_plain_hu": an.liver_plain_hu,
            "arterial_timing": an.arterial_timing,
            "enhancement_scale": an.enhancement_scale,
            "body_half_width_mm": an.body_a,
            "body_half_depth_mm": an.body_b,
            "fov_mm": an.fov_mm,
        },
        "noise_hu": draw.noise_hu if options.noise else 0.0,
        "blur_mm": draw.blur_mm if options.noise else 0.0,
        "timing_s": draw.timing_s,
        "convention": {
            "vendor": draw.convention.vendor.key,
            "manufacturer": draw.convention.vendor.manufacturer,
            "model": draw.convention.model,
            "chinese": draw.convention.chinese,
            "contrast_agent": draw.convention.contrast_agent,
        },
        "options": asdict(options),
    }
