"""The cognition-oriented loss of stage I (paper §3.2, Eqs. 5-7).

``C`` is InfoNCE on a frozen vision backbone's pooled embeddings (paper Eq. 5):

    C = -log( exp(q·k+ / τ) / Σ_{i=0..K} exp(q·k_i / τ) )

with ``q = normalize(f(x̂1))`` from the decoded base image, ``k+ = normalize(f(aug(x)))`` from
a different augmentation of the same original, and negatives from the other images of the
batch plus a FIFO queue of earlier keys (MoCo-style, ``K = queue`` entries). ``f`` is a TFLite
network converted by :mod:`rdcodec.vision.tflite` (MobileNetV1 1.0 embedding extractor by
default), frozen; gradients flow through it into the codec only.

``D_feat`` (not in the paper; ``--feature-weight``) is a feature-fidelity term on the same
frozen network: for the last feature map ``φ_l`` of each spatial scale, with every position's
channel vector scaled to unit length (as LPIPS does),

    D_feat = mean_l mean_{h,w} || φ̂_l(x̂1) - φ̂_l(x) ||²     (each term in [0, 4])

It asks x̂1 to keep the *features* a vision network computes from the original, where C only
asks that the pooled embedding stay closer to its own original than to other images.

``D_local`` (paper Eq. 6) is the MSE over output values outside [0, 1], counted over all
pixels, which keeps x̂1 in the range of a normal image without clipping its gradient.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ..vision.features import feature_distance
from ..vision.tflite import load_tflite

DEFAULT_BACKBONE = "../shared/models/mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A different view of ``x`` (B, 3, H, W) in [0, 1]: random flip plus colour jitter (±15%)."""
    b = x.shape[0]
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
    u = lambda: 1 + 0.3 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)  # noqa: E731
    gray = x.mean(1, keepdim=True)
    x = gray + (x - gray) * u()  # saturation
    mean = x.mean((1, 2, 3), keepdim=True)
    x = mean + (x - mean) * u()  # contrast
    return (x * u()).clamp(0, 1)  # brightness


def local_mse(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Paper Eq. 6 per sample: mean over all pixels of (x̂ - x)^2 where x̂ lies outside [0, 1]."""
    outside = (x_hat < 0) | (x_hat > 1)
    return ((x_hat - x).pow(2) * outside).flatten(1).mean(1)


class ContrastiveLoss(torch.nn.Module):
    """InfoNCE of decoded images against augmented originals (paper Eq. 5), per sample (B,).

    :meth:`with_features` also returns ``D_feat`` from the same forward pass through ``f(x̂1)``.
    """

    def __init__(self, backbone: str = DEFAULT_BACKBONE, queue: int = 2048, tau: float = 0.07):
        super().__init__()
        self.net = load_tflite(backbone)
        self.tau = tau
        self.size = queue
        self.register_buffer("queue", torch.zeros(0, 1), persistent=False)

    @functools.cached_property
    def taps(self) -> tuple[int, ...]:
        """The backbone's op per scale that ``D_feat`` compares (found once, on first use)."""
        return self.net.scale_taps()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x)["embedding"].float(), dim=1)

    def forward(self, x: torch.Tensor, x_hat: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return self._losses(x, x_hat, gen, features=False)[0]

    def with_features(self, x: torch.Tensor, x_hat: torch.Tensor,
                      gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(C, D_feat)``, both (B,); costs one more pass of ``f`` over ``x`` (without gradient)."""
        return self._losses(x, x_hat, gen, features=True)

    def _losses(self, x, x_hat, gen, features: bool):
        taps = self.taps if features else ()
        with torch.no_grad():
            k = self.embed(augment(x, gen))  # (B, D)
            f_ref = self.net(x, taps)["features"] if features else None
        out = self.net(x_hat, taps)
        q = F.normalize(out["embedding"].float(), dim=1)  # (B, D)
        keys = torch.cat([k, self.queue]) if self.queue.numel() else k  # (B + K, D)
        logits = q @ keys.T / self.tau  # positives on the diagonal of the first B columns
        loss = F.cross_entropy(logits, torch.arange(len(q)), reduction="none")
        self.queue = (torch.cat([k, self.queue]) if self.queue.numel() else k)[: self.size].detach()
        return loss, (feature_distance(out["features"], f_ref) if features else None)
