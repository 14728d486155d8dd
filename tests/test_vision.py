"""The TFLite -> PyTorch converter and the stage-I cognition loss.

Network checks need ../shared/models and ai-edge-litert; they skip cleanly without them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rdcodec.train.cognition import augment, local_mse
from rdcodec.vision.tflite import _same_pad


@pytest.mark.parametrize("size,k,stride,expected", [
    (224, 3, 2, (0, 1)),   # TF pads the extra pixel after, PyTorch padding=1 would pad before too
    (225, 3, 2, (1, 1)),
    (112, 1, 1, (0, 0)),
    (7, 3, 1, (1, 1)),
    (128, 3, 2, (0, 1)),
])
def test_tf_same_padding(size, k, stride, expected):
    assert _same_pad(size, k, stride, 1) == expected


def test_local_mse_only_counts_values_outside_the_unit_range():
    x = torch.full((2, 3, 4, 4), 0.5)
    inside = torch.rand(2, 3, 4, 4)
    assert torch.equal(local_mse(x, inside), torch.zeros(2))
    out = inside.clone()
    out[0, 0, 0, 0] = 1.5  # one value above 1 in sample 0: (1.5 - 0.5)^2 / 48
    out[1, 1, 1, 1] = -0.5  # one below 0 in sample 1: (-0.5 - 0.5)^2 / 48
    assert torch.allclose(local_mse(x, out), torch.tensor([1 / 48, 1 / 48]))


def test_augment_is_a_seeded_view_in_range():
    x = torch.rand(4, 3, 16, 16)
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    assert a.min() >= 0 and a.max() <= 1 and not torch.equal(a, x)


# ---------------------------------------------------------------- networks from ../shared


@pytest.fixture(scope="module")
def models(shared):
    pytest.importorskip("ai_edge_litert")
    return shared / "models"


def _images(shared, n: int, size: int) -> list[np.ndarray]:
    files = sorted((shared / "data" / "imagenet_sample").glob("*.JPEG"))
    files = files[:: max(1, len(files) // n)][:n]
    from rdcodec.vision.reference import preprocess_center_crop

    out = []
    for f in files:
        crop = preprocess_center_crop(Image.open(f))
        out.append(crop if size == 224 else np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR)))
    return out


@pytest.mark.parametrize("name,n", [("mobilenet_v1_0.75_192_quant", 1000), ("mobilenet_v2_1.0_224_quant", 300)])
def test_converted_classifier_agrees_with_litert(shared, models, name, n):
    """Issue 5: top-1 agreement of the float PyTorch conversion with LiteRT >= 97%."""
    from rdcodec.vision.reference import Classifier
    from rdcodec.vision.tflite import load_tflite

    ref = Classifier(models / f"{name}.tflite")
    net = load_tflite(models / f"{name}.tflite")
    imgs = _images(shared, n, ref.size)
    agree = 0
    with torch.no_grad():
        for i in range(0, len(imgs), 50):
            batch = torch.from_numpy(np.stack(imgs[i:i + 50])).permute(0, 3, 1, 2).float() / 255
            ours = net(batch)["logits"].argmax(1) - 1
            agree += sum(int(o) == ref.top5(im)[0] for o, im in zip(ours, imgs[i:i + 50]))
    assert agree / len(imgs) >= 0.97, f"top-1 agreement {agree}/{len(imgs)}"


def test_converted_embedding_extractor_matches_litert(shared, models):
    """The training backbone: pooled 1024-d embeddings with cosine similarity > 0.99 to LiteRT's."""
    from ai_edge_litert.interpreter import Interpreter

    from rdcodec.vision.tflite import load_tflite

    path = models / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
    net = load_tflite(path)
    it = Interpreter(str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero = out["quantization"]
    for im in _images(shared, 20, 224):
        it.set_tensor(inp["index"], im[None])
        it.invoke()
        ref = (it.get_tensor(out["index"]).astype(np.float32).ravel() - zero) * scale
        with torch.no_grad():
            ours = net(torch.from_numpy(im.copy()).permute(2, 0, 1)[None].float() / 255)["embedding"][0].numpy()
        cos = float(ref @ ours / np.linalg.norm(ref) / np.linalg.norm(ours))
        assert cos > 0.99


def test_contrastive_loss_prefers_the_matching_image_and_passes_gradients(shared, models):
    from rdcodec.train.cognition import ContrastiveLoss

    loss = ContrastiveLoss(str(models / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"), queue=8)
    x = torch.from_numpy(np.stack(_images(shared, 4, 224))).permute(0, 3, 1, 2).float()[:, :, ::2, ::2] / 255
    x_hat = x.clone().requires_grad_(True)
    matched = loss(x, x_hat, torch.Generator().manual_seed(0))
    matched.sum().backward()
    assert x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    assert loss.queue.shape == (4, 1024)  # this batch's keys join the queue of negatives
    with torch.no_grad():
        loss(x, x, torch.Generator().manual_seed(1))
        loss(x, x, torch.Generator().manual_seed(2))
    assert loss.queue.shape == (8, 1024)  # capped at K
    loss.queue = loss.queue[:0]
    with torch.no_grad():
        shuffled = loss(x, x.roll(1, 0), torch.Generator().manual_seed(0))
    assert matched.mean() < shuffled.mean()


def test_feature_term_taps_one_map_per_scale_and_grows_with_distortion(shared, models):
    from rdcodec.train.cognition import ContrastiveLoss

    loss = ContrastiveLoss(str(models / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"), queue=8)
    x = torch.from_numpy(np.stack(_images(shared, 4, 224))).permute(0, 3, 1, 2).float() / 255
    maps = loss.net(x, loss.taps)["features"]
    assert [m.shape[-1] for m in maps] == [112, 56, 28, 14, 7]  # the deepest map of every scale
    gen = torch.Generator().manual_seed(0)
    x_hat = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1).requires_grad_(True)
    c, feat = loss.with_features(x, x_hat, torch.Generator().manual_seed(0))
    feat.sum().backward()
    assert c.shape == feat.shape == (4,) and x_hat.grad.abs().sum() > 0
    with torch.no_grad():
        same = loss.with_features(x, x, torch.Generator().manual_seed(0))[1]
        worse = loss.with_features(x, (x + 0.2 * torch.randn(x.shape, generator=gen)).clamp(0, 1),
                                   torch.Generator().manual_seed(0))[1]
    assert torch.allclose(same, torch.zeros(4), atol=1e-5)
    assert (feat.detach() < worse).all()
