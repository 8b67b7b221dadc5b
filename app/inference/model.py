"""The multi-pathway network of Liao et al. 2024, configurable as in the paper's comparison.

One pathway per phase: a trunk (ResNet-18 by default; ResNet-34/50, VGG19, MobileNetV3), a few
extra conv/BN/ReLU layers and global average pooling to one feature vector per phase. The phase
vectors attend to each other in a self-attention layer; two fully connected layers with dropout
give the logits of {non-responder, responder}.

Input contract of :meth:`MultiPhaseNet.forward`: ONE tensor ``[B, P, 1, S, S]`` in [0, 1] as
made by :func:`app.inference.preprocess.preprocess_slices`, the phase axis in the order of
``config.phases`` (always canonical: plain, arterial, portal). A single tensor (rather than a
dict) keeps batching, device moves, tracing and Grad-CAM simple; the config names the axis.
Output: logits ``[B, 2]`` (softmax is applied by the caller; index 1 = responder).

Shared trunk variant: one trunk for all phases whose BatchNorm layers are phase-specific
(:class:`PhaseBatchNorm2d`), with phase-specific extra layers — the phases' intensity statistics
differ a lot (contrast), so sharing the filters but not the normalisation keeps most of the
benefit of separate pathways at a third of the parameters. The phases then run through the trunk
as one batch of ``P × B`` images.

Backbones are always built with ``weights=None``: nothing is ever downloaded. ImageNet
initialisation only comes from a local file through :func:`load_imagenet_init`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from app.errors import InputError
from app.inference.config import SEG_CLASSES, ModelConfig

# backbone name -> (torchvision constructor, weights enum name, trunk output channels)
_TORCHVISION: dict[str, tuple[str, str, int]] = {
    "resnet18": ("resnet18", "ResNet18_Weights", 512),
    "resnet34": ("resnet34", "ResNet34_Weights", 512),
    "resnet50": ("resnet50", "ResNet50_Weights", 2048),
    "vgg19": ("vgg19", "VGG19_Weights", 512),
    "mobilenet_v3_large": ("mobilenet_v3_large", "MobileNet_V3_Large_Weights", 960),
    "mobilenet_v3_small": ("mobilenet_v3_small", "MobileNet_V3_Small_Weights", 576),
}
_TINY_CHANNELS = 64
_SMALL_CHANNELS = 96

#: backbone -> (stride, offset): feature cell i of the trunk's output is centred on input pixel
#: ``stride * i + offset``. Convolutions and poolings with "same" padding (p = (k-1)/2) keep
#: cell centres on multiples of the stride (offset 0): ResNets (7x7/3x3 stride-2 convs, 3x3
#: max-pool), MobileNetV3 (3x3/5x5 stride-2 depthwise convs) and the tiny CNN. VGG's five
#: 2x2 max-pools without padding each move the centre by half an input cell:
#: 0.5 * (1 + 2 + 4 + 8 + 16) = 15.5. The extra layers (1x1 and "same" 3x3) change nothing.
#: tests/test_gradcam.py measures these on the real trunks.
FEATURE_GEOMETRY: dict[str, tuple[int, float]] = {
    "resnet18": (32, 0.0),
    "resnet34": (32, 0.0),
    "resnet50": (32, 0.0),
    "vgg19": (32, 15.5),
    "mobilenet_v3_large": (32, 0.0),
    "mobilenet_v3_small": (32, 0.0),
    "tiny": (8, 0.0),
    "small": (4, 0.0),
}


class PhaseBatchNorm2d(nn.Module):
    """BatchNorm with one set of statistics and affine parameters per phase.

    Expects its input phase-major: ``[P × B, C, H, W]`` where the first ``B`` images are phase 0,
    the next ``B`` phase 1, ... (how :class:`MultiPhaseNet` feeds a shared trunk).
    """

    def __init__(self, n_phases: int, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        self.n_phases = n_phases
        self.bns = nn.ModuleList()
        for _ in range(n_phases):
            copy = nn.BatchNorm2d(bn.num_features, eps=bn.eps, momentum=bn.momentum,
                                  affine=bn.affine, track_running_stats=bn.track_running_stats)
            copy.load_state_dict(bn.state_dict())
            self.bns.append(copy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] % self.n_phases:
            raise ValueError(f"batch of {x.shape[0]} is not a multiple of {self.n_phases} phases")
        chunks = x.chunk(self.n_phases, dim=0)
        return torch.cat([bn(c) for bn, c in zip(self.bns, chunks, strict=True)], dim=0)


def _grey_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """The same convolution for one grey input channel: the RGB filters summed.

    conv(replicate(x, 3), W) == conv(x, W.sum over input channels) exactly, so a grey image
    needs no replication and ImageNet filters keep their meaning.
    """
    grey = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,  # type: ignore[arg-type]
                     conv.dilation, 1, conv.bias is not None)  # type: ignore[arg-type]
    with torch.no_grad():
        grey.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None and grey.bias is not None:
            grey.bias.copy_(conv.bias)
    return grey


def _wrap_phase_bn(module: nn.Module, n_phases: int) -> None:
    """Replace every BatchNorm2d below ``module`` by a :class:`PhaseBatchNorm2d` (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, PhaseBatchNorm2d(n_phases, child))
        else:
            _wrap_phase_bn(child, n_phases)


def _torchvision_model(backbone: str) -> nn.Module:
    ctor: Callable[..., nn.Module] = getattr(torchvision.models, _TORCHVISION[backbone][0])
    return ctor(weights=None)  # never download: ImageNet weights only via load_imagenet_init


def _trunk_from_torchvision(backbone: str, tv: nn.Module) -> nn.Sequential:
    """The convolutional part of a torchvision classifier, taking one grey channel."""
    m: Any = tv  # torchvision's classes are typed as plain Modules
    if backbone.startswith("resnet"):
        return nn.Sequential(
            _grey_conv(m.conv1), m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4
        )
    features: Any = m.features
    if backbone == "vgg19":
        features[0] = _grey_conv(features[0])
    else:  # mobilenet_v3_*: features[0] is Conv2dNormActivation(conv, bn, hardswish)
        features[0][0] = _grey_conv(features[0][0])
    return features  # type: ignore[no-any-return]


def _tiny_trunk() -> nn.Sequential:
    """Three stride-2 conv/BN/ReLU layers (stride 8): for tests and smoke runs, not the paper."""
    layers: list[nn.Module] = []
    cin = 1
    for cout in (16, 32, _TINY_CHANNELS):
        layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                   nn.ReLU(inplace=True)]
        cin = cout
    return nn.Sequential(*layers)


def _small_trunk() -> nn.Sequential:
    """Six conv/BN/ReLU layers, stride 4 (not the paper): a from-scratch CT trunk that trains in
    minutes on a CPU and keeps a fine enough map (16 × 16 cells at 64 px) to segment lesions of
    a centimetre. The last layer is dilated for context without losing resolution."""
    layers: list[nn.Module] = []
    cin = 1
    for cout, stride, dilation in ((32, 1, 1), (32, 2, 1), (64, 1, 1), (64, 2, 1),
                                   (_SMALL_CHANNELS, 1, 1), (_SMALL_CHANNELS, 1, 2)):
        layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation,
                             bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        cin = cout
    for m in layers:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(*layers)


def _vgg19_trunk() -> nn.Sequential:
    """VGG19's convolutional part alone.

    Building ``torchvision.models.vgg19`` would also build (and randomly initialise) its
    120-million-parameter classifier only to throw it away — seconds per pathway — so the
    features are made with torchvision's own layer builder and VGG's initialisation.
    """
    from torchvision.models import vgg

    features = vgg.make_layers(vgg.cfgs["E"], batch_norm=False)
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    features[0] = _grey_conv(features[0])  # type: ignore[arg-type]
    return features


def _make_trunk(config: ModelConfig) -> tuple[nn.Sequential, int]:
    if config.backbone == "tiny":
        return _tiny_trunk(), _TINY_CHANNELS
    if config.backbone == "small":
        return _small_trunk(), _SMALL_CHANNELS
    if config.backbone == "vgg19":
        return _vgg19_trunk(), _TORCHVISION["vgg19"][2]
    return _trunk_from_torchvision(config.backbone, _torchvision_model(config.backbone)), \
        _TORCHVISION[config.backbone][2]


def _extra_layers(cin: int, config: ModelConfig) -> nn.Sequential:
    """The paper's extra conv/BN/ReLU layers: a 1×1 reduction, then 3×3 layers.

    The 1×1 first layer keeps the per-phase part small (the shared-trunk variant's size is
    dominated by the single trunk), the 3×3 layers add spatial context at the trunk's output
    resolution. The output of this block is the map Grad-CAM explains.
    """
    c = config.extra_channels
    layers: list[nn.Module] = [nn.Conv2d(cin, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
    for _ in range(config.extra_layers - 1):
        layers += [nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
    for m in layers:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(*layers)


class LesionGate(nn.Module):
    """A phase's feature map times the lesion mask: what a lesion-head model pools for its
    answer, and therefore the layer Grad-CAM explains — the map is zero wherever the model sees
    no lesion, so the heat can only lie on tissue the model segmented as tumour."""

    def forward(self, maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return maps * mask


@torch.no_grad()
def connected_to_liver(liver: torch.Tensor, lesion: torch.Tensor) -> torch.Tensor:
    """The liver gate: ``[B, h, w]`` 0/1, the cells of the segmented liver and of every tumour
    region that touches it, grown by one cell.

    HCC lies in the liver, so a tumour-like blob that the segmentation does not connect to the
    liver (bowel, kidney, a vessel) is a false positive; without the gate such blobs feed the
    response head, the tumour measures and the vote, and take Grad-CAM heat out of the liver
    (docs/learning.md). A morphological reconstruction: the liver (p > 0.5) grows step by step
    (8-neighbourhood) through cells that are liver or tumour (p > 0.5), until nothing changes;
    the last one-cell growth keeps a tumour's soft edge. ``liver`` and ``lesion`` are
    probabilities on the feature grid. No gradient: the gate selects, the probabilities inside
    it still learn.
    """
    allowed = ((liver + lesion) > 0.5).float()
    region = (liver > 0.5).float()
    for _ in range(max(region.shape[-2:])):  # enough steps to cross the grid
        grown = F.max_pool2d(region[:, None], 3, stride=1, padding=1)[:, 0] * allowed
        if torch.equal(grown, region):
            break
        region = grown
    return F.max_pool2d(region[:, None], 3, stride=1, padding=1)[:, 0]


#: A lesion component smaller than this (input pixels) is not counted as a separate lesion:
#: a speck at the edge of a soft mask is noise, not a second focus.
MIN_COMPONENT_PIXELS = 4


def count_components(mask: torch.Tensor, min_pixels: int = MIN_COMPONENT_PIXELS) -> torch.Tensor:
    """``[B]`` the number of 8-connected regions of at least ``min_pixels`` in each 0/1 mask
    ``[B, h, w]`` — how many separate lesions a slice shows (multifocal tumours respond less).

    OpenCV's connected-component labelling on the CPU: label propagation in tensor code needs as
    many steps as the widest lesion is wide and cost 30× more (measured: 190 ms against 6.5 ms for
    a batch of 64 slices at 96 px on one core). On a GPU this is one copy of a uint8 mask per
    batch, beside the one the results take anyway."""
    masks = (mask > 0.5).to(torch.uint8).cpu().numpy()
    counts = np.zeros(masks.shape[0], dtype=np.float32)
    for i, m in enumerate(masks):
        if m.any():
            n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
            counts[i] = float((stats[1:n, cv2.CC_STAT_AREA] >= min_pixels).sum())
    return torch.from_numpy(counts).to(mask.device)


@dataclass
class LesionOutputs:
    """What a lesion-head forward pass produces besides the logits.

    ``seg_logits`` ``[B, 4, h, w]`` over :data:`~app.inference.config.SEG_CLASSES` at the
    feature map's resolution; ``lesion_area`` ``[B]`` the lesion (tumour + necrosis) area the
    model sees, in input pixels — the slice's weight for ``lesion_weighted`` aggregation;
    ``measures`` ``[B, 4P + 3]`` what the patient head pools
    (:func:`app.inference.patient_head.measure_names`): the tumour's intensities, size,
    necrosis, spread, rim and number of lesions, under the segmentation at the input resolution — computed
    when read, so that training and Grad-CAM, which never read them, do not pay for them.
    ``liver_gate`` ``[B, h, w]`` the :func:`connected_to_liver` gate of a ``liver_gate`` model,
    else None.
    """

    logits: torch.Tensor
    seg_logits: torch.Tensor
    lesion_area: torch.Tensor
    inputs: torch.Tensor
    liver_gate: torch.Tensor | None = None

    @property
    def measures(self) -> torch.Tensor:
        return MultiPhaseNet.input_measures(self.inputs, self.seg_logits, self.liver_gate)


#: Lesion-head scalars per phase (lesion-minus-liver and lesion intensity) are in window units
#: (1 = 400 HU): scaled so that a typical 50 HU contrast is of order one for the FC layers.
_INTENSITY_SCALE = 8.0


class MultiPhaseNet(nn.Module):
    """One pathway per phase, self-attention across phases, two FC layers; logits ``[B, 2]``.

    Build it with :func:`build_model`; ``config`` records everything needed to rebuild it.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        #: True after :func:`fold_batchnorm`: an inference-only network (no BatchNorm to train)
        self.folded = False
        p = config.n_phases
        trunk, cin = _make_trunk(config)
        if config.shared_trunk:
            if p > 1:
                _wrap_phase_bn(trunk, p)
            self.trunks = nn.ModuleList([trunk])
        else:
            self.trunks = nn.ModuleList([trunk] + [_make_trunk(config)[0] for _ in range(p - 1)])
        self.extras = nn.ModuleList([_extra_layers(cin, config) for _ in range(p)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        d = config.extra_channels
        if config.attention:
            # a learned phase embedding tells the attention which token is which phase
            self.phase_embed = nn.Parameter(torch.zeros(p, d))
            nn.init.normal_(self.phase_embed, std=0.02)
            self.attn: nn.MultiheadAttention | None = nn.MultiheadAttention(
                d, config.attention_heads, batch_first=True)
            self.attn_norm: nn.Module = nn.LayerNorm(d)
        else:
            self.attn = None
            self.attn_norm = nn.Identity()
        n_scalars = 0
        if config.head == "lesion":
            # one segmentation from all phases together (enhancement and washout tell tumour
            # from liver better than any single phase), applied to every phase's map
            self.seg: nn.Module | None = nn.Sequential(
                nn.Conv2d(p * d, d, 3, padding=1, bias=False), nn.BatchNorm2d(d), nn.ReLU(inplace=True),
                nn.Conv2d(d, len(SEG_CLASSES), 1))
            self.gates = nn.ModuleList([LesionGate() for _ in range(p)])
            n_scalars = 2 * p + 2  # per phase: lesion − liver, lesion; log area, necrosis share
        else:
            self.seg = None
        self.head = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(p * d + n_scalars, config.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, 2),
        )
        # fixed input normalisation: part of the network, not learned, not stored in the file
        # (the config holds it); plain floats follow the input to any device and dtype
        self._input_mean = float(config.input_mean)
        self._input_scale = 1.0 / float(config.input_std)

    @property
    def phases(self) -> tuple[str, ...]:
        return self.config.phases

    def train(self, mode: bool = True) -> MultiPhaseNet:
        if mode and self.folded:
            raise RuntimeError("this network's BatchNorm was folded for inference; it cannot be "
                               "trained — rebuild it with build_model and load the unfolded weights")
        return super().train(mode)  # type: ignore[return-value]

    def pathway_layers(self) -> dict[str, nn.Module]:
        """Each pathway's last feature map, keyed by phase: Grad-CAM's target layers. The last
        convolutional block (conv/BN/ReLU) for the paper's head, the lesion-masked map
        (:class:`LesionGate`) for the lesion head. Outputs are ``[B, extra_channels, h, w]``."""
        layers = self.gates if self.seg is not None else self.extras
        return dict(zip(self.config.phases, layers, strict=True))

    def feature_geometry(self) -> tuple[int, float]:
        """``(stride, offset)``: cell ``i`` of a pathway map is centred on input pixel
        ``stride * i + offset`` (used to put Grad-CAM back where the evidence was)."""
        return FEATURE_GEOMETRY[self.config.backbone]

    def pathway_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-phase feature maps after the extra layers (before pooling)."""
        p = self.config.n_phases
        if x.ndim != 5 or x.shape[1] != p or x.shape[2] != 1:
            raise ValueError(
                f"expected input [B, {p}, 1, H, W] for phases {list(self.config.phases)}, "
                f"got {list(x.shape)}")
        x = (x - self._input_mean) * self._input_scale
        b = x.shape[0]
        if len(self.trunks) == 1 and p > 1:
            # shared trunk: phases as one phase-major batch (PhaseBatchNorm2d splits it again)
            feats = self.trunks[0](x.transpose(0, 1).reshape(p * b, *x.shape[2:]))
            per_phase = feats.chunk(p, dim=0)
        else:
            per_phase = tuple(trunk(x[:, i]) for i, trunk in enumerate(self.trunks))
        return [extra(f) for extra, f in zip(self.extras, per_phase, strict=True)]

    def head_from_maps(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Pool, attend across phases, classify: logits ``[B, 2]``."""
        tokens = torch.stack([self.pool(m).flatten(1) for m in maps], dim=1)  # [B, P, D]
        return self.head(self._attend(tokens))  # type: ignore[no-any-return]

    def _attend(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.attn is not None:
            tokens = tokens + self.phase_embed
            attended, _ = self.attn(tokens, tokens, tokens, need_weights=False)
            tokens = self.attn_norm(tokens + attended)
        return tokens.flatten(1)

    def lesion_forward(self, x: torch.Tensor) -> LesionOutputs:
        """The lesion head: segment, pool each phase under the lesion mask, measure the lesion's
        and the liver's intensity in each phase under the masks, classify."""
        if self.seg is None:
            raise RuntimeError("this network has the paper's head, not the lesion head")
        maps = self.pathway_maps(x)
        seg_logits = self.seg(torch.cat(maps, dim=1))
        prob = seg_logits.float().softmax(dim=1)
        liver, necrosis = prob[:, 1], prob[:, 3]
        lesion = prob[:, 2] + necrosis
        gate = connected_to_liver(liver, lesion) if self.config.liver_gate else None
        if gate is not None:
            lesion, necrosis = lesion * gate, necrosis * gate
        eps = 1e-3
        lesion_sum = lesion.sum(dim=(1, 2))
        liver_sum = liver.sum(dim=(1, 2))
        gated = [gate(m, lesion[:, None].to(m.dtype)) for gate, m in zip(self.gates, maps, strict=True)]
        tokens = torch.stack([g.float().sum(dim=(2, 3)) for g in gated], dim=1) / (lesion_sum[:, None, None] + eps)
        h, w = seg_logits.shape[-2:]
        xi = F.adaptive_avg_pool2d(x[:, :, 0].float(), (h, w))  # [B, P, h, w] in window units
        i_lesion = (xi * lesion[:, None]).sum(dim=(2, 3)) / (lesion_sum[:, None] + eps)
        i_liver = (xi * liver[:, None]).sum(dim=(2, 3)) / (liver_sum[:, None] + eps)
        area = lesion_sum / float(h * w)
        scalars = torch.cat([
            (i_lesion - i_liver) * _INTENSITY_SCALE, i_lesion * _INTENSITY_SCALE,
            torch.log(area + 1e-3)[:, None], (necrosis.sum(dim=(1, 2)) / (lesion_sum + eps))[:, None],
        ], dim=1)
        logits = self.head(torch.cat([self._attend(tokens.to(maps[0].dtype)), scalars.to(maps[0].dtype)], dim=1))
        stride = self.feature_geometry()[0]
        return LesionOutputs(logits, seg_logits, lesion_sum * float(stride * stride), x, gate)

    @staticmethod
    @torch.no_grad()
    def input_measures(x: torch.Tensor, seg_logits: torch.Tensor,
                       liver_gate: torch.Tensor | None = None) -> torch.Tensor:
        """The tumour's measures (:func:`app.inference.patient_head.measure_names`) under the
        segmentation brought to the input resolution (bilinear logits, then hard masks at
        p > 0.5) — not on the feature grid, whose 4-pixel cells mix a small lesion with the
        liver around it and dilute its contrast (docs/learning.md): per phase the lesion's and
        the liver's mean intensity; the lesion's pixel count and necrotic share; per phase the
        intensity spread inside the viable tumour (the mosaic of a heterogeneous tumour) and the
        mean intensity of the lesion's one-pixel rim (an enhancing capsule); the number of
        separate lesions (:func:`count_components`). A ``liver_gate`` (feature grid,
        :func:`connected_to_liver`) is brought to the input resolution by nearest neighbour and
        limits the lesion mask. ``[B, 4P + 3]`` in window units; no gradient (the patient head
        is fitted afterwards)."""
        xi = x[:, :, 0].float()  # [B, P, S, S]
        up = F.interpolate(seg_logits.float(), size=xi.shape[-2:], mode="bilinear",
                           align_corners=False).softmax(dim=1)
        lesion = ((up[:, 2] + up[:, 3]) > 0.5).float()
        if liver_gate is not None:
            lesion = lesion * F.interpolate(liver_gate[:, None].float(), size=xi.shape[-2:], mode="nearest")[:, 0]
        liver = (up[:, 1] > 0.5).float()
        viable = lesion * (up[:, 2] >= up[:, 3]).float()
        rim = lesion - (-F.max_pool2d(-lesion[:, None], 3, stride=1, padding=1)[:, 0])  # lesion minus its erosion
        eps = 1e-3

        def mean(mask: torch.Tensor, values: torch.Tensor = xi) -> torch.Tensor:
            return (values * mask[:, None]).sum(dim=(2, 3)) / (mask.sum(dim=(1, 2))[:, None] + eps)

        n_lesion = lesion.sum(dim=(1, 2))
        i_viable = mean(viable)
        spread = (mean(viable, xi * xi) - i_viable * i_viable).clamp_min(0.0).sqrt()
        necrotic = (up[:, 3] * lesion).sum(dim=(1, 2)) / (n_lesion + eps)
        return torch.cat([mean(lesion), mean(liver), n_lesion[:, None], necrotic[:, None],
                          spread, mean(rim), count_components(lesion)[:, None]], dim=1)

    def forward(self, x: torch.Tensor, details: bool = False) -> Any:
        """Logits ``[B, 2]`` for input ``[B, P, 1, S, S]`` (phase axis in ``config.phases``
        order); with ``details`` a lesion-head model returns its :class:`LesionOutputs` (a
        keyword rather than a second method, so that DistributedDataParallel's forward runs)."""
        if self.seg is not None:
            out = self.lesion_forward(x)
            return out if details else out.logits
        return self.head_from_maps(self.pathway_maps(x))


def build_model(config: ModelConfig | None = None) -> MultiPhaseNet:
    """Build a randomly initialised network for ``config`` (the paper's defaults when None).

    Trunks get torchvision's default (random) initialisation; nothing is downloaded. Use
    :func:`load_imagenet_init` for ImageNet initialisation from a local file.
    """
    return MultiPhaseNet(config or ModelConfig())


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BatchNorm into the convolution before it (in place)."""
    assert bn.running_mean is not None and bn.running_var is not None
    scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        new_bias = (bias - bn.running_mean) * scale + shift
        conv.bias = nn.Parameter(new_bias, requires_grad=conv.weight.requires_grad)


def _foldable(bn: nn.Module) -> bool:
    return type(bn) is nn.BatchNorm2d and bn.track_running_stats and bn.running_var is not None


def fold_batchnorm(model: MultiPhaseNet) -> int:
    """Fold every BatchNorm that directly follows a convolution into it, for inference only.

    In eval mode BatchNorm is a per-channel affine map, so ``bn(conv(x))`` is one convolution
    with rescaled weights and a bias: the same output (to rounding) with one pass over the
    feature map fewer — together with channels-last weights it makes a CPU forward pass about
    1.5–2× faster. Pairs are found inside ``nn.Sequential`` containers (conv then BN) and as
    ``convN``/``bnN`` attributes (torchvision's residual blocks). Phase-specific BatchNorm of a
    shared trunk cannot be folded into the shared convolution and is left as it is.

    The network's state dict changes (BN tensors gone, conv biases added), so a folded network
    is marked (``model.folded``), refuses ``train()`` and is refused by
    :func:`app.inference.weights.save_model`.

    Returns
    -------
    int
        Number of BatchNorm layers folded.
    """
    if model.training:
        raise RuntimeError("fold_batchnorm needs a model in eval mode")
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (_, a), (bn_name, b) in zip(children, children[1:], strict=False):
                if isinstance(a, nn.Conv2d) and _foldable(b):
                    _fold(a, b)  # type: ignore[arg-type]
                    setattr(module, bn_name, nn.Identity())
                    folded += 1
        for k in range(1, 4):  # torchvision BasicBlock / Bottleneck: conv1/bn1 ... conv3/bn3
            conv, bn = getattr(module, f"conv{k}", None), getattr(module, f"bn{k}", None)
            if isinstance(conv, nn.Conv2d) and bn is not None and _foldable(bn):
                _fold(conv, bn)
                setattr(module, f"bn{k}", nn.Identity())
                folded += 1
    model.folded = True
    return folded


def count_parameters(model: nn.Module) -> int:
    """Number of learnable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------
# ImageNet initialisation from a local file only
# ---------------------------------------------------------------------------------------------


class ImageNetInitError(InputError):
    """No usable local ImageNet weights for the backbone."""


@dataclass(frozen=True)
class ImageNetInit:
    """Where the ImageNet initialisation came from."""

    path: Path
    backbone: str
    n_tensors: int


def torchvision_cache_file(backbone: str) -> Path | None:
    """Where torchvision would have cached the ImageNet weights of ``backbone`` (never fetched).

    The file name comes from torchvision's weights enum (its URL's last part), the folder from
    ``torch.hub.get_dir()/checkpoints``; returns None for backbones without ImageNet weights.
    """
    if backbone not in _TORCHVISION:
        return None
    enum = getattr(torchvision.models, _TORCHVISION[backbone][1])
    url: str = enum.DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _pickle_refusal(path: Path) -> ImageNetInitError:
    return ImageNetInitError(
        f"{path.name} is a pickle file, which HCC Response never loads (RELIABILITY.md 16); "
        f"convert it once with 'python scripts/convert_imagenet_weights.py {path}' and use the "
        f"{path.with_suffix('.safetensors').name} it writes")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors only: safetensors. torchvision's ``.pth`` files are pickles and are refused."""
    if path.suffix != ".safetensors":
        raise _pickle_refusal(path)
    from safetensors.torch import load_file

    return load_file(str(path))


def load_imagenet_init(model: MultiPhaseNet, path: str | Path | None = None) -> ImageNetInit:
    """Initialise every trunk of ``model`` with ImageNet weights from a LOCAL file.

    Parameters
    ----------
    model:
        The network; its trunks are overwritten in place (extra layers and head untouched).
    path:
        A ``.safetensors`` file with torchvision's state dict (convert torchvision's ``.pth``
        pickle once with ``scripts/convert_imagenet_weights.py``). When None, the converted
        file beside torchvision's cache entry (``torch.hub.get_dir()``) is used; nothing is
        ever downloaded.

    Returns
    -------
    ImageNetInit
        The file used, for the model description.

    Raises
    ------
    ImageNetInitError
        No local file, an unreadable file, or weights that do not fit the backbone.
    """
    backbone = model.config.backbone
    if backbone not in _TORCHVISION:
        raise ImageNetInitError(f"backbone {backbone!r} has no ImageNet weights")
    if path is None:
        cached = torchvision_cache_file(backbone)
        converted = cached.with_suffix(".safetensors") if cached is not None else None
        if converted is not None and converted.is_file():
            path = converted
        elif cached is not None and cached.is_file():
            raise _pickle_refusal(cached)
        else:
            raise ImageNetInitError(
                f"no local ImageNet weights for {backbone} (looked for {converted}); give a "
                "file path — nothing is downloaded")
    path = Path(path)
    if not path.is_file():
        raise ImageNetInitError(f"ImageNet weights file not found: {path}")
    try:
        state = _read_state_dict(path)
    except ImageNetInitError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure means "not usable", say why
        raise ImageNetInitError(f"cannot read ImageNet weights {path.name}: {exc}") from exc
    tv = _torchvision_model(backbone)
    try:
        tv.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise ImageNetInitError(
            f"{path.name} does not fit torchvision's {backbone}: {' '.join(first)}") from exc
    trunk = _trunk_from_torchvision(backbone, tv)
    if model.config.shared_trunk and model.config.n_phases > 1:
        _wrap_phase_bn(trunk, model.config.n_phases)
    reference = trunk.state_dict()
    for t in model.trunks:
        t.load_state_dict(reference)
    return ImageNetInit(path=path, backbone=backbone, n_tensors=len(state))
