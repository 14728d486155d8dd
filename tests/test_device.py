"""The --device option: auto falls back to the CPU, cuda without a GPU is a clean error, and a
file coded through the 'auto' path is the same file as through 'cpu' (no GPU on this machine)."""

import pytest
import torch

import rdcodec
from rdcodec.api import resolve_device
from rdcodec.errors import RdcError


def test_auto_picks_cuda_only_when_available():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


def test_unknown_or_missing_device_is_a_clean_error():
    with pytest.raises(RdcError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RdcError, match="no CUDA device"):
            resolve_device("cuda")


def test_auto_device_codes_the_same_file(crop):
    cpu = rdcodec.encode(crop, alpha=0.4, device="cpu")
    auto = rdcodec.encode(crop, alpha=0.4, device="auto")
    if not torch.cuda.is_available():
        assert auto == cpu
    assert rdcodec.decode(auto, beta=0.0, device="auto").size == (crop.shape[1], crop.shape[0])
