"""Batched data augmentation on slice triplets, in torch, on the training device.

The paper augments with Gaussian noise, blur, brightness and contrast changes and rotation
between −20° and +20°, "each drawn at random within a range". Here one call transforms a whole
batch ``[B, P, 1, H, W]`` (float in [0, 1], the output of the app's preprocessing) at once, on
the device the model trains on, so the input pipeline costs little next to the network.

Decisions (documented because the paper leaves them open):

* **One geometric transform per triplet.** The phases of a triplet are the same table level of
  the same patient; the model's attention compares them position by position. Rotating the
  phases differently would break that correspondence, so the rotation angle is drawn per sample
  and applied to all its phases.
* **One brightness/contrast change and one blur per triplet.** These mimic scanner calibration
  and reconstruction kernel, which are shared by the phases of one examination; drawing them per
  phase would disturb the relative enhancement between phases, which is the signal.
* **Independent noise per phase and pixel**, as quantum noise is.
* Each transform is applied to a sample with probability ``p`` (default 0.5), with a magnitude
  drawn uniformly in its range; out-of-field pixels after rotation are 0 (air after windowing);
  the result is clipped to [0, 1].
* A ``torch.Generator`` drives every draw, so a seed gives the same augmented batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the augmentations (intensities in windowed [0, 1] units: 0.01 ≈ 4 HU)."""

    p: float = 0.5
    noise_sigma: tuple[float, float] = (0.0, 0.03)
    blur_sigma_px: tuple[float, float] = (0.1, 1.0)
    brightness: tuple[float, float] = (-0.08, 0.08)
    contrast: tuple[float, float] = (0.85, 1.15)
    rotation_deg: tuple[float, float] = (-20.0, 20.0)
    enabled: bool = True

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _uniform(lo: float, hi: float, n: int, gen: torch.Generator, device: torch.device
             ) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def _mask(p: float, n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) < p


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per sample of ``x`` ``[B, C, H, W]``."""
    b, c, h, w = x.shape
    radius = max(1, int(math.ceil(3.0 * float(sigma.max()))))
    offs = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (offs[None, :] / sigma[:, None].clamp_min(1e-3)) ** 2)
    k = k / k.sum(dim=1, keepdim=True)  # [B, K]
    k = k.repeat_interleave(c, dim=0)  # one kernel per (sample, channel)
    flat = x.reshape(1, b * c, h, w)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, k[:, None, None, :], groups=b * c)
    flat = F.conv2d(flat, k[:, None, :, None], groups=b * c)
    return flat.reshape(b, c, h, w)


def augment_batch(x: torch.Tensor, gen: torch.Generator, cfg: AugmentConfig | None = None
                  ) -> torch.Tensor:
    """Augment a batch of slice triplets.

    Parameters
    ----------
    x:
        ``[B, P, 1, H, W]`` float tensor in [0, 1] (not modified in place).
    gen:
        Generator on ``x.device``; it alone decides every random draw.
    cfg:
        Ranges and probability; ``AugmentConfig(enabled=False)`` returns ``x`` unchanged.

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``x``, clipped to [0, 1].
    """
    cfg = cfg or AugmentConfig()
    if not cfg.enabled:
        return x
    if x.ndim != 5 or x.shape[2] != 1:
        raise ValueError(f"expected [B, P, 1, H, W], got {tuple(x.shape)}")
    b, p, _, h, w = x.shape
    dev = x.device
    out_dtype = x.dtype
    y = x.reshape(b, p, h, w).float()  # phases as channels: shared geometry per triplet

    # Rotation, one angle per triplet (about the image centre).
    rot = _mask(cfg.p, b, gen, dev)
    if bool(rot.any()):
        ang = _uniform(*cfg.rotation_deg, b, gen, dev) * (math.pi / 180.0) * rot
        cos, sin = torch.cos(ang), torch.sin(ang)
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1),
                             torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, [b, p, h, w], align_corners=False)
        y = F.grid_sample(y, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # Blur, one sigma per triplet.
    blur = _mask(cfg.p, b, gen, dev)
    sig = _uniform(*cfg.blur_sigma_px, b, gen, dev)
    if bool(blur.any()):
        blurred = _gaussian_blur(y, sig)
        y = torch.where(blur[:, None, None, None], blurred, y)

    # Brightness and contrast, one pair per triplet, contrast about mid-grey.
    bc = _mask(cfg.p, b, gen, dev)
    bright = _uniform(*cfg.brightness, b, gen, dev) * bc
    contr = torch.where(bc, _uniform(*cfg.contrast, b, gen, dev), torch.ones(b, device=dev))
    y = (y - 0.5) * contr[:, None, None, None] + 0.5 + bright[:, None, None, None]

    # Gaussian noise, independent per phase and pixel.
    nz = _mask(cfg.p, b, gen, dev)
    sigma_n = _uniform(*cfg.noise_sigma, b, gen, dev) * nz
    noise = torch.randn(y.shape, generator=gen, device=dev)
    y = y + noise * sigma_n[:, None, None, None]

    return y.clamp_(0.0, 1.0).reshape(b, p, 1, h, w).to(out_dtype)
