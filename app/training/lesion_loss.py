"""The training loss of the lesion head (not in the paper): segmentation plus response.

Why: a network trained only on the patient's response label has to discover, from a few
hundred patients, that the answer lies in a tumour covering a few per cent of a few slices —
the project's from-scratch ResNet-18 never did (held-out AUC 0.53, heat on air and spine,
docs/learning.md). The synthetic phantoms know every pixel's tissue, so the lesion head is told
where liver and tumour are (cross-entropy against the label maps), and its response head reads
the tumour's features and its enhancement relative to the liver in each phase under the masks
it learned. The response loss counts fully on slices that show tumour in the ground truth and
only a little (:data:`LESION_FREE_WEIGHT`) elsewhere: a slice without tumour carries no
evidence about the tumour's response, and the app's ``lesion_weighted`` aggregation ignores
such slices too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from app.inference.config import SEG_CLASSES
from app.inference.model import LesionOutputs

#: Segmentation class weights (other, liver, lesion, necrosis): lesions cover a few per cent of
#: the image and would otherwise be cheap to miss.
SEG_CLASS_WEIGHTS: tuple[float, ...] = (1.0, 1.0, 4.0, 4.0)
#: Weight of the response loss on slices without tumour in the ground truth.
LESION_FREE_WEIGHT = 0.1
#: A slice "shows tumour" in the ground truth from this many input pixels of lesion/necrosis.
MIN_TRUE_LESION_PIXELS = 4

_LESION = SEG_CLASSES.index("lesion")
_NECROSIS = SEG_CLASSES.index("necrosis")


def lesion_loss(out: LesionOutputs, target: torch.Tensor, seg: torch.Tensor,
                class_weights: torch.Tensor | None, seg_weight: float) -> torch.Tensor:
    """Response cross-entropy (weighted towards slices with tumour) + ``seg_weight`` × the
    segmentation cross-entropy averaged over the phases' label maps.

    Parameters
    ----------
    out:
        The lesion head's outputs for a batch.
    target:
        ``[B]`` class indices or ``[B, 2]`` class probabilities (soft targets).
    seg:
        ``[B, P, S, S]`` ground truth in :data:`SEG_CLASSES` codes, one map per phase read.
    class_weights:
        Optional response class weights (inverse class frequency).
    seg_weight:
        Weight of the segmentation term.
    """
    size = seg.shape[-2:]
    logits_seg = F.interpolate(out.seg_logits.float(), size=size, mode="bilinear", align_corners=False)
    w_seg = torch.tensor(SEG_CLASS_WEIGHTS, device=logits_seg.device)
    seg_long = seg.long()
    seg_term = torch.stack([F.cross_entropy(logits_seg, seg_long[:, p], weight=w_seg)
                            for p in range(seg.shape[1])]).mean()
    tumour = ((seg_long == _LESION) | (seg_long == _NECROSIS)).flatten(1).sum(1)
    weight = torch.where(tumour >= MIN_TRUE_LESION_PIXELS, 1.0, LESION_FREE_WEIGHT).to(logits_seg.dtype)
    per_slice = F.cross_entropy(out.logits.float(), target, weight=class_weights, reduction="none")
    response = (per_slice * weight).sum() / weight.sum()
    return response + seg_weight * seg_term
