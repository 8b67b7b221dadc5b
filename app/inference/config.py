"""The model's configuration: architecture and preprocessing in one frozen, validated record.

Everything that decides what the network computes — which phases it reads, the backbone, the
attention, shared or separate trunks, the extra layers, the input size, the intensity window and
the crop policy — lives in :class:`ModelConfig`. The config is written into every model file
(see :mod:`app.inference.weights`), so a file always carries the recipe that rebuilds its
network and preprocesses its input exactly as during training.

Defaults follow Liao et al. 2024 (``paper-method.md``): three phases, ResNet-18 pathways with
separate weights, self-attention across the phases, two fully connected layers with dropout 0.5,
224 × 224 input, window W400/L0, no crop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from app import PHASES
from app.errors import InputError
from app.inference.patient_head import PatientHead, PatientHeadError

Backbone = Literal[
    "resnet18", "resnet34", "resnet50", "vgg19", "mobilenet_v3_large", "mobilenet_v3_small", "tiny"
]
CropPolicy = Literal["none", "body", "fov"]

#: Backbones the paper compared (ResNet-18 chosen), plus ``tiny``: a three-layer CNN that is NOT
#: part of the paper and exists for fast tests and smoke runs of the whole pipeline.
BACKBONES: tuple[str, ...] = (
    "resnet18",
    "resnet34",
    "resnet50",
    "vgg19",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "tiny",
    "small",
)
CROP_POLICIES: tuple[str, ...] = ("none", "body", "fov")

#: How the pathway maps become a slice's logits. ``paper``: average pooling, self-attention,
#: two FC layers (the paper). ``lesion``: a segmentation head (other / liver / lesion /
#: necrosis, trained on label maps) whose lesion mask pools each phase's features, and the
#: lesion-minus-liver intensity of each phase measured under the masks, feed the same
#: attention and FC layers (docs/learning.md says why).
HEADS: tuple[str, ...] = ("paper", "lesion")


@dataclass(frozen=True)
class AggregationRule:
    """One aggregation rule in the words of each reader, kept in one table so that the result
    panel, the case report, the model dialog and the evaluation report say the same thing.

    ``probability``: how the patient's probability is made (after "Probability of response");
    ``call``: how the call is made, ``{t}`` standing for the threshold; ``summary``: the model
    dialog's "patient result by …"; ``short``: the register table's "Score from" column;
    ``trainable``: whether ``train`` can train towards it.
    """

    name: str
    probability: str
    call: str
    summary: str
    short: str
    trainable: bool = True

    def call_text(self, threshold: float) -> str:
        return self.call.format(t=f"{threshold:g}")


AGGREGATION_RULES: dict[str, AggregationRule] = {rule.name: rule for rule in (
    AggregationRule(
        "vote", "mean over the slices",
        "majority vote of slice calls (probability > {t}), a tie decided by the mean probability",
        "majority vote of the slices", "all slices"),
    AggregationRule(
        "lesion_weighted", "slices weighted by the tumour area seen",
        "majority of the slices showing tumour (probability > {t}), a tie decided by the score",
        "vote of the slices showing tumour", "tumour slices"),
    AggregationRule(
        "patient_head", "patient-level model on the tumour's measures",
        "the patient-level model's probability > {t}",
        "patient head (logistic regression on the tumour's measures)", "patient head",
        trainable=False),
)}
#: How slice results become the patient's. ``vote``: the paper's majority vote over all liver
#: slices. ``lesion_weighted``: only slices in which the model sees a lesion vote, and the
#: patient's probability is the mean over slices weighted by the lesion area seen (slices
#: without tumour carry no evidence about its response). Needs ``head="lesion"``.
#: ``patient_head``: the slices vote as for ``lesion_weighted`` (what the vote strip and
#: Grad-CAM show), but the patient's probability and call come from a logistic regression on
#: measures of the tumour pooled over the slices (:mod:`app.inference.patient_head`), fitted
#: after training by ``hcc-response fit-patient-head`` and stored in ``patient_head``.
AGGREGATIONS: tuple[str, ...] = tuple(AGGREGATION_RULES)


def probability_words(decided_by: str) -> str:
    """How a patient's probability was made, in words (``"mean over the slices"``), or ``""``
    for a rule this version does not know or a case recorded without one."""
    rule = AGGREGATION_RULES.get(decided_by)
    return rule.probability if rule is not None else ""


def score_source(decided_by: str) -> str:
    """The short name of the rule that made a recorded score (``"patient head"``), or ``""``
    for a rule this version does not know or a case recorded before the register kept it."""
    rule = AGGREGATION_RULES.get(decided_by)
    return rule.short if rule is not None else ""


#: Aggregations ``train`` can train towards (``patient_head`` is fitted after training).
TRAIN_AGGREGATIONS: tuple[str, ...] = tuple(n for n, r in AGGREGATION_RULES.items() if r.trainable)
#: Classes of the lesion head's segmentation, in channel order.
SEG_CLASSES: tuple[str, ...] = ("other", "liver", "lesion", "necrosis")

#: The seven phase subsets of the paper: C, A, V, AC, AV, CV and the three-phase model.
PHASE_COMBINATIONS: tuple[tuple[str, ...], ...] = (
    ("plain",),
    ("arterial",),
    ("portal",),
    ("plain", "arterial"),
    ("arterial", "portal"),
    ("plain", "portal"),
    ("plain", "arterial", "portal"),
)

#: Class order of the logits (index 1 is the responder class, as in the paper's softmax).
CLASSES: tuple[str, str] = ("non-responder", "responder")


class ConfigError(InputError):
    """A model configuration that cannot be built (unknown backbone, bad phase list, ...)."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and preprocessing of a multi-pathway model.

    Attributes
    ----------
    phases:
        Phases read by the model, one pathway each; any non-empty subset of
        ``("plain", "arterial", "portal")``. Stored in canonical order whatever order is given,
        so that the input tensor's phase axis has one meaning.
    backbone:
        Trunk of each pathway (see :data:`BACKBONES`).
    attention:
        Self-attention across the phase feature vectors (the paper reports a 9 % lower AUC
        without it).
    shared_trunk:
        One trunk for all phases with phase-specific BatchNorm (and phase-specific extra layers)
        instead of one trunk per phase: about a third of the parameters with three phases, which
        matters for cohorts of ~100 patients and for the size of the shipped file.
    extra_layers:
        Number of conv/BN/ReLU layers after the trunk (the paper's "extra convolutional
        layers"); the first is a 1×1 channel reduction, the rest 3×3.
    extra_channels:
        Channels of the extra layers; also the dimension of each phase's feature vector.
    attention_heads:
        Heads of the multi-head self-attention (must divide ``extra_channels``).
    hidden:
        Width of the first fully connected layer.
    dropout:
        Dropout before each of the two fully connected layers (paper: 0.5).
    input_size:
        Side of the square network input in pixels (paper: 224). Small sizes (64–128) serve
        tests.
    window:
        ``(width, level)`` of the HU window mapped linearly onto [0, 1] (paper: W400/L0, i.e.
        −200..+200 HU clipped).
    crop:
        What part of the slice is resized to ``input_size``: ``"none"`` (the whole slice, as the
        paper describes), ``"body"`` (the square bounding box of the body) or ``"fov"`` (a fixed
        field of view of ``crop_fov_mm`` centred on the body). See :mod:`app.inference.preprocess`.
    crop_fov_mm:
        Side of the field of view for ``crop="fov"``.
    input_mean, input_std:
        Normalisation applied inside the network to the [0, 1] input before the trunk: the mean
        of ImageNet's per-channel statistics, because the trunk's first convolution receives one
        grey channel whose weights are the sum of the three RGB filters.
    head:
        ``"paper"`` or ``"lesion"`` (see :data:`HEADS`).
    liver_gate:
        Lesion head only: count as tumour only what the segmentation connects to the segmented
        liver (HCC is intrahepatic). Tumour-like blobs elsewhere (bowel, kidney, vessels) then
        neither feed the response head, nor the tumour measures, nor the slice's vote, nor its
        Grad-CAM (docs/learning.md, "The liver gate"). Off in files written before it existed.
    aggregation:
        ``"vote"`` (the paper) or ``"lesion_weighted"`` (see :data:`AGGREGATIONS`).
    threshold:
        Responder probability above which a slice counts as a responder (and the tie rule's
        mean decides responder). 0.5 is the paper's argmax; a model trained towards the
        generator's probability of response gives probabilities around the ~30 % response
        rate, so its threshold is chosen on patients it was not trained on (balanced
        sensitivity and specificity) and recorded here. Not part of the architecture.
    patient_head:
        The fitted patient-level regression (with its own threshold for the patient call) of a
        ``patient_head`` aggregation, else None. Not part of the architecture either.
    """

    phases: tuple[str, ...] = PHASES
    backbone: str = "resnet18"
    attention: bool = True
    shared_trunk: bool = False
    extra_layers: int = 2
    extra_channels: int = 128
    attention_heads: int = 4
    hidden: int = 128
    dropout: float = 0.5
    input_size: int = 224
    window: tuple[float, float] = (400.0, 0.0)
    crop: str = "none"
    crop_fov_mm: float = 350.0
    input_mean: float = 0.449
    input_std: float = 0.226
    head: str = "paper"
    liver_gate: bool = False
    aggregation: str = "vote"
    threshold: float = 0.5
    patient_head: PatientHead | None = None

    def __post_init__(self) -> None:
        phases = tuple(self.phases)
        unknown = [p for p in phases if p not in PHASES]
        if unknown:
            raise ConfigError(f"unknown phase(s) {unknown}; expected some of {list(PHASES)}")
        if not phases:
            raise ConfigError("a model needs at least one phase")
        if len(set(phases)) != len(phases):
            raise ConfigError(f"phase listed twice in {list(phases)}")
        # canonical order: the phase axis of the input tensor always means plain, arterial, portal
        object.__setattr__(self, "phases", tuple(p for p in PHASES if p in phases))
        object.__setattr__(self, "window", (float(self.window[0]), float(self.window[1])))
        if self.backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {self.backbone!r}; expected one of {list(BACKBONES)}")
        if self.crop not in CROP_POLICIES:
            raise ConfigError(f"unknown crop policy {self.crop!r}; expected one of {list(CROP_POLICIES)}")
        if self.extra_layers < 1:
            raise ConfigError("extra_layers must be at least 1 (Grad-CAM reads the last one)")
        if self.extra_channels < 1 or self.hidden < 1:
            raise ConfigError("extra_channels and hidden must be positive")
        if self.attention and self.extra_channels % self.attention_heads:
            raise ConfigError(
                f"attention_heads ({self.attention_heads}) must divide extra_channels "
                f"({self.extra_channels})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.input_size < 16:
            raise ConfigError(f"input_size must be at least 16 pixels, got {self.input_size}")
        if self.window[0] <= 0:
            raise ConfigError(f"window width must be positive, got {self.window[0]}")
        if self.crop_fov_mm <= 0 or self.input_std <= 0:
            raise ConfigError("crop_fov_mm and input_std must be positive")
        if not 0.0 < float(self.threshold) < 1.0:
            raise ConfigError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.head not in HEADS:
            raise ConfigError(f"unknown head {self.head!r}; expected one of {list(HEADS)}")
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"unknown aggregation {self.aggregation!r}; expected one of {list(AGGREGATIONS)}")
        if self.liver_gate and self.head != "lesion":
            raise ConfigError("liver_gate needs head 'lesion' (it gates the lesion segmentation)")
        if self.aggregation == "lesion_weighted" and self.head != "lesion":
            raise ConfigError("aggregation 'lesion_weighted' needs head 'lesion' (the lesion areas come from it)")
        if self.aggregation == "patient_head":
            if self.head != "lesion":
                raise ConfigError("aggregation 'patient_head' needs head 'lesion' (its measures come from it)")
            if self.patient_head is None:
                raise ConfigError("aggregation 'patient_head' needs a fitted patient head "
                                  "(hcc-response fit-patient-head)")
            try:
                self.patient_head.check_phases(self.phases)
            except PatientHeadError as exc:
                raise ConfigError(str(exc)) from exc
        elif self.patient_head is not None:
            raise ConfigError(f"a patient head is only used by aggregation 'patient_head', not {self.aggregation!r}")

    @property
    def votes_on_lesions(self) -> bool:
        """True when only the slices in which the model sees tumour vote (``lesion_weighted``,
        ``patient_head``): the one test for every place that follows that rule (which maps are shown, their scale,
        the Grad-CAM mass measured)."""
        return self.aggregation in ("lesion_weighted", "patient_head")

    @property
    def n_phases(self) -> int:
        return len(self.phases)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (tuples become lists)."""
        d = asdict(self)
        d["phases"] = list(self.phases)
        d["window"] = list(self.window)
        if not self.liver_gate:
            del d["liver_gate"]  # ungated files read the same in versions that lack the switch
        if self.patient_head is None:
            del d["patient_head"]  # files without one read the same in versions that lack it
        else:
            d["patient_head"] = self.patient_head.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Rebuild a config from :meth:`to_dict` output, refusing unknown keys.

        Unknown keys are refused rather than ignored: a file written by a newer version with a
        setting this version does not understand would otherwise be built as a different
        network.
        """
        if not isinstance(d, dict):
            raise ConfigError("model configuration must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown model configuration key(s): {', '.join(unknown)}")
        kwargs = dict(d)
        try:
            if "phases" in kwargs:
                kwargs["phases"] = tuple(kwargs["phases"])
            if "window" in kwargs:
                w = kwargs["window"]
                if len(w) != 2:
                    raise ConfigError(f"window must be [width, level], got {w!r}")
                kwargs["window"] = (float(w[0]), float(w[1]))
            if kwargs.get("patient_head") is not None:
                kwargs["patient_head"] = PatientHead.from_dict(kwargs["patient_head"])
            return cls(**kwargs)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:  # PatientHeadError included
            raise ConfigError(f"invalid model configuration: {exc}") from exc
