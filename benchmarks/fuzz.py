"""Long-run, coverage-guided fuzzing of the .rdc container parser and the decoder.

A mutation loop guided by line-to-line coverage of the ``rdcodec`` package (``sys.settrace``):
inputs that reach new arcs, or a new kind of outcome, join the corpus and are mutated further.
The mutations know the format (``docs/format.md``): besides blind bit flips, truncations and
splices, they replace header fields and fix the header checksum, make lengths lie, and put
arbitrary or edited bytes in the layers behind valid checksums, so the range decoder and the
transforms see them too.

Every input runs in a worker process (``torch`` at 1 thread) that calls, as a user would:
``parse_header``, ``unpack`` (strict and lenient), ``info``, ``strip`` and ``decompress`` (with
``predict_residual`` on inputs whose last byte is odd; then renders beta 0 and 1 and checks the
size). The contract under test: each input is decoded or refused with an ``RdcError`` subclass.
Recorded:

* crashes: any other exception (with its traceback), a worker that dies (native crash, killed
  for memory), or a decoded image of the wrong shape;
* hangs: inputs that take longer than ``--hang-limit`` wall seconds (the worker is killed);
* the slowest input by CPU time (robust to a busy machine), its wall time and what it claims
  to be (width x height: decode time follows the claimed size, up to ``--max-pixels``).

Crashing and hanging inputs are saved under ``--findings``; results go to ``--out`` (JSON,
rewritten every minute, so an interrupted run still leaves figures).

    nice -n 19 python benchmarks/fuzz.py --minutes 60            # the long run
    nice -n 19 python benchmarks/fuzz.py --minutes 1 --out /tmp/fuzz.json   # a smoke test

Coverage covers rdcodec's own Python code; constriction (Rust) and torch are black boxes that
only see the inputs.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import multiprocessing as mp
import os
import platform
import random
import re
import resource
import struct
import subprocess
import sys
import time
import traceback
import zlib
from bisect import bisect
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

# The header layouts of docs/format.md, kept here so the parent process needs no torch: the fixed
# one of versions 1-4 and version 5's compact one (fixed fields, then varints, then checksums).
MAGIC = b"\x8bRDC"
HEADER = struct.Struct("<4sBBIHHHIIIII")
HEADER_SIZE = HEADER.size
COMPACT = struct.Struct("<4sBBIH")
COMPACT_VERSION = 5
FIELDS = {"version": (4, 1), "flags": (5, 1), "weights_id": (6, 4), "width": (10, 2), "height": (12, 2),
          "alpha_q": (14, 2), "base_len": (16, 4), "base_crc": (20, 4), "residual_len": (24, 4),
          "residual_crc": (28, 4), "header_crc": (32, 4)}
INTERESTING = [0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 65, 127, 128, 255, 256, 4095, 4096,
               32767, 32768, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1]
MAX_INPUT = 1 << 16


def crc(b: bytes) -> int:
    return zlib.crc32(b) & 0xFFFFFFFF


# ---------------------------------------------------------------------------- worker

def _worker(conn, max_pixels: int, threads: int, make_seeds: bool) -> None:
    import warnings

    import numpy as np
    import torch

    warnings.simplefilter("ignore")
    torch.set_num_threads(threads)
    import rdcodec
    from rdcodec.api import get_codec
    from rdcodec.bitstream import container
    from rdcodec.errors import CorruptError, RdcError

    codec = get_codec()
    pkg = os.path.dirname(rdcodec.__file__)
    seen: set[int] = set()
    new: list[int] = []
    hit: set[int] = set()
    last: dict[int, int] = {}

    def local(frame, event, arg):
        if event == "line":
            key = id(frame)
            h = hash((frame.f_code.co_filename, frame.f_code.co_firstlineno, last.get(key, 0), frame.f_lineno))
            last[key] = frame.f_lineno
            hit.add(h)
            if h not in seen:
                seen.add(h)
                new.append(h)
        elif event == "return":
            last.pop(id(frame), None)
        return local

    def tracer(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(pkg):
            return local
        return None

    def target(data: bytes) -> str:
        steps = []
        for fn in (container.parse_header, container.unpack,
                   lambda d: container.unpack(d, ignore_residual_errors=True), rdcodec.info, rdcodec.strip):
            try:
                fn(data)
                steps.append("ok")
            except RdcError as e:
                steps.append(type(e).__name__)
        predict = bool(data[-1] & 1) if data else False  # half the inputs also try --predict-residual
        try:
            try:
                recon, notes = codec.decompress(data, max_pixels=max_pixels, predict_residual=predict)
            except CorruptError as e:  # what --ignore-residual-errors is for: try it as a user would
                if "--ignore-residual-errors" not in str(e):
                    raise
                recon, notes = codec.decompress(data, max_pixels=max_pixels, ignore_residual_errors=True,
                                                predict_residual=predict)
        except RdcError as e:
            return f"refused:{type(e).__name__}:{_template(str(e))}"
        h = container.parse_header(data)
        for beta in (0.0, 1.0):
            out = recon.render(beta)
            if out.shape != (h.height, h.width, 3) or out.dtype != np.uint8:
                raise AssertionError(f"decoded {out.shape} {out.dtype}, header says {h.width}x{h.height}")
        return ("decoded" + (":residual dropped" if "residual_dropped" in notes else "")
                + (":residual predicted" if "residual_predicted" in notes else "") + ":" + ",".join(steps))

    if make_seeds:
        conn.send(_seeds(codec, container))
    while True:
        data = conn.recv()
        if data is None:
            return
        new.clear()
        hit.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        sys.settrace(tracer)
        try:
            outcome, detail = target(data), None
        except Exception as e:  # noqa: BLE001 - this is what the fuzzer looks for
            outcome, detail = f"crash:{type(e).__name__}", traceback.format_exc(limit=-8)
        finally:
            sys.settrace(None)
            last.clear()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send((outcome, detail, elapsed, cpu, list(new), len(hit), rss_mb))


def _template(msg: str) -> str:
    """An error message without its numbers and ids: one feature per kind of refusal."""
    return re.sub(r"\d+", "#", re.sub(r"\(id [0-9a-f]+\)", "(id #)", msg))[:80]


def _seeds(codec, container) -> list[bytes]:
    import numpy as np
    from PIL import Image

    ex = np.asarray(Image.open(ROOT / "examples" / "kodim23.png").convert("RGB"))
    out = []
    for (y, x, h, w), alpha, residual in [((200, 300, 64, 96), 0.5, True), ((200, 300, 64, 96), 0.5, False),
                                          ((0, 0, 1, 1), 0.0, True), ((100, 100, 17, 33), 1.0, True),
                                          ((300, 400, 70, 130), 0.2, True), ((0, 0, 2, 300), 0.8, True)]:
        img = np.ascontiguousarray(ex[y:y + h, x:x + w])
        out.append(codec.compress(img, alpha, residual, reconstruct=False, check_residual=False).data)
    out.append(container.strip_residual(out[0]))
    # the same layers behind the fixed header of versions 1-4, which every reader still parses
    fixed = []
    for data in out:
        f = container.unpack(data)
        h = f.header
        fixed.append(container.pack(h.weights_id, h.width, h.height, h.alpha_q, f.base, f.residual, compact=False))
    return out + fixed


class Worker:
    def __init__(self, args, make_seeds: bool = False) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, args.max_pixels, args.threads, make_seeds), daemon=True)
        self.proc.start()
        child.close()
        self.seeds = self.conn.recv() if make_seeds else None

    def run(self, data: bytes, limit: float):
        """(outcome, detail, wall s, CPU s, new arcs, arcs hit, rss MB), or None after ``limit`` seconds."""
        try:
            self.conn.send(data)
            if not self.conn.poll(limit):
                return None
            return self.conn.recv()
        except (EOFError, OSError):  # the worker died: a native crash, or killed for memory
            self.proc.join(5)
            return (f"crash:worker died (exit code {self.proc.exitcode})", None, 0.0, 0.0, [], 0, 0.0)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join()


# ---------------------------------------------------------------------------- mutations

def split(data: bytes):
    """Lenient view of a file: header fields (or None), base bytes, residual bytes. The fields are the
    fixed layout's list (magic, version, flags, weights_id, width, height, alpha_q, base_len, base_crc,
    residual_len, residual_crc, header_crc) for either layout; ``build`` writes the one of the version."""
    if len(data) > 4 and data[4] == COMPACT_VERSION:
        return split_compact(data)
    if len(data) < HEADER_SIZE:
        return None, b"", b""
    f = list(HEADER.unpack_from(data))
    base_len = f[7]
    return f, data[HEADER_SIZE:HEADER_SIZE + base_len], data[HEADER_SIZE + base_len:]


def split_compact(data: bytes):
    if len(data) < COMPACT.size:
        return None, b"", b""
    magic, version, flags, wid, alpha_q = COMPACT.unpack_from(data)
    rest = data[COMPACT.size:]
    vals = []
    for _ in range(3 + (flags & 1)):
        n, i = read_varint(rest)
        if not i:
            return None, b"", b""
        vals.append(n)
        rest = rest[i:]
    res_crc = 0
    if flags & 1:
        if len(rest) < 4:
            return None, b"", b""
        res_crc, rest = struct.unpack_from("<I", rest)[0], rest[4:]
    rest = rest[4:]  # the checksum over the header and the base layer
    width, height, base_len = vals[:3]
    res_len = vals[3] if flags & 1 else 0
    f = [magic, version, flags, wid, width, height, alpha_q, base_len, 0, res_len, res_crc, 0]
    return f, rest[:base_len], rest[base_len:]


def build(f, base: bytes, res: bytes, fix: bool = True, fix_crc: bool = True, compact: bool | None = None) -> bytes:
    """A file from ``split``'s fields and layers, in the layout of its version (or ``compact``)."""
    f = list(f)
    if fix:
        f[7], f[8] = len(base), crc(base)
        f[9], f[10] = len(res), (crc(res) if f[2] & 1 else 0)
    if compact if compact is not None else f[1] == COMPACT_VERSION:
        head = COMPACT.pack(MAGIC, f[1], f[2] & 0xFF, f[3] & 0xFFFFFFFF, f[6] & 0xFFFF)
        head += varint(f[4]) + varint(f[5]) + varint(f[7])
        if f[2] & 1:
            head += varint(f[9]) + struct.pack("<I", f[10] & 0xFFFFFFFF)
        layers = base + res
        c = zlib.crc32(layers[:f[7]], zlib.crc32(head)) & 0xFFFFFFFF  # covers what the header says is the base
        return head + struct.pack("<I", c if fix_crc else c ^ 1) + layers
    # each field cut to its size: a field of a compact header may hold more
    sizes = (None, 0xFF, 0xFF, 0xFFFFFFFF, 0xFFFF, 0xFFFF, 0xFFFF) + (0xFFFFFFFF,) * 4
    head = HEADER.pack(f[0], *(v & m for v, m in zip(f[1:11], sizes[1:])), 0)
    return head[:-4] + struct.pack("<I", crc(head[:-4])) + base + res


def fix_header_crc(b: bytearray) -> None:
    if len(b) >= HEADER_SIZE:
        b[32:36] = struct.pack("<I", crc(bytes(b[:32])))


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(b: bytes) -> tuple[int, int]:
    n = shift = i = 0
    while i < len(b) and shift <= 28:
        n |= (b[i] & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not b[i - 1] & 0x80:
            return n, i
    return 0, 0


def edit_bytes(rng: random.Random, b: bytes) -> bytes:
    b = bytearray(b)
    if not b or rng.random() < 0.15:
        return bytes(b) + rng.randbytes(rng.randint(1, 8))
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(b))
        r = rng.random()
        if r < 0.5:
            b[i] ^= 1 << rng.randrange(8)
        elif r < 0.8:
            b[i] = rng.choice([0, 1, 0x7F, 0x80, 0xFF])
        else:
            b[i] = rng.randrange(256)
    return bytes(b)


def m_flip_bits(rng, data, corpus):
    b = bytearray(data) or bytearray(b"\0")
    for _ in range(rng.randint(1, 8)):
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def m_set_bytes(rng, data, corpus):
    return edit_bytes(rng, data)


def m_truncate(rng, data, corpus):
    f, base, res = split(data)
    cuts = [0, 3, 4, 5, 11, 12, 13, 35, 36, 37]
    if f:
        head = len(data) - len(base) - len(res)
        cuts += [head + d for d in (-4, -1, 0, 1)] + [head + len(base) + d for d in (-1, 0, 1)]
    n = rng.choice(cuts) if rng.random() < 0.5 else rng.randrange(len(data) + 1)
    return data[:max(0, n)]


def m_extend(rng, data, corpus):
    return data + rng.randbytes(rng.randint(1, 64))


def m_insert_delete(rng, data, corpus):
    i = rng.randrange(len(data) + 1)
    if rng.random() < 0.5:
        return data[:i] + rng.randbytes(rng.randint(1, 16)) + data[i:]
    return data[:i] + data[i + rng.randint(1, 16):]


def m_header_field(rng, data, corpus):
    if len(data) > 4 and data[4] == COMPACT_VERSION:
        return compact_field(rng, data, corpus)
    b = bytearray(data.ljust(HEADER_SIZE, b"\0"))
    off, size = FIELDS[rng.choice(list(FIELDS))]
    old = int.from_bytes(b[off:off + size], "little")
    top = (1 << (8 * size)) - 1
    r = rng.random()
    new = (rng.choice(INTERESTING) if r < 0.4 else old + rng.randint(-8, 8) if r < 0.7
           else old ^ (1 << rng.randrange(8 * size)) if r < 0.85 else rng.randrange(top + 1))
    b[off:off + size] = (new & top).to_bytes(size, "little")
    if rng.random() < 0.9:
        fix_header_crc(b)
    return bytes(b)


def compact_field(rng, data, corpus):
    """Version 5: one field of the list replaced (lengths and width/height as varints of any size),
    the checksum mostly recomputed over what the header then says is the base layer."""
    f, base, res = split(data)
    if f is None:
        return m_flip_bits(rng, data, corpus)
    k = rng.choice([1, 2, 3, 4, 5, 6, 7, 9, 10])
    old = f[k]
    top = {1: 255, 2: 255, 3: 2 ** 32 - 1, 6: 65535, 10: 2 ** 32 - 1}.get(k, 2 ** 35 - 1)
    r = rng.random()
    new = (rng.choice(INTERESTING) if r < 0.4 else old + rng.randint(-8, 8) if r < 0.7
           else old ^ (1 << rng.randrange(top.bit_length())) if r < 0.85 else rng.randrange(top + 1))
    f[k] = min(max(new, 0), top)
    return build(f, base, res, fix=False, fix_crc=rng.random() < 0.9, compact=True)


def m_lying_length(rng, data, corpus):
    if len(data) > 4 and data[4] == COMPACT_VERSION:
        f, base, res = split(data)
        if f is None:
            return m_flip_bits(rng, data, corpus)
        k = rng.choice([7, 9])
        old = f[k]
        f[k] = max(0, old + rng.choice([-1, 1, -4, 4, -old, len(data), rng.randint(-64, 64), 2 ** 31]))
        return build(f, base, res, fix=False)
    b = bytearray(data.ljust(HEADER_SIZE, b"\0"))
    off = rng.choice([16, 24])
    old = int.from_bytes(b[off:off + 4], "little")
    new = old + rng.choice([-1, 1, -4, 4, -old, len(data), rng.randint(-64, 64), 2 ** 31])
    b[off:off + 4] = (new & 0xFFFFFFFF).to_bytes(4, "little")
    fix_header_crc(b)
    return bytes(b)


def m_layer_bytes(rng, data, corpus):
    """Edit the base or residual layer and recompute every checksum."""
    f, base, res = split(data)
    if f is None:
        return m_set_bytes(rng, data, corpus)
    if res and rng.random() < 0.4:
        res = edit_bytes(rng, res)
    else:
        base = edit_bytes(rng, base)
    return build(f, base, res)


def m_random_layer(rng, data, corpus):
    f, base, res = split(data)
    if f is None:
        return m_extend(rng, data, corpus)
    junk = rng.randbytes(rng.choice([0, 1, 4, 8, rng.randint(0, 2 * len(base) + 8)]))
    if rng.random() < 0.5:
        base = junk
    else:
        res, f[2] = junk, f[2] | 1
    return build(f, base, res)


def m_z_length(rng, data, corpus):
    """Change the varint length of the z string inside the base layer (checksums fixed)."""
    f, base, res = split(data)
    if f is None:
        return m_flip_bits(rng, data, corpus)
    n, i = read_varint(base)
    new = rng.choice([0, 1, max(0, n - 4), n + 4, len(base), len(base) + 1, rng.randrange(1 << 20)])
    enc = varint(new) if rng.random() < 0.8 else bytes([0x80] * rng.randint(1, 6))
    return build(f, enc + base[i:], res)


def m_resize(rng, data, corpus):
    """New width and height (and maybe alpha) around the same layers, checksums fixed."""
    f, base, res = split(data)
    if f is None:
        return m_header_field(rng, data, corpus)
    for k in (4, 5):
        f[k] = rng.choice([1, 2, 63, 64, 65, 127, 128, 129, 255, 256, 511, 512, 4096, 65535,
                           rng.randint(1, 600)])
    if rng.random() < 0.5:
        f[6] = rng.randrange(65536)
    return build(f, base, res)


def m_splice(rng, data, corpus):
    """Header of one file with layers of another (valid checksums), or raw halves joined."""
    other = rng.choice(corpus)
    f, base, res = split(data)
    g, base2, res2 = split(other)
    if f is None or g is None or rng.random() < 0.3:
        i, j = rng.randrange(len(data) + 1), rng.randrange(len(other) + 1)
        return data[:i] + other[j:]
    if rng.random() < 0.5:
        return build(f, base2, res2)
    return build(f, base, res2) if rng.random() < 0.5 else build(f, base2, res)


def m_weights(rng, data, corpus):
    if len(data) > 4 and data[4] == COMPACT_VERSION:
        f, base, res = split(data)
        if f is None:
            return m_flip_bits(rng, data, corpus)
        f[3] = rng.randrange(1 << 32)
        return build(f, base, res, fix=False)
    b = bytearray(data.ljust(HEADER_SIZE, b"\0"))
    b[6:10] = rng.randbytes(4)
    fix_header_crc(b)
    return bytes(b)


MUTATORS = {name[2:]: fn for name, fn in globals().items() if name.startswith("m_")}


# ---------------------------------------------------------------------------- driver

def _describe(data: bytes) -> dict:
    d = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    f = split(data)[0] if data[:4] == MAGIC else None
    if f is not None:
        d.update(version=f[1], width=f[4], height=f[5], pixels=f[4] * f[5], alpha_q=f[6], base_len=f[7],
                 residual_len=f[9])
    if len(data) <= 4096:
        d["base64"] = base64.b64encode(data).decode()
    return d


def _save(folder: Path, kind: str, data: bytes) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{kind}-{hashlib.sha256(data).hexdigest()[:16]}.rdc"
    p.write_bytes(data)
    return str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p)


def _git_state() -> dict:
    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    try:
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "rdcodec"))
        return {"git_commit": git("rev-parse", "HEAD") or None, "rdcodec_uncommitted_changes": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="run time (default 10)")
    ap.add_argument("--max-inputs", type=int, default=0, help="stop after this many inputs (0: no limit)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hang-limit", type=float, default=30.0,
                    help="wall seconds before an input counts as a hang (default 30; normal inputs take < 1 s of CPU)")
    ap.add_argument("--max-pixels", type=int, default=512 * 512,
                    help="decoder pixel budget (decode time grows with the claimed size up to this)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in the worker")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "fuzz.json")
    ap.add_argument("--findings", type=Path, default=HERE / "results" / "fuzz_findings",
                    help="where crashing and hanging inputs are saved")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    t_start = time.time()
    worker = Worker(args, make_seeds=True)
    seeds = worker.seeds
    # Corpus entries are picked in proportion to how many arcs they reach: inputs that get
    # through the checksums into the decoder are mutated far more often than shallow ones.
    corpus: list[bytes] = []
    cum_weight: list[float] = []
    in_corpus: set[bytes] = set()

    def add(data: bytes, depth: int) -> None:
        if data in in_corpus or len(data) > MAX_INPUT:
            return
        in_corpus.add(data)
        corpus.append(data)
        cum_weight.append((cum_weight[-1] if cum_weight else 0.0) + max(1, depth) ** 2)

    def pick() -> bytes:
        return corpus[bisect(cum_weight, rng.random() * cum_weight[-1])]
    coverage: set[int] = set()
    features: set[str] = set()
    stats = {"inputs": 0, "faults_injected": 0, "faults_by_kind": {k: 0 for k in MUTATORS}, "outcomes": {},
             "crashes": [], "hangs": [], "worker_restarts": 0, "slowest": None, "peak_worker_rss_mb": 0.0}
    times: list[float] = []
    deadline = time.monotonic() + args.minutes * 60
    t0 = time.monotonic()
    last_report = last_write = t0

    def result() -> dict:
        elapsed = time.monotonic() - t0
        ts = sorted(times)
        pct = (lambda q: round(ts[min(len(ts) - 1, int(q * len(ts)))], 4)) if ts else (lambda q: None)
        refused = {k: v for k, v in stats["outcomes"].items() if k.startswith("refused")}
        return {
            "tool": "benchmarks/fuzz.py", **_git_state(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t_start)),
            "settings": {"minutes": args.minutes, "max_inputs": args.max_inputs, "seed": args.seed,
                         "hang_limit_s": args.hang_limit, "max_pixels": args.max_pixels,
                         "torch_threads": args.threads},
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "seconds": round(elapsed, 1), "inputs": stats["inputs"],
            "inputs_per_second": round(stats["inputs"] / elapsed, 2) if elapsed else None,
            "faults_injected": stats["faults_injected"], "faults_by_kind": stats["faults_by_kind"],
            "decoded": sum(v for k, v in stats["outcomes"].items() if k.startswith("decoded")),
            "refused": sum(refused.values()),
            "refused_by_class": _by_class(refused),
            "outcomes_top": dict(sorted(stats["outcomes"].items(), key=lambda kv: -kv[1])[:40]),
            "outcome_kinds": len(stats["outcomes"]),
            "crashes": len(stats["crashes"]), "hangs": len(stats["hangs"]),
            "crash_list": stats["crashes"], "hang_list": stats["hangs"],
            "cpu_seconds_per_input": {"median": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
            "slowest": stats["slowest"],
            "coverage": {"arcs": len(coverage), "outcome_kinds": len(features), "corpus": len(corpus),
                         "seeds": len(seeds)},
            "worker_restarts": stats["worker_restarts"],
            "peak_worker_rss_mb": round(stats["peak_worker_rss_mb"], 1),
        }

    def write() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".json.part")
        tmp.write_text(json.dumps(result(), indent=1) + "\n")
        os.replace(tmp, args.out)

    queue = list(seeds)  # seeds run first, unmutated, and all join the corpus
    names = sorted(MUTATORS)
    try:
        while time.monotonic() < deadline and not (args.max_inputs and stats["inputs"] >= args.max_inputs):
            is_seed = bool(queue)
            if is_seed:
                data, applied = queue.pop(0), []
            else:
                data, applied = pick(), []
                for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
                    name = rng.choice(names)
                    data = MUTATORS[name](rng, data, corpus)[:MAX_INPUT]
                    applied.append(name)
            for name in applied:
                stats["faults_by_kind"][name] += 1
            stats["faults_injected"] += len(applied)
            stats["inputs"] += 1

            res = worker.run(data, args.hang_limit)
            if res is None:
                worker.kill()
                stats["hangs"].append({**_describe(data), "mutations": applied,
                                       "saved": _save(args.findings, "hang", data)})
                worker, outcome = Worker(args), "hang"
                stats["worker_restarts"] += 1
            else:
                outcome, detail, elapsed, cpu, arcs, depth, rss = res
                times.append(cpu)
                stats["peak_worker_rss_mb"] = max(stats["peak_worker_rss_mb"], rss)
                if stats["slowest"] is None or cpu > stats["slowest"]["cpu_seconds"]:
                    stats["slowest"] = {"cpu_seconds": round(cpu, 4), "wall_seconds": round(elapsed, 4),
                                        "outcome": outcome, **_describe(data)}
                if outcome.startswith("crash"):
                    stats["crashes"].append({**_describe(data), "outcome": outcome, "traceback": detail,
                                             "mutations": applied, "saved": _save(args.findings, "crash", data)})
                    if not worker.proc.is_alive():
                        worker = Worker(args)
                        stats["worker_restarts"] += 1
                fresh = set(arcs) - coverage
                if fresh or outcome not in features or is_seed:
                    coverage |= fresh
                    features.add(outcome)
                    add(data, depth)
            stats["outcomes"][outcome] = stats["outcomes"].get(outcome, 0) + 1

            now = time.monotonic()
            if now - last_report >= 10:
                last_report = now
                r = result()
                print(f"[{r['seconds']:7.0f}s] inputs {r['inputs']} ({r['inputs_per_second']}/s)  "
                      f"decoded {r['decoded']}  refused {r['refused']}  crashes {r['crashes']}  hangs {r['hangs']}  "
                      f"arcs {len(coverage)}  corpus {len(corpus)}  "
                      f"slowest {(stats['slowest'] or {}).get('cpu_seconds', 0):.2f} s CPU",
                      file=sys.stderr, flush=True)
            if now - last_write >= 60:
                last_write = now
                write()
    except KeyboardInterrupt:
        print("interrupted; writing what was found", file=sys.stderr)
    finally:
        try:
            worker.conn.send(None)
            worker.proc.join(5)
        except (OSError, BrokenPipeError):
            pass
        if worker.proc.is_alive():
            worker.kill()
    write()
    r = result()
    print(json.dumps({k: r[k] for k in ("inputs", "faults_injected", "decoded", "refused", "crashes", "hangs",
                                        "seconds", "coverage")}), file=sys.stderr)
    if r["slowest"]:
        print(f"slowest: {r['slowest']['cpu_seconds']} s CPU, {r['slowest']['wall_seconds']} s wall "
              f"({r['slowest']['outcome']})", file=sys.stderr)
    print(f"results in {args.out}", file=sys.stderr)
    return 1 if r["crashes"] or r["hangs"] else 0


def _by_class(refused: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in refused.items():
        cls = k.split(":")[1]
        out[cls] = out.get(cls, 0) + v
    return out


if __name__ == "__main__":
    sys.exit(main())
