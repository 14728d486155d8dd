"""Load a quantized TFLite vision network as an equivalent float PyTorch module.

The networks in ``../shared/models`` are uint8 TFLite flatbuffers. :func:`load_tflite` parses
the flatbuffer with the schema shipped in ``ai-edge-litert``, dequantizes every constant
(``real = scale * (q - zero_point)``, per tensor or per channel) and returns a
:class:`TFLiteNet`, a frozen ``torch.nn.Module`` that replays the graph in float32, NCHW:

    >>> net = load_tflite("../shared/models/mobilenet_v2_1.0_224_quant.tflite")  # doctest: +SKIP
    >>> out = net(x)              # x: (B, 3, 224, 224) float in [0, 1]     # doctest: +SKIP
    >>> out["logits"].shape, out["embedding"].shape                        # doctest: +SKIP
    (torch.Size([B, 1001]), torch.Size([B, 1280]))

The parsed graph (:class:`TFLiteGraph`: the operators and every constant as stored, quantized)
can be saved as a safetensors file and built from it without ``ai-edge-litert``; the values are
dequantized the same way, so the module is the same to the bit. That is how rdcodec ships the
backbone of ``rdcodec encode --machines`` (``weights/mobilenet-v1-embedding.safetensors``):

    >>> graph = read_tflite("../shared/models/mobilenet_v1_1.0_224_quant_embedding_extractor.tflite")  # doctest: +SKIP
    >>> graph.save("mobilenet-v1-embedding.safetensors")                    # doctest: +SKIP
    >>> net = load_network("mobilenet-v1-embedding.safetensors")            # doctest: +SKIP

Supported operators are exactly those of the MobileNet/DeepLab files used here: CONV_2D,
DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MEAN, ADD, RESHAPE, SOFTMAX, QUANTIZE and DEQUANTIZE
(identities in float). TF "SAME" padding is mirrored exactly: the total padding is split with
the smaller half *before* (stride 2, 3x3 kernel on an even size pads 0 before and 1 after),
which is not what ``padding=1`` in PyTorch does. Gradients flow to the input, so the module
can serve as the frozen backbone of a perceptual or contrastive loss.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["TFLiteGraph", "TFLiteNet", "load_network", "load_tflite", "read_tflite"]

_ACT = {0: None, 1: "relu", 3: "relu6"}


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise ImportError("reading TFLite files needs ai-edge-litert: pip install 'rdcodec[cognition]'") from exc
    return schema


@dataclass
class _Op:
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict


def _same_pad(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) for one spatial dimension."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class TFLiteNet(torch.nn.Module):
    """A TFLite graph replayed in float32 (NCHW). Frozen: its tensors are buffers.

    ``forward(x)`` takes RGB in [0, 1], shape (B, 3, H, W) with H, W the file's input size
    (other sizes work wherever the graph allows), and returns a dict with ``"embedding"``
    (the globally pooled features, (B, C)), ``"logits"`` (the input of the final softmax,
    (B, classes), when the graph has one) and ``"output"`` (the graph's output in float).
    ``forward(x, taps)`` also returns ``"features"``: the outputs of the ops numbered in ``taps``
    (in that order), e.g. :meth:`scale_taps` for one feature map per spatial scale.
    """

    def __init__(self, ops: list[_Op], consts: dict[int, np.ndarray], input_index: int,
                 input_quant: tuple[float, float], output_index: int, input_shape: tuple[int, ...]):
        super().__init__()
        self.ops = ops
        self.input_index, self.output_index = input_index, output_index
        self.input_shape = tuple(int(v) for v in input_shape)  # NHWC, as in the file
        self.in_scale, self.in_zero = input_quant
        self._names = {}
        for idx, arr in consts.items():
            name = f"t{idx}"
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(arr)), persistent=False)
            self._names[idx] = name
        self.requires_grad_(False)
        self.eval()

    def const(self, idx: int) -> torch.Tensor:
        return getattr(self, self._names[idx])

    def scale_taps(self, size: int = 224) -> tuple[int, ...]:
        """The index of the last op at each spatial scale of a ``size``² input (4-D outputs only):
        the deepest feature map before every downsampling, ordered from fine to coarse."""
        with torch.no_grad():
            maps = self.forward(torch.zeros(1, 3, size, size), taps=range(len(self.ops)))["features"]
        last: dict[int, int] = {}
        for i, y in enumerate(maps):
            if y.dim() == 4 and y.shape[2] > 1:
                last[y.shape[2]] = i
        return tuple(last[h] for h in sorted(last, reverse=True))

    def forward(self, x: torch.Tensor, taps=()) -> dict[str, torch.Tensor]:
        taps = {op: n for n, op in enumerate(taps)}
        features: list = [None] * len(taps)
        # uint8 pixel q = 255 x; the network sees scale * (q - zero_point).
        values = {self.input_index: self.in_scale * (x * 255.0 - self.in_zero)}
        result: dict[str, torch.Tensor] = {}
        for i, op in enumerate(self.ops):
            a = values[op.inputs[0]]
            opt = op.options
            if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w, b = self.const(op.inputs[1]), self.const(op.inputs[2])
                kh, kw = w.shape[-2:]
                sh, sw = opt["stride"]
                dh, dw = opt["dilation"]
                if opt["same"]:
                    pt, pb = _same_pad(a.shape[2], kh, sh, dh)
                    pl, pr = _same_pad(a.shape[3], kw, sw, dw)
                    if pt or pb or pl or pr:
                        a = F.pad(a, (pl, pr, pt, pb))
                groups = a.shape[1] if op.kind == "DEPTHWISE_CONV_2D" else 1
                y = F.conv2d(a, w, b, stride=(sh, sw), dilation=(dh, dw), groups=groups)
            elif op.kind == "AVERAGE_POOL_2D":
                if opt["global"]:  # pools the whole map in the file: stay global at other input sizes
                    y = a.mean((2, 3), keepdim=True)
                else:  # pragma: no cover - not in the shipped graphs
                    y = F.avg_pool2d(a, opt["filter"], opt["stride"])
                result["embedding"] = y.flatten(1)
            elif op.kind == "MEAN":
                y = a.mean((2, 3), keepdim=opt["keep_dims"])
                result["embedding"] = y.flatten(1)
            elif op.kind == "ADD":
                y = a + values[op.inputs[1]]
            elif op.kind == "RESHAPE":
                y = a.flatten(1) if len(opt["shape"]) == 2 else a
            elif op.kind == "SOFTMAX":
                result["logits"] = a * opt["beta"]
                y = torch.softmax(result["logits"], dim=1)
            elif op.kind in ("QUANTIZE", "DEQUANTIZE"):
                y = a
            else:  # pragma: no cover - rejected at load time
                raise NotImplementedError(op.kind)
            act = opt.get("act")
            if act == "relu6":
                y = y.clamp(0.0, 6.0)
            elif act == "relu":
                y = y.clamp_min(0.0)
            values[op.outputs[0]] = y
            if i in taps:
                features[taps[i]] = y
        result["output"] = values[self.output_index]
        if taps:
            result["features"] = features
        return result


@dataclass
class _Const:
    """A constant as the TFLite file stores it: ``raw`` values (uint8, int8, int32, int64 or float32)
    in TFLite's layout, ``real = scale * (raw - zero)`` per tensor (shape (1,)) or per channel along
    ``axis`` (``scale`` None: ``raw`` is already real), and ``layout``, the transposition to PyTorch's."""
    raw: np.ndarray
    scale: np.ndarray | None
    zero: np.ndarray | None
    axis: int
    layout: str  # "conv", "depthwise" or "" (biases)

    def value(self) -> np.ndarray:
        """The real values, float32, in PyTorch's layout (int64 stays int64)."""
        arr = self.raw
        if self.scale is None:
            arr = arr if arr.dtype == np.int64 else arr.astype(np.float32)
        else:
            scale, zero = self.scale, self.zero
            if scale.size > 1:  # per-channel
                shape = [1] * arr.ndim
                shape[self.axis] = -1
                scale, zero = scale.reshape(shape), zero.reshape(shape)
            arr = (scale * (arr.astype(np.float64) - zero)).astype(np.float32)
        # TFLite: conv (O, kh, kw, I); depthwise (1, kh, kw, C) -> torch (O|C, I|1, kh, kw)
        if self.layout == "depthwise":
            arr = arr.transpose(3, 0, 1, 2)
        elif self.layout == "conv":
            arr = arr.transpose(0, 3, 1, 2)
        return arr


#: ``__metadata__["format"]`` of a graph saved by :meth:`TFLiteGraph.save`.
GRAPH_FORMAT = "rdcodec-tflite-graph-1"


@dataclass
class TFLiteGraph:
    """A TFLite graph as parsed: its operators, its constants as stored (quantized) and its input.

    :meth:`build` makes the float :class:`TFLiteNet`; :meth:`save` / :meth:`load` keep the graph
    in a safetensors file (the constants as tensors ``t<index>.raw``, ``.scale``, ``.zero``; the
    rest as JSON in the metadata entry ``graph``), which needs no TFLite parser to read back.
    """
    ops: list[_Op]
    consts: dict[int, _Const]
    input_index: int
    input_quant: tuple[float, float]
    output_index: int
    input_shape: tuple[int, ...]
    source: str = ""

    def build(self) -> TFLiteNet:
        return TFLiteNet(self.ops, {i: c.value() for i, c in self.consts.items()}, self.input_index,
                         self.input_quant, self.output_index, self.input_shape)

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        tensors = {}
        for i, c in self.consts.items():
            tensors[f"t{i}.raw"] = np.ascontiguousarray(c.raw)
            if c.scale is not None:
                tensors[f"t{i}.scale"] = np.asarray(c.scale, np.float64).reshape(-1)
                tensors[f"t{i}.zero"] = np.asarray(c.zero, np.float64).reshape(-1)
        meta = {"format": GRAPH_FORMAT, "source": self.source,
                "ops": [[o.kind, o.inputs, o.outputs, o.options] for o in self.ops],
                "consts": {str(i): [c.axis, c.layout] for i, c in self.consts.items()},
                "input": [self.input_index, list(self.input_quant), list(self.input_shape)],
                "output": self.output_index}
        # One metadata entry: safetensors writes several in no fixed order, and the file's SHA-256 is
        # its identity in weights/registry.json. numpy ints (the flatbuffer's) are written as ints.
        save_file(tensors, str(path), metadata={"graph": json.dumps(meta, default=lambda v: v.item())})

    @classmethod
    def load(cls, path: str | Path) -> TFLiteGraph:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {}).get("graph", "{}"))
            if meta.get("format") != GRAPH_FORMAT:
                raise ValueError(f"{path}: not a vision network saved by rdcodec ({GRAPH_FORMAT})")
            keys = set(f.keys())
            consts = {}
            for i, (axis, layout) in meta["consts"].items():
                scaled = f"t{i}.scale" in keys
                consts[int(i)] = _Const(f.get_tensor(f"t{i}.raw"), f.get_tensor(f"t{i}.scale") if scaled else None,
                                        f.get_tensor(f"t{i}.zero") if scaled else None, axis, layout)
        ops = [_Op(kind, inputs, outputs, options) for kind, inputs, outputs, options in meta["ops"]]
        index, quant, shape = meta["input"]
        return cls(ops, consts, index, tuple(quant), meta["output"], tuple(shape), meta["source"])


def _stored(tensor, buffer: np.ndarray, dtype_code: int, schema, layout: str) -> _Const:
    kinds = {schema.TensorType.UINT8: np.uint8, schema.TensorType.INT8: np.int8,
             schema.TensorType.INT32: np.int32, schema.TensorType.FLOAT32: np.float32,
             schema.TensorType.INT64: np.int64}
    arr = np.frombuffer(buffer.tobytes(), dtype=kinds[dtype_code]).reshape(tensor.shape)
    q = tensor.quantization
    if dtype_code in (schema.TensorType.FLOAT32,) or q is None or q.scale is None or arr.dtype == np.int64:
        return _Const(arr, None, None, 0, layout)
    return _Const(arr, np.asarray(q.scale, np.float64), np.asarray(q.zeroPoint, np.float64),
                  int(q.quantizedDimension), layout)


def read_tflite(path: str | Path) -> TFLiteGraph:
    """Parse the TFLite file at ``path`` (needs ``ai-edge-litert``) into a :class:`TFLiteGraph`."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(Path(path).read_bytes(), 0)
    graph = model.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops: list[_Op] = []
    consts: dict[int, _Const] = {}
    for o in graph.operators:
        code = model.operatorCodes[o.opcodeIndex]
        kind = names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        bo = o.builtinOptions
        options: dict = {}
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            options = {"stride": (bo.strideH, bo.strideW),
                       "dilation": (bo.dilationHFactor, bo.dilationWFactor),
                       "same": bo.padding == schema.Padding.SAME,
                       "act": _ACT[bo.fusedActivationFunction]}
        elif kind == "AVERAGE_POOL_2D":
            options = {"filter": (bo.filterHeight, bo.filterWidth), "stride": (bo.strideH, bo.strideW),
                       "act": _ACT[bo.fusedActivationFunction],
                       "global": tuple(graph.tensors[o.inputs[0]].shape[1:3]) == (bo.filterHeight, bo.filterWidth)}
        elif kind == "ADD":
            options = {"act": _ACT[bo.fusedActivationFunction]}
        elif kind == "SOFTMAX":
            options = {"beta": float(bo.beta)}
        elif kind == "MEAN":
            options = {"keep_dims": bool(bo.keepDims)}
        elif kind == "RESHAPE":
            options = {"shape": list(graph.tensors[o.outputs[0]].shape)}
        elif kind not in ("QUANTIZE", "DEQUANTIZE"):
            raise ValueError(f"{path}: unsupported TFLite operator {kind}")
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            for idx in o.inputs[1:3]:
                t = graph.tensors[idx]
                layout = ("depthwise" if kind == "DEPTHWISE_CONV_2D" else "conv") if idx == o.inputs[1] else ""
                consts[idx] = _stored(t, np.asarray(model.buffers[t.buffer].data), t.type, schema, layout)
        ops.append(_Op(kind, list(o.inputs), list(o.outputs), options))
    inp = graph.tensors[graph.inputs[0]]
    q = inp.quantization
    in_quant = (float(q.scale[0]), float(q.zeroPoint[0])) if q is not None and q.scale is not None else (1 / 255, 0.0)
    return TFLiteGraph(ops, consts, graph.inputs[0], in_quant, graph.outputs[0], tuple(int(v) for v in inp.shape),
                       Path(path).name)


def load_tflite(path: str | Path) -> TFLiteNet:
    """Parse ``path`` and return the equivalent float :class:`TFLiteNet`."""
    return read_tflite(path).build()


def load_network(path: str | Path) -> TFLiteNet:
    """The :class:`TFLiteNet` of a TFLite file, or of a graph saved by :meth:`TFLiteGraph.save`
    (``.safetensors``, which needs no ``ai-edge-litert``)."""
    if Path(path).suffix == ".safetensors":
        return TFLiteGraph.load(path).build()
    return load_tflite(path)
