"""How different hospitals and scanners label the same study.

Series descriptions, kernels, pixel storage conventions and series numbering vary by vendor and
site; Chinese sites often describe phases in Chinese (平扫 / 动脉期 / 门脉期). The generator
draws one convention per patient (or uses the one asked for) so that tag-based phase
classification is tested against realistic variety.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Vendor:
    """One vendor's naming and storage habits.

    ``descriptions[phase]`` are templates with ``{t}`` for the slice thickness as that vendor
    writes it (``thickness_format``). ``signed``/``bits_stored``/``intercept`` set how HU are
    stored: stored = HU − intercept (slope 1).
    """

    key: str
    manufacturer: str
    models: tuple[str, ...]
    kernel: str
    thickness_format: str
    signed: bool
    bits_stored: int
    intercept: float
    thin_mm: float
    descriptions: dict[str, tuple[str, ...]]
    localizer: str
    dose_report: str
    coronal: str
    study_descriptions: tuple[str, ...]
    series_number_step: int
    dose_series_number: int


VENDORS: dict[str, Vendor] = {
    "siemens": Vendor(
        key="siemens",
        manufacturer="SIEMENS",
        models=("SOMATOM Definition AS+", "SOMATOM Force", "Sensation 64", "SOMATOM go.Top"),
        kernel="B30f",
        thickness_format="{:.1f}",
        signed=False,
        bits_stored=12,
        intercept=-1024.0,
        thin_mm=1.0,
        descriptions={
            "plain": ("Abdomen nativ  {t}  B30f", "NATIV {t} B30f", "Non-contrast {t} Br40"),
            "arterial": ("Abdomen arteriell  {t}  B30f", "ART {t} B30f", "Arterial {t} Br40"),
            "portal": ("Abdomen portalvenoes  {t}  B30f", "PV {t} B30f", "Venous {t} Br40"),
            "delayed": ("Abdomen spaet  {t}  B30f", "DELAY {t} B30f", "Delayed {t} Br40"),
        },
        localizer="Topogram  0.6  T20f",
        dose_report="Patient Protocol",
        coronal="Cor  3.0  MPR",
        study_descriptions=("Abdomen^Leber 3-Phasen (Adult)", "CT ABDOMEN LIVER 3 PHASE"),
        series_number_step=1,
        dose_series_number=501,
    ),
    "ge": Vendor(
        key="ge",
        manufacturer="GE MEDICAL SYSTEMS",
        models=("Discovery CT750 HD", "Revolution CT", "LightSpeed VCT", "Optima CT660"),
        kernel="STANDARD",
        thickness_format="{:g}mm",
        signed=True,
        bits_stored=16,
        intercept=-1024.0,
        thin_mm=1.25,
        descriptions={
            "plain": ("Plain {t}", "NON CON {t} STND", "PRE {t}"),
            "arterial": ("Arterial {t}", "ART PHASE {t}", "LATE ARTERIAL {t}"),
            "portal": ("Portal Venous {t}", "PVP {t}", "VENOUS PHASE {t}"),
            "delayed": ("Delay {t}", "EQUILIBRIUM {t}", "3 MIN DELAY {t}"),
        },
        localizer="Scout",
        dose_report="Dose Report",
        coronal="CORONAL MPR",
        study_descriptions=("CT ABD LIVER TRIPLE PHASE", "LIVER 3 PHASE"),
        series_number_step=1,
        dose_series_number=999,
    ),
    "philips": Vendor(
        key="philips",
        manufacturer="Philips",
        models=("Brilliance 64", "IQon - Spectral CT", "Ingenuity CT", "iCT 256"),
        kernel="B",
        thickness_format="{:g} mm",
        signed=False,
        bits_stored=12,
        intercept=-1024.0,
        thin_mm=1.0,
        descriptions={
            "plain": ("NC Abdomen {t}", "Pre-contrast {t}", "Native {t}"),
            "arterial": ("AP Liver {t}", "Arterial phase {t}", "Late AP {t}"),
            "portal": ("PVP {t}", "Portal phase {t}", "Venous phase {t}"),
            "delayed": ("Delayed 3min {t}", "Equilibrium {t}", "Late phase {t}"),
        },
        localizer="Survey",
        dose_report="Dose Info",
        coronal="Coronal MPR",
        study_descriptions=("CT Liver multiphase", "Abdomen triphasic"),
        series_number_step=100,
        dose_series_number=9001,
    ),
    "canon": Vendor(
        key="canon",
        manufacturer="CANON_MEC",
        models=("Aquilion ONE", "Aquilion PRIME SP", "Aquilion Lightning"),
        kernel="FC08",
        thickness_format="{:.1f}",
        signed=True,
        bits_stored=16,
        intercept=0.0,
        thin_mm=1.0,
        descriptions={
            "plain": ("PRE {t}", "Plain {t} FC08", "SIMPLE {t}"),
            "arterial": ("ART {t}", "Early Art {t} FC08", "ARTERIAL {t}"),
            "portal": ("VEN {t}", "PV {t} FC08", "PORTAL {t}"),
            "delayed": ("EQ {t}", "Delay {t} FC08", "EQUILIBRIUM {t}"),
        },
        localizer="Scanogram",
        dose_report="Dose Summary",
        coronal="COR MPR",
        study_descriptions=("Liver Dynamic", "ABDOMEN DYNAMIC"),
        series_number_step=1,
        dose_series_number=900,
    ),
    "united": Vendor(
        key="united",
        manufacturer="UIH",
        models=("uCT 760", "uCT 780", "uCT 960+"),
        kernel="B_SOFT_B",
        thickness_format="{:g}mm",
        signed=True,
        bits_stored=16,
        intercept=-1024.0,
        thin_mm=1.0,
        descriptions={
            "plain": ("Plain {t}", "Non Contrast {t}", "Abdomen Plain {t}"),
            "arterial": ("Arterial Phase {t}", "AP {t}", "Abdomen Arterial {t}"),
            "portal": ("Portal Phase {t}", "PVP {t}", "Abdomen Venous {t}"),
            "delayed": ("Delay Phase {t}", "DP {t}", "Abdomen Delay {t}"),
        },
        localizer="Topo",
        dose_report="Dose Report",
        coronal="Coronal",
        study_descriptions=("Abdomen Enhanced", "Liver 3 Phase"),
        series_number_step=1,
        dose_series_number=1001,
    ),
}

#: Chinese wording, used with any vendor's storage habits.
CHINESE_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "plain": ("平扫 {t}", "肝脏平扫 {t}", "上腹部平扫 {t}"),
    "arterial": ("动脉期 {t}", "增强动脉期 {t}", "肝脏动脉期 {t}"),
    "portal": ("门脉期 {t}", "门静脉期 {t}", "增强静脉期 {t}"),
    "delayed": ("延迟期 {t}", "平衡期 {t}", "延迟扫描 {t}"),
}
CHINESE_EXTRA: dict[str, str] = {
    "localizer": "定位像",
    "dose_report": "剂量报告",
    "coronal": "冠状位重建",
    "study": "上腹部CT增强",
}

CONTRAST_AGENTS: tuple[str, ...] = ("Iodixanol 320", "OMNIPAQUE 350", "ULTRAVIST 370", "Iopamidol 370", "Visipaque 320")
CHINESE_AGENTS: tuple[str, ...] = ("碘克沙醇 320", "碘海醇 350", "Iodixanol 300")


@dataclass(frozen=True)
class Convention:
    """The naming convention drawn for one patient."""

    vendor: Vendor
    chinese: bool
    model: str
    template_index: int
    contrast_agent: str

    def describe(self, phase: str, thickness_mm: float) -> str:
        """Series description of ``phase`` at ``thickness_mm``."""
        table = CHINESE_DESCRIPTIONS if self.chinese else self.vendor.descriptions
        templates = table[phase]
        t = self.vendor.thickness_format.format(thickness_mm)
        if self.chinese:
            t = f"{thickness_mm:g}mm"
        return templates[self.template_index % len(templates)].format(t=t)

    def extra(self, what: str) -> str:
        """Description of the localizer, dose report or coronal series."""
        if self.chinese:
            return CHINESE_EXTRA[what]
        return str(getattr(self.vendor, what))


def draw_convention(choice: str, rng: np.random.Generator) -> Convention:
    """Pick the convention for one patient (``choice`` from :data:`app.synthetic.options.CONVENTIONS`)."""
    keys = tuple(VENDORS)
    if choice == "random":
        chinese = bool(rng.random() < 0.3)
        vendor = VENDORS[keys[int(rng.integers(len(keys)))]]
    elif choice == "chinese":
        chinese = True
        vendor = VENDORS[("siemens", "ge", "united", "philips")[int(rng.integers(4))]]
    else:
        chinese = False
        vendor = VENDORS[choice]
    model = vendor.models[int(rng.integers(len(vendor.models)))]
    agents = CHINESE_AGENTS if chinese else CONTRAST_AGENTS
    return Convention(
        vendor=vendor,
        chinese=chinese,
        model=model,
        template_index=int(rng.integers(3)),
        contrast_agent=agents[int(rng.integers(len(agents)))],
    )
