"""The paper's experiment grid on a cohort: phase combinations, backbones, attention on/off.

Liao et al. 2024 compare, on their 48-patient validation set, the seven phase subsets
(C, A, V, AC, AV, CV, three-phase; their Table 2), the three-phase model with other backbones
(VGG19, MobileNetV3, ResNet-34/50) and the model without self-attention. :func:`run_ablation`
trains one model per variant on the same patient-level split with the same recipe and seed and
evaluates each on the validation patients, giving rows shaped like the paper's tables.

Protocol note (printed with the table): as in the paper, early stopping / model selection use
the validation set that the table reports, which flatters every variant alike; the comparison
between variants is the point, not the absolute numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from app import stats
from app.inference.config import PHASE_COMBINATIONS
from app.progress import NULL_PROGRESS, Progress, sub_progress
from app.training.dataset import SplitData
from app.training.evaluate import evaluate_scored, score_slices
from app.training.trainer import TrainConfig, train

#: The paper's letters for the phases (C = plain/non-contrast, A = arterial, V = portal-venous).
LETTERS: dict[str, str] = {"plain": "C", "arterial": "A", "portal": "V"}
GRIDS: tuple[str, ...] = ("phases", "backbones", "attention")
PAPER_BACKBONES: tuple[str, ...] = ("resnet34", "resnet50", "vgg19", "mobilenet_v3_large")


def variant_name(phases: tuple[str, ...], backbone: str, attention: bool) -> str:
    """``"three-phase"``, ``"AV"``, ... plus the backbone and attention when not the default."""
    letters = "".join(LETTERS[p] for p in ("arterial", "plain", "portal") if p in phases)
    # the paper writes AC, AV, CV and single letters; keep its spelling
    order = {"AC": "AC", "AV": "AV", "CV": "CV", "A": "A", "C": "C", "V": "V"}
    base = "three-phase" if len(phases) == 3 else order.get(letters, letters)
    extras = []
    if backbone != "resnet18":
        extras.append(backbone)
    if not attention:
        extras.append("no attention")
    return base + (f" ({', '.join(extras)})" if extras else "")


@dataclass(frozen=True)
class Variant:
    """One cell of the grid: which table it belongs to and the model settings it changes."""

    table: str
    phases: tuple[str, ...]
    backbone: str
    attention: bool

    @property
    def name(self) -> str:
        return variant_name(self.phases, self.backbone, self.attention)


def build_grid(grids: tuple[str, ...] = GRIDS, base_backbone: str = "resnet18",
               backbones: tuple[str, ...] = PAPER_BACKBONES) -> list[Variant]:
    """The variants of the chosen grids (duplicates removed, paper order).

    ``phases``: the seven phase subsets with the base backbone and attention (Table 2).
    ``backbones``: the three-phase model with each other backbone (Table 3).
    ``attention``: every phase subset with two or more phases without attention.
    """
    out: list[Variant] = []
    seen: set[tuple[tuple[str, ...], str, bool]] = set()

    def add(v: Variant) -> None:
        key = (v.phases, v.backbone, v.attention)
        if key not in seen:
            seen.add(key)
            out.append(v)

    if "phases" in grids:
        for combo in PHASE_COMBINATIONS:
            add(Variant("phases", tuple(combo), base_backbone, True))
    if "backbones" in grids:
        add(Variant("backbones", PHASE_COMBINATIONS[-1], base_backbone, True))
        for b in backbones:
            add(Variant("backbones", PHASE_COMBINATIONS[-1], b, True))
    if "attention" in grids:
        for combo in PHASE_COMBINATIONS:
            if len(combo) > 1:
                add(Variant("attention", tuple(combo), base_backbone, True))
                add(Variant("attention", tuple(combo), base_backbone, False))
    return out


@dataclass
class AblationRow:
    """Validation results of one variant."""

    variant: Variant
    auc: stats.AUCResult
    metrics: dict[str, stats.Interval]
    best_epoch: int
    iterations: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.variant.name, "table": self.variant.table,
                "phases": list(self.variant.phases), "backbone": self.variant.backbone,
                "attention": self.variant.attention, "auc": self.auc.as_dict(),
                **{k: v.as_dict() for k, v in self.metrics.items()},
                "best_epoch": self.best_epoch, "iterations": self.iterations,
                "seconds": round(self.seconds, 1)}


@dataclass
class AblationResult:
    rows: list[AblationRow]
    data: dict[str, Any]
    recipe: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"rows": [r.as_dict() for r in self.rows], "data": self.data,
                "recipe": self.recipe, "notes": self.notes}


def run_ablation(data: SplitData, base: TrainConfig, variants: list[Variant], *,
                 n_boot: int = 1000, seed: int = 0, progress: Progress = NULL_PROGRESS
                 ) -> AblationResult:
    """Train and validate every variant on the same split with the same recipe and seed.

    Parameters
    ----------
    data:
        Training and validation slice sets (patient-level split, e.g. 72 / 48).
    base:
        The recipe; each variant replaces only ``phases``, ``backbone`` and ``attention``.
    variants:
        From :func:`build_grid`.

    Returns
    -------
    AblationResult
        One row per variant: patient-level AUC with DeLong CI and bootstrap CIs of accuracy,
        sensitivity, specificity, precision and F1 on the validation patients.
    """
    if data.val is None:
        raise stats.StatsError("the ablation needs validation patients")
    rows: list[AblationRow] = []
    n = len(variants)
    for i, v in enumerate(variants):
        progress.check()
        sub = sub_progress(progress, i / n, (i + 1) / n)
        sub.update(0.0, f"{v.name}: training")
        cfg = replace(base, model=replace(base.model, phases=v.phases, backbone=v.backbone,
                                          attention=v.attention))
        res = train(cfg, data, sub.sub(0.0, 0.9) if hasattr(sub, "sub") else sub)
        scored = score_slices(res.model, cfg.model, data.val, device=base.device
                              if base.device != "auto" else "auto")
        rep = evaluate_scored(scored, n_boot=n_boot, seed=seed, model_name=v.name)
        rows.append(AblationRow(v, rep.patient.auc, dict(rep.patient.bootstrap.intervals),
                                res.best_epoch, res.iterations, res.seconds))
    return AblationResult(rows, data.summary(), base.to_dict(), [
        "model selection (early stopping) used the validation patients that the table reports, "
        "as in the paper; compare the variants, not the absolute values",
        "patient level: AUC of the mean slice probability (DeLong 95 % CI); accuracy, "
        "sensitivity, specificity from the majority vote (1,000 stratified bootstrap CIs)"])


def _cell(iv: stats.Interval) -> str:
    return "n/a" if np.isnan(iv.value) else f"{iv.value:.3f}"


def format_tables(result: AblationResult) -> str:
    """Plain-text tables shaped like the paper's Table 2 (phases) and Table 3 (backbones,
    attention)."""
    titles = {"phases": "Phase combinations (paper Table 2)",
              "backbones": "Three-phase model with other backbones (paper Table 3)",
              "attention": "With and without self-attention"}
    v = result.data.get("val") or {}
    lines = [f"Ablation on {result.data.get('train', {}).get('patients')} training / "
             f"{v.get('patients')} validation patients"]
    for table in GRIDS:
        rows = [r for r in result.rows if r.variant.table == table]
        if not rows:
            continue
        lines += ["", titles[table],
                  f"{'model':<34} {'AUC (95% CI)':<22} {'accuracy':>9} {'sensitivity':>12} "
                  f"{'specificity':>12}"]
        for r in rows:
            auc = f"{r.auc.auc:.3f} ({r.auc.ci_low:.3f}–{r.auc.ci_high:.3f})"
            lines.append(f"{r.variant.name:<34} {auc:<22} {_cell(r.metrics['accuracy']):>9} "
                         f"{_cell(r.metrics['sensitivity']):>12} "
                         f"{_cell(r.metrics['specificity']):>12}")
    lines += [""] + [f"note: {n}" for n in result.notes]
    return "\n".join(lines) + "\n"
