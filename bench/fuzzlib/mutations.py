"""Mutations of DICOM files: drawn from a seeded generator, each applied from its own parameters.

A :class:`Mutation` names its kind, the files it touches (paths relative to the case folder) and
every random choice it needs (``params``): applying the same list to the same seed folder gives
byte-identical files, and so does any sub-list — which is what lets the minimiser drop mutations
one by one (delta debugging) and still reproduce a failure.

Three stages, applied in this order whatever the list order: ``files`` (whole series copied
with new UIDs, files duplicated), ``dataset`` (pydicom: values set, tags removed, HTML in
names) and ``bytes`` (raw bytes: flips, truncation, length fields, duplicated elements, VRs).
A mutation that cannot apply to what it finds (a file already unreadable) is a no-op.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Decimal-string tags that size geometry or rescale values, with hostile values (issue 14).
DS_VALUES: dict[str, tuple[str, ...]] = {
    "PixelSpacing": ("NaN\\NaN", "Inf\\1", "1e308\\1e308", "0\\0", "-1\\-1", "1e-308\\1e-308", "0.7"),
    "SliceThickness": ("NaN", "Inf", "-Inf", "1e308", "0", "-5"),
    "RescaleSlope": ("NaN", "Inf", "1e308", "0", "-1", "1e-308"),
    "RescaleIntercept": ("NaN", "-Inf", "1e308", "-1e308"),
    "ImagePositionPatient": ("NaN\\0\\0", "0\\0\\Inf", "1e308\\1e308\\1e308", "0\\0"),
    "ImageOrientationPatient": ("0\\0\\0\\0\\0\\0", "NaN\\0\\0\\0\\1\\0", "1\\0\\0\\1\\0\\0",
                                "1e308\\0\\0\\0\\1e308\\0", "2\\0\\0\\0\\2\\0", "1\\0\\0"),
    "SpacingBetweenSlices": ("NaN", "0", "-1e308"),
    "WindowCenter": ("NaN", "1e308"),
    "WindowWidth": ("0", "-Inf"),
}
#: Unsigned-short tags that size memory, with hostile values.
US_VALUES: dict[str, tuple[int, ...]] = {
    "Rows": (65535, 20000, 0, 1),
    "Columns": (65535, 20000, 0, 1),
    "BitsAllocated": (1, 7, 12, 13, 24, 33, 64, 0),
    "BitsStored": (0, 17, 33, 64),
    "HighBit": (0, 31, 64),
    "PixelRepresentation": (2, 255),
    "SamplesPerPixel": (0, 3, 255),
}
#: Integer-string tags.
IS_VALUES: dict[str, tuple[str, ...]] = {
    "NumberOfFrames": ("2147483647", "100000", "0", "-1"),
    "InstanceNumber": ("-2147483648", "99999999999"),
}
#: Text a user sees: descriptions, names and IDs with HTML in them.
HTML_TAGS: tuple[str, ...] = ("SeriesDescription", "StudyDescription", "PatientName", "PatientID",
                              "InstitutionName", "ProtocolName")
HTML_VALUES: tuple[str, ...] = (
    '<h1 style="color:red">RESPONDER 99%</h1>',
    '<img src="file:///etc/hostname">',
    "<b>bold</b> &amp; <i>it</i>",
    "<a href='http://example.invalid'>x</a>",
    "<script>alert(1)</script>",
)
#: Tags whose removal the app must survive (plus one drawn at random from the file).
REMOVABLE: tuple[str, ...] = (
    "Rows", "Columns", "PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient",
    "SliceThickness", "RescaleSlope", "RescaleIntercept", "BitsAllocated", "BitsStored",
    "PixelRepresentation", "SeriesInstanceUID", "StudyInstanceUID", "SOPInstanceUID", "PatientID",
    "Modality", "PixelData", "SamplesPerPixel", "PhotometricInterpretation", "ImageType",
    "FrameOfReferenceUID", "SOPClassUID",
)
VRS: tuple[str, ...] = ("US", "SS", "UL", "FD", "DS", "IS", "LO", "CS", "UI", "OB", "OW", "SQ",
                        "UN", "UT", "AT", "XX", "\x00\x00")

_LONG_LENGTH_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"}
_DEFLATED = "1.2.840.10008.1.2.1.99"

FILE_KINDS = ("copy_series", "duplicate_file")
DATASET_KINDS = ("set_ds", "set_us", "set_is", "html", "remove_tag")
BYTE_KINDS = ("byte_flip", "truncate", "length_field", "duplicate_element", "vr_change")
STAGE = {**{k: 0 for k in FILE_KINDS}, **{k: 1 for k in DATASET_KINDS},
         **{k: 2 for k in BYTE_KINDS}}


@dataclass
class Mutation:
    """One change to one or more files of a case; ``params`` holds every random choice."""

    kind: str
    targets: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "targets": list(self.targets), "params": self.params}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Mutation:
        return cls(d["kind"], tuple(d["targets"]), dict(d["params"]))

    def short(self) -> str:
        """One line for the table and the reproducer's README."""
        what = ",".join(f"{k}={v}" for k, v in self.params.items() if k != "seed")
        scope = self.targets[0] if len(self.targets) == 1 else f"{len(self.targets)} files"
        return f"{self.kind}({what}) on {scope}"


@dataclass
class SeedInfo:
    """A seed folder and its DICOM files grouped by series folder (relative paths)."""

    name: str
    folder: Path
    series: dict[str, list[str]]
    predictable: bool = False
    #: phase → its files, for synthetic seeds (from the generator's truth.json)
    phases: dict[str, list[str]] = field(default_factory=dict)
    #: phase → the slice with the most liver (a value there reaches the model's vote)
    focus: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> list[str]:
        return [f for fs in self.series.values() for f in fs]


def _choice(rng: np.random.Generator, items: Any) -> Any:
    return items[int(rng.integers(len(items)))]


def _targets(rng: np.random.Generator, seed: SeedInfo, series_share: float) -> tuple[str, ...]:
    """One file, or (with probability ``series_share``) every file of one series."""
    if rng.random() < series_share:
        return tuple(seed.series[_choice(rng, sorted(seed.series))])
    return (_choice(rng, seed.files),)


def draw_mutation(rng: np.random.Generator, seed: SeedInfo, kinds: dict[str, float],
                  series_share: float = 0.25) -> Mutation:
    """Draw one mutation of a kind chosen with the given weights."""
    names = sorted(kinds)
    weights = np.array([kinds[k] for k in names], dtype=float)
    kind = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    one = (_choice(rng, seed.files),)
    if kind == "copy_series":
        files = tuple(seed.series[_choice(rng, sorted(seed.series))])
        return Mutation(kind, files, {"copies": int(rng.integers(1, 3)),
                                      "force_phases": bool(rng.random() < 0.5),
                                      "confirm": bool(rng.random() < 0.5),
                                      "seed": int(rng.integers(2**31))})
    if kind == "duplicate_file":
        return Mutation(kind, one, {})
    if kind == "set_ds":
        key = _choice(rng, sorted(DS_VALUES))
        return Mutation(kind, _targets(rng, seed, series_share),
                        {"keyword": key, "value": _choice(rng, DS_VALUES[key])})
    if kind == "set_us":
        key = _choice(rng, sorted(US_VALUES))
        return Mutation(kind, _targets(rng, seed, series_share),
                        {"keyword": key, "value": int(_choice(rng, US_VALUES[key]))})
    if kind == "set_is":
        key = _choice(rng, sorted(IS_VALUES))
        return Mutation(kind, _targets(rng, seed, series_share),
                        {"keyword": key, "value": _choice(rng, IS_VALUES[key])})
    if kind == "html":
        return Mutation(kind, _targets(rng, seed, 0.6),
                        {"keyword": _choice(rng, HTML_TAGS), "value": _choice(rng, HTML_VALUES)})
    if kind == "remove_tag":
        key = _choice(rng, REMOVABLE) if rng.random() < 0.8 else "*random*"
        return Mutation(kind, _targets(rng, seed, series_share),
                        {"keyword": key, "seed": int(rng.integers(2**31))})
    if kind == "byte_flip":
        return Mutation(kind, one, {"n": int(rng.integers(1, 9)), "seed": int(rng.integers(2**31))})
    if kind == "truncate":
        return Mutation(kind, one, {"fraction": round(float(rng.random()), 4)})
    if kind == "length_field":
        return Mutation(kind, one, {"pick": round(float(rng.random()), 4),
                                    "value": _choice(rng, ("max", "zero"))})
    if kind == "duplicate_element":
        return Mutation(kind, one, {"pick": round(float(rng.random()), 4)})
    if kind == "vr_change":
        return Mutation(kind, one, {"pick": round(float(rng.random()), 4), "vr": _choice(rng, VRS)})
    raise ValueError(f"unknown mutation kind {kind!r}")


# ---------------------------------------------------------------------------------------------
# applying


def _uid(*parts: object) -> str:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def _read(data: bytes) -> Any:
    import pydicom

    return pydicom.dcmread(io.BytesIO(data), force=True)


def _write(ds: Any) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def _set_keyword(ds: Any, keyword: str, value: Any) -> None:
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import DataElement

    tag = tag_for_keyword(keyword)
    if tag is None:
        return
    vr = ds[tag].VR if tag in ds else dictionary_VR(tag)
    if isinstance(value, str) and vr in {"DS", "IS"}:
        # the raw text goes to the file as written: pydicom would reformat or refuse NaN/Inf
        from pydicom.dataelem import RawDataElement
        from pydicom.tag import Tag

        raw = value.encode("ascii")
        raw += b" " if len(raw) % 2 else b""
        implicit = bool(ds.original_encoding[0])
        ds._dict[tag] = RawDataElement(Tag(tag), vr, len(raw), raw, 0, implicit, True)
        return
    ds[tag] = DataElement(tag, vr, value)


def _dataset_step(data: bytes, m: Mutation) -> bytes:
    ds = _read(data)
    if m.kind in ("set_ds", "set_us", "set_is", "html"):
        _set_keyword(ds, m.params["keyword"], m.params["value"])
    elif m.kind == "remove_tag":
        key = m.params["keyword"]
        if key == "*random*":
            tags = sorted(ds.keys())
            if not tags:
                return data
            del ds[tags[int(np.random.default_rng(m.params["seed"]).integers(len(tags)))]]
        elif key in ds:
            delattr(ds, key)
        else:
            return data
    return _write(ds)


def _raw_elements(data: bytes) -> list[tuple[int, Any]]:
    """(header offset, raw element) of every top-level element, in file order."""
    ds = _read(data)
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if ts == _DEFLATED:
        return []
    out = []
    for tag in ds:
        raw = ds.get_item(tag)
        tell = getattr(raw, "value_tell", None)
        if tell is None:
            continue
        if raw.is_implicit_VR:
            header = 8
        else:
            header = 12 if str(raw.VR) in _LONG_LENGTH_VRS or raw.VR is None else 8
        out.append((tell - header, raw))
    return out


def _byte_step(data: bytes, m: Mutation) -> bytes:
    p = m.params
    if m.kind == "byte_flip":
        if len(data) == 0:
            return data
        rng = np.random.default_rng(p["seed"])
        buf = bytearray(data)
        for _ in range(p["n"]):
            i = int(rng.integers(len(buf)))
            buf[i] ^= int(rng.integers(1, 256))
        return bytes(buf)
    if m.kind == "truncate":
        return data[: int(len(data) * p["fraction"])]
    elements = _raw_elements(data)
    if not elements:
        return data
    start, raw = elements[min(int(p["pick"] * len(elements)), len(elements) - 1)]
    tell = raw.value_tell
    buf = bytearray(data)
    if m.kind == "length_field":
        long = raw.is_implicit_VR or tell - start == 12
        size = 4 if long else 2
        value = (2 ** (8 * size) - 1) if p["value"] == "max" else 0
        buf[tell - size: tell] = value.to_bytes(size, "little")
        return bytes(buf)
    if m.kind == "duplicate_element":
        if raw.length == 0xFFFFFFFF or tell + raw.length > len(data):
            return data
        chunk = data[start: tell + raw.length]
        return data[: tell + raw.length] + chunk + data[tell + raw.length:]
    if m.kind == "vr_change":
        if raw.is_implicit_VR:
            return data
        buf[start + 4: start + 6] = p["vr"].encode("latin-1")[:2].ljust(2, b" ")
        return bytes(buf)
    raise ValueError(m.kind)


def _file_step(case_dir: Path, m: Mutation, facts: dict[str, Any]) -> None:
    if m.kind == "duplicate_file":
        src = case_dir / m.targets[0]
        if src.is_file():
            shutil.copyfile(src, src.with_name(src.name + "_dup"))
        return
    # copy_series: the same pixels and positions under new series/instance UIDs
    originals: list[str] = []
    copies: list[str] = []
    for k in range(m.params["copies"]):
        for rel in m.targets:
            src = case_dir / rel
            if not src.is_file():
                continue
            try:
                ds = _read(src.read_bytes())
                old = str(ds.SeriesInstanceUID)
                ds.SeriesInstanceUID = _uid(m.params["seed"], k, old)
                ds.SOPInstanceUID = _uid(m.params["seed"], k, ds.SOPInstanceUID)
                if "SeriesNumber" in ds:
                    ds.SeriesNumber = 900 + 10 * k + int(ds.SeriesNumber or 0) % 10
                if hasattr(ds, "file_meta") and "MediaStorageSOPInstanceUID" in ds.file_meta:
                    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                out = case_dir / f"{Path(rel).parent}_copy{k}" / Path(rel).name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(_write(ds))
            except Exception:  # an unreadable seed file is simply not copied
                continue
            if old not in originals:
                originals.append(old)
            if ds.SeriesInstanceUID not in copies:
                copies.append(str(ds.SeriesInstanceUID))
    if m.params.get("force_phases") and originals and copies:
        facts["identical_series"] = {"original": originals[0], "copies": copies,
                                     "confirm": bool(m.params.get("confirm"))}


def apply_mutations(seed_dir: Path, case_dir: Path, mutations: list[Mutation]) -> dict[str, Any]:
    """Copy ``seed_dir`` to ``case_dir`` and apply ``mutations``; returns facts for the oracle.

    Facts: ``identical_series`` (the original and copied series UIDs when a copy asks for the
    phases to be forced onto them, and whether to ``--confirm`` that), ``noop`` (indices of mutations that found nothing to change).
    """
    if case_dir.exists():
        shutil.rmtree(case_dir)
    shutil.copytree(seed_dir, case_dir)
    facts: dict[str, Any] = {"noop": []}
    order = sorted(range(len(mutations)), key=lambda i: (STAGE[mutations[i].kind], i))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in order:
            m = mutations[i]
            if STAGE[m.kind] == 0:
                _file_step(case_dir, m, facts)
                continue
            changed = False
            for rel in m.targets:
                path = case_dir / rel
                if not path.is_file():
                    continue
                data = path.read_bytes()
                try:
                    new = _dataset_step(data, m) if STAGE[m.kind] == 1 else _byte_step(data, m)
                except Exception:  # the file no longer parses: this mutation has nothing to do
                    continue
                if new != data:
                    path.write_bytes(new)
                    changed = True
            if not changed:
                facts["noop"].append(i)
    return facts
