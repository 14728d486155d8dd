"""A frozen vision network seen through its feature maps, and the feature distance ``D_feat``.

Stage I trains the base layer against a frozen backbone's embedding (InfoNCE, paper Eq. 5) and,
from run 21 on, also against its feature maps (``D_feat``, :func:`feature_distance`). The
encoder's latent refinement for machines (:func:`rdcodec.refine.refine_for_machines`) uses the
same ``D_feat`` at encode time. Both see the network as a :class:`FeatureBackbone`: a callable
from an image batch (B, 3, H, W) in [0, 1] to one feature map per spatial scale.

    >>> path = "../shared/models/mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
    >>> net = FeatureBackbone.load(path)                                    # doctest: +SKIP
    >>> [tuple(f.shape) for f in net(torch.rand(1, 3, 224, 224))]          # doctest: +SKIP
    [(1, 64, 112, 112), (1, 128, 56, 56), (1, 256, 28, 28), (1, 512, 14, 14), (1, 1024, 7, 7)]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["FeatureBackbone", "feature_distance"]


def feature_distance(f: list[torch.Tensor], f_ref: list[torch.Tensor]) -> torch.Tensor:
    """``D_feat`` per sample (B,): the mean over maps of the mean over positions of the squared
    distance between unit-length channel vectors of ``f`` and ``f_ref`` (lists of (B, C_l, H_l, W_l)).

    Each term lies in [0, 4]: 0 where the channel vectors point the same way (their lengths are
    free), 4 where they point opposite ways.
    """
    terms = [(F.normalize(a.float(), dim=1, eps=1e-6) - F.normalize(b.float(), dim=1, eps=1e-6))
             .pow(2).sum(1).flatten(1).mean(1) for a, b in zip(f, f_ref)]
    return torch.stack(terms).mean(0)


class FeatureBackbone:
    """A frozen network's feature maps at each scale: ``backbone(x)`` -> [(B, C_l, H_l, W_l), ...].

    ``features`` is any callable from (B, 3, H, W) float in [0, 1] to a list of maps; gradients
    must flow to its input. :meth:`load` makes one from a TFLite file
    (:func:`rdcodec.vision.tflite.load_tflite`), tapping the deepest map before every downsampling
    (:meth:`~rdcodec.vision.tflite.TFLiteNet.scale_taps`). ``name`` says which network it is;
    ``module``, the network's ``torch.nn.Module`` when there is one, follows the input's device.
    """

    def __init__(self, features: Callable[[torch.Tensor], list[torch.Tensor]], name: str = "",
                 module: torch.nn.Module | None = None) -> None:
        self.features = features
        self.name = name
        self.module = module

    @classmethod
    def load(cls, path: str | Path) -> FeatureBackbone:
        """The network at ``path``: a TFLite file (needs ``ai-edge-litert``: ``pip install
        'rdcodec[cognition]'``) or a graph saved from one (``.safetensors``, which does not)."""
        from .tflite import load_network

        net = load_network(path)  # frozen: its tensors are buffers
        taps = net.scale_taps()
        return cls(lambda x: net(x, taps)["features"], Path(path).name, net)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.module is not None and next(self.module.buffers()).device != x.device:
            self.module.to(x.device)  # the codec's device (CUDA with --device cuda)
        return self.features(x)
