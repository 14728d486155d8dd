"""Trained weights: safetensors files in ``weights/``, verified against ``registry.json``.

A weights file holds the model's tensors (stored as float16 to stay small, loaded as
float32), the coding table ``tables.z_pmf`` and a JSON ``config`` in its metadata. Its
identity is its SHA-256; the first 4 bytes of it (``weights_id``) are written into every
.rdc file, so a file made with other weights is refused by name instead of decoding
into noise.

*Encoder weights* (:func:`export_encoder`) hold only the modules the encoder runs (``g_a``,
``h_a``) and name, in their metadata, the full weights whose decoder they were trained for
(``decoder``, ``decoder_sha256``). They load as that model with its encoder replaced, and
the files they make carry the *decoder's* ``weights_id``: every rdcodec that has the decoder
weights reads them, and nothing about the file format changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from .errors import WeightsError
from .fileio import write_atomic
from .model.rdc import ModelConfig, RDCModel

ENV_VAR = "RDCODEC_WEIGHTS"


def weights_dirs() -> list[Path]:
    """Where shipped weights are looked for: the source tree, then the installed data."""
    return [Path(__file__).resolve().parent.parent / "weights",
            Path(sys.prefix) / "share" / "rdcodec" / "weights"]


def _registry() -> tuple[Path, dict]:
    for d in weights_dirs():
        reg = d / "registry.json"
        if reg.is_file():
            return d, json.loads(reg.read_text())
    raise WeightsError("no shipped weights found (weights/registry.json); pass --weights PATH")


#: The modules only the encoder runs (``z = h_a(y * G_y)`` is coded; decoding needs neither): what
#: an encoder weights file holds.
ENCODER_PREFIXES = ("g_a.", "h_a.")

#: The config fields only the encoder uses: encoder weights may set them unlike their decoder's.
ENCODER_FIELDS = ("encoder_blocks",)


def same_decoder(a: ModelConfig, b: ModelConfig) -> bool:
    """Whether two model configs describe the same decoder (they differ at most in :data:`ENCODER_FIELDS`)."""
    return dataclasses.replace(a, **{f: getattr(b, f) for f in ENCODER_FIELDS}) == b


@dataclass(frozen=True)
class WeightsInfo:
    name: str
    path: Path
    sha256: str
    #: for encoder weights (as :func:`load` returns them): the full weights whose decoder they use
    decoder: WeightsInfo | None = None

    @property
    def weights_id(self) -> int:
        """The id written into files: the decoder's, so encoder weights make files for it."""
        sha = self.decoder.sha256 if self.decoder is not None else self.sha256
        return int.from_bytes(bytes.fromhex(sha[:8]), "little")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve(path: str | Path | None = None) -> WeightsInfo:
    """Find the weights to use (a file, the name of shipped weights, or None: $RDCODEC_WEIGHTS or the
    default) and verify them against the registry when they are shipped. This is the file's own
    identity: for encoder weights, :func:`load` adds the decoder (and so the ``weights_id`` files get)."""
    path = path or os.environ.get(ENV_VAR)
    try:
        root, reg = _registry()
    except WeightsError:
        if path is None:
            raise
        root, reg = None, {"weights": {}}
    if path is None:
        path = root / reg["weights"][reg["default"]]["file"]
    elif root is not None and str(path) in reg["weights"] and not Path(path).exists():
        path = root / reg["weights"][str(path)]["file"]  # a shipped model by name, e.g. "rdc-v3"
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix != ".safetensors":
        raise WeightsError(f"weights must be a .safetensors file, got {path.name}")
    digest = sha256_file(path)
    for name, entry in reg["weights"].items():
        if entry["file"] == path.name:
            if entry["sha256"] != digest:
                raise WeightsError(f"weights {path.name} do not match their recorded SHA-256 (altered file?)")
            return WeightsInfo(name, path, digest)
    return WeightsInfo(path.stem, path, digest)


def known_weights() -> dict[int, str]:
    """weights_id -> name for every registered full weights file (the ids files can carry; encoder
    weights make files with their decoder's id)."""
    try:
        _, reg = _registry()
    except WeightsError:
        return {}
    return {int.from_bytes(bytes.fromhex(e["sha256"][:8]), "little"): n for n, e in reg["weights"].items()
            if "decoder" not in e}


def encoders_of(decoder: str | None) -> list[str]:
    """The registered encoder weights that write files with ``decoder``'s id: a file cannot say
    which of them (or the decoder's own encoder) made it."""
    try:
        _, reg = _registry()
    except WeightsError:
        return []
    return sorted(n for n, e in reg["weights"].items() if decoder is not None and e.get("decoder") == decoder)


def shipped_backbones() -> dict[str, Path]:
    """name -> file of the vision networks shipped for ``--machines`` (``registry.json``
    ``"backbones"``; :meth:`rdcodec.vision.tflite.TFLiteGraph.save` files)."""
    try:
        root, reg = _registry()
    except WeightsError:
        return {}
    return {name: root / e["file"] for name, e in reg.get("backbones", {}).items()}


def is_shipped_backbone(source: object) -> bool:
    """Whether ``source`` names a shipped vision network (a name, unless a file of that name exists)."""
    return isinstance(source, str) and not Path(source).exists() and source in shipped_backbones()


def resolve_backbone(name: str) -> Path:
    """The file of the shipped vision network ``name``, verified against its recorded SHA-256."""
    root, reg = _registry()
    entry = reg.get("backbones", {}).get(name)
    if entry is None:
        raise WeightsError(f"no shipped vision network named '{name}'")
    path = root / entry["file"]
    if not path.is_file() or sha256_file(path) != entry["sha256"]:
        raise WeightsError(f"the shipped vision network {path.name} is missing or does not match its SHA-256")
    return path


_CONSTANT_BUFFERS = ("pedestal", "lower_bound.bound")  # GDN constants: not stored


def _model_from(config: ModelConfig, tensors: dict[str, torch.Tensor]) -> RDCModel:
    model = RDCModel(config)
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=False)
    missing = [k for k in missing if not k.endswith(_CONSTANT_BUFFERS)]
    if missing or unexpected:
        raise KeyError(f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model


@lru_cache(maxsize=4)
def load(path: str | Path | None = None) -> tuple[RDCModel, torch.Tensor, WeightsInfo]:
    """(model in eval mode, z_pmf table, info) for the resolved weights."""
    from safetensors import safe_open

    info = resolve(path)
    try:
        with safe_open(str(info.path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise WeightsError(f"cannot read weights {info.path.name}: {e}") from None
    if "decoder" in meta:
        return _with_encoder(info, meta, tensors)
    try:
        config = ModelConfig(**json.loads(meta["config"]))
        z_pmf = tensors.pop("tables.z_pmf").double()
        model = _model_from(config, tensors)
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        raise WeightsError(f"weights {info.path.name} do not fit this rdcodec: {e}") from None
    return model.eval(), z_pmf, info


def _with_encoder(info: WeightsInfo, meta: dict[str, str],
                  tensors: dict[str, torch.Tensor]) -> tuple[RDCModel, torch.Tensor, WeightsInfo]:
    """Encoder weights: their decoder's model (verified by its SHA-256) with ``g_a``/``h_a`` replaced."""
    base = resolve(meta["decoder"])  # checked before it is loaded, so no chain of files can loop
    if base.sha256 != meta.get("decoder_sha256"):
        raise WeightsError(f"encoder weights {info.path.name} were made for {meta['decoder']} "
                           f"({meta.get('decoder_sha256', '?')[:8]}), but {base.path.name} is another file "
                           f"({base.sha256[:8]})")
    base_model, z_pmf, base = load(meta["decoder"])
    if base.decoder is not None:
        raise WeightsError(f"encoder weights {info.path.name} name {base.name} as their decoder, which are "
                           "encoder weights themselves")
    try:
        config = ModelConfig(**json.loads(meta.get("config", "{}")))
    except (TypeError, ValueError) as e:
        raise WeightsError(f"encoder weights {info.path.name} do not fit this rdcodec: {e}") from None
    if not same_decoder(config, base_model.config):
        raise WeightsError(f"encoder weights {info.path.name} do not fit {base.name}'s model")
    model = RDCModel(config)  # the decoder's tensors (the loaded decoder model is cached and shared) ...
    model.load_state_dict({k: v for k, v in base_model.state_dict().items() if not k.startswith(ENCODER_PREFIXES)},
                          strict=False)
    expected = {k for k in model.state_dict() if k.startswith(ENCODER_PREFIXES) and not k.endswith(_CONSTANT_BUFFERS)}
    if set(tensors) != expected:
        raise WeightsError(f"encoder weights {info.path.name} do not fit {base.name}'s model")
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=False)  # ... and the encoder's
    return model.eval(), z_pmf, dataclasses.replace(info, decoder=base)


def export(model: RDCModel, path: Path, metadata: dict[str, str] | None = None) -> str:
    """Write ``model`` as float16 safetensors with its coding tables; returns the SHA-256.

    The file is written whole or not at all (:func:`~rdcodec.fileio.write_atomic`): an export
    that fails leaves the weights that were there."""
    from safetensors.torch import save

    from .entropy.tables import Z_RANGE
    from .model.rdc import z_pmf_table

    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()
             if not k.endswith(_CONSTANT_BUFFERS)}
    # the table is computed from the float16-rounded model that decoders will load
    rounded = _model_from(model.config, state)
    state["tables.z_pmf"] = z_pmf_table(rounded, Z_RANGE).to(torch.float32)
    meta = {"config": json.dumps(model.config.to_dict()), **(metadata or {})}
    data = save(state, metadata=meta)
    write_atomic(str(path), lambda f: f.write(data), force=True)
    return sha256_file(path)


def export_encoder(model: RDCModel, path: Path, decoder: str | Path,
                   metadata: dict[str, str] | None = None) -> str:
    """Write ``model``'s encoder (``g_a``, ``h_a``) as encoder weights for the full weights ``decoder``
    (a shipped name or a file); returns the SHA-256. Every other tensor of ``model`` must be the
    decoder weights' own, as stored: otherwise the files would not decode as they were encoded,
    and nothing is written."""
    from safetensors.torch import save

    base_model, _, base = load(decoder)
    if base.decoder is not None:
        raise WeightsError(f"{base.name} are encoder weights themselves; name full weights as the decoder")
    if not same_decoder(model.config, base_model.config):
        raise WeightsError(f"the model's decoder config is not {base.name}'s: {model.config} against "
                           f"{base_model.config}")
    ref = base_model.state_dict()
    state = {}
    for k, v in model.state_dict().items():
        if k.endswith(_CONSTANT_BUFFERS):
            continue
        if k.startswith(ENCODER_PREFIXES):
            state[k] = v.detach().to(torch.float16).contiguous()
        elif not torch.equal(v.detach().to(torch.float16).to(ref[k].dtype), ref[k]):
            raise WeightsError(f"{k} is not {base.name}'s: these are not an encoder for that decoder")
    meta = {"config": json.dumps(model.config.to_dict()), "decoder": base.name,
            "decoder_sha256": base.sha256, **(metadata or {})}
    data = save(state, metadata=meta)
    write_atomic(str(path), lambda f: f.write(data), force=True)
    return sha256_file(path)
