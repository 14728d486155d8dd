"""Speed and memory of rdcodec on a CPU, against CompressAI's mbt2018_mean in the same run.

In one run (issue "Speed and scale"):

* encode and decode wall time per stage (analysis, hyper path, entropy coding, synthesis,
  residual branch, the encoder's residual-layer decision, rendering, file I/O) on a Kodak
  image (768 x 512) and on a 24-megapixel image (6000 x 4000, a mosaic of 36 training
  photos built in a temporary folder), with 1 and 2 threads. The stages come from
  ``Codec.compress(..., timings=d)`` / ``Codec.decompress(..., timings=d)``;
* CompressAI's ``mbt2018_mean`` (quality 4: N = 128, M = 192 like rdcodec; random weights,
  which is fine for timing) through its own ``compress`` / ``decompress`` on the same image
  and threads; rdcodec's times are reported as a ratio to it (the issue's bar is <= 1.0).
  rdcodec's encode is what ``rdcodec encode`` runs (no synthesis); the encode with the
  optional residual-layer decision (``--check-residual``: the encoder also decodes its own
  file) is reported as well, and so are the encode with the Wiener output filter (``--filter``:
  a synthesis and a least-squares fit more) and the decode of the file it makes;
* entropy coding alone on the latent y of the Kodak image at about 0.5 bpp: symbols per
  second and bytes against the estimated bits, constriction (rdcodec's coder) against
  CompressAI's rANS on the same symbols and the same scale table;
* peak resident memory (RSS) of ``rdcodec encode`` and ``rdcodec decode`` processes for both
  sizes (``os.wait4``: the child's own maximum RSS).

Every timing job runs in a fresh process (so a job that runs out of memory cannot take the
benchmark down, and each reports its own peak RSS); times are the median over repetitions
after a warm-up.

    python benchmarks/speed.py                 # full run, ~15-25 min on 2 cores
    python benchmarks/speed.py --quick         # Kodak only, one repetition (smoke test)

Results: ``--out`` (default ``benchmarks/results/speed``) / ``speed.json`` (``speed-quick.json``
with ``--quick``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data"
LARGE_SIZE = (6000, 4000)   # width, height: 24 megapixels
MOSAIC = (6, 6)             # columns, rows of training photos in the large image
COMPRESSAI_QUALITY = 4      # mbt2018_mean qualities 1-4 have N = 128, M = 192 (rdcodec's widths)
ENC_STAGES = ("analysis", "hyper", "entropy", "residual")
DEC_STAGES = ("entropy", "hyper", "synthesis", "residual", "render")
FILTER_DEC_STAGES = DEC_STAGES + ("filter",)
GIB = 1024 ** 3


# ---------------------------------------------------------------------------- helpers
def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _quiet_imports() -> None:
    warnings.filterwarnings("ignore")  # compressai's import-time deprecation warnings


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def isolated(fn, *args) -> dict:
    """``fn(*args)`` in a fresh process; ``{"error": ...}`` if it raises or dies (out of memory)."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as ex:
        try:
            return ex.submit(fn, *args).result()
        except BrokenProcessPool:
            return {"error": "worker process died (out of memory?)"}
        except Exception as e:  # noqa: BLE001 - recorded in the results
            return {"error": f"{type(e).__name__}: {e}"}


def build_large_image(path: Path, train: Path) -> None:
    """A 6000 x 4000 mosaic of training photos (center crops, resized to the cell), saved as PNG."""
    from PIL import Image

    files = sorted((train / "sun_hays80").glob("*.jpg")) or sorted(train.rglob("*.jpg"))
    if not files:
        raise SystemExit(f"no training photos under {train}")
    W, H = LARGE_SIZE
    cols, rows = MOSAIC
    xs = [i * W // cols for i in range(cols + 1)]
    ys = [j * H // rows for j in range(rows + 1)]
    canvas = Image.new("RGB", (W, H))
    k = 0
    for j in range(rows):
        for i in range(cols):
            cw, ch = xs[i + 1] - xs[i], ys[j + 1] - ys[j]
            im = Image.open(files[k % len(files)]).convert("RGB")
            k += 1
            s = max(cw / im.width, ch / im.height)
            im = im.resize((max(cw, round(im.width * s)), max(ch, round(im.height * s))), Image.BICUBIC)
            left, top = (im.width - cw) // 2, (im.height - ch) // 2
            canvas.paste(im.crop((left, top, left + cw, top + ch)), (xs[i], ys[j]))
    canvas.save(path, compress_level=1)


# ---------------------------------------------------------------------------- timing jobs
def job_rdcodec(png: str, threads: int, alpha: float, reps: int, workdir: str, weights: str | None = None) -> dict:
    """rdcodec encode / decode of one PNG: per-stage seconds per repetition, bytes, peak RSS."""
    _quiet_imports()
    _set_threads(threads)
    from PIL import Image

    from rdcodec.api import get_codec
    from rdcodec.image import load_rgb8

    codec = get_codec(weights)
    rdc, out_png = Path(workdir) / f"bench-{os.getpid()}.rdc", Path(workdir) / f"bench-{os.getpid()}.png"
    image = load_rgb8(png)
    small = np.ascontiguousarray(image[:256, :256])
    codec.decompress(codec.compress(small, alpha).data)[0].render(0.0)  # warm-up (threads, allocator)
    if image.shape[0] * image.shape[1] <= 4_000_000:
        codec.decompress(codec.compress(image, alpha).data)[0].render(0.0)
    del image

    enc, enc_checked, enc_filter, dec, dec_filter = [], [], [], [], []
    filtered = b""

    data = b""
    for _ in range(reps):
        t = {}
        t0 = time.perf_counter()
        image = load_rgb8(png)
        t["file_io"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        c = codec.compress(image, alpha, reconstruct=False, timings=t)  # as `rdcodec encode`
        t["total"] = time.perf_counter() - t0
        data = c.data
        del c
        t0 = time.perf_counter()
        rdc.write_bytes(data)
        t["file_io"] += time.perf_counter() - t0
        enc.append(t)

        t0 = time.perf_counter()
        codec.compress(image, alpha, reconstruct=False, check_residual=True)
        enc_checked.append({"total": time.perf_counter() - t0})
        t0 = time.perf_counter()
        filtered = codec.compress(image, alpha, reconstruct=False, output_filter=True).data  # encode --filter
        enc_filter.append({"total": time.perf_counter() - t0})
        del image
        t = {}
        t0 = time.perf_counter()
        codec.decompress(filtered, timings=t)[0].render(0.0)
        t["total"], t["file_io"] = time.perf_counter() - t0, 0.0
        dec_filter.append(t)

        t = {}
        t0 = time.perf_counter()
        blob = rdc.read_bytes()
        t["file_io"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        recon, _ = codec.decompress(blob, timings=t)
        t1 = time.perf_counter()
        pixels = recon.render(0.0)
        t["render"] = time.perf_counter() - t1
        t["total"] = time.perf_counter() - t0
        del recon
        t0 = time.perf_counter()
        buf = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buf, format="PNG")  # as `rdcodec decode` does
        out_png.write_bytes(buf.getvalue())
        t["file_io"] += time.perf_counter() - t0
        dec.append(t)
        del pixels, buf
    rdc.unlink(missing_ok=True)
    out_png.unlink(missing_ok=True)

    def summary(runs: list[dict], stages) -> dict:
        out = {"total_s": _median([r["total"] for r in runs]), "runs_s": [r["total"] for r in runs]}
        if stages:
            st = {k: _median([r.get(k, 0.0) for r in runs]) for k in stages}
            st["other"] = out["total_s"] - sum(st.values())
            out["stages_s"] = st
            out["file_io_s"] = _median([r["file_io"] for r in runs])
        return out

    return {"encode": summary(enc, ENC_STAGES), "encode_check_residual": summary(enc_checked, ()),
            "encode_filter": summary(enc_filter, ()), "decode": summary(dec, DEC_STAGES),
            "decode_filter": summary(dec_filter, FILTER_DEC_STAGES),  # no file I/O, render included in other
            "bytes": len(data), "bytes_filter": len(filtered), "threads": threads,
            "peak_rss_mib": _peak_rss_mib()}


def job_compressai(png: str, threads: int, reps: int) -> dict:
    """CompressAI mbt2018_mean (random weights) compress / decompress, uint8 in and out."""
    _quiet_imports()
    _set_threads(threads)
    import torch
    import torch.nn.functional as F
    from compressai.zoo import mbt2018_mean

    from rdcodec.image import load_rgb8

    torch.manual_seed(0)
    net = mbt2018_mean(quality=COMPRESSAI_QUALITY, pretrained=False).eval()
    net.update(force=True)
    image = load_rgb8(png)

    def encode(img: np.ndarray) -> dict:
        h, w = img.shape[:2]
        x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255.0
        x = F.pad(x, (0, -w % 64, 0, -h % 64), mode="replicate")
        return net.compress(x)

    def decode(out: dict, h: int, w: int) -> np.ndarray:
        x = net.decompress(out["strings"], out["shape"])["x_hat"][..., :h, :w]
        return x[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()

    with torch.no_grad():
        small = np.ascontiguousarray(image[:256, :256])
        decode(encode(small), *small.shape[:2])  # warm-up
        if image.shape[0] * image.shape[1] <= 4_000_000:
            decode(encode(image), *image.shape[:2])
        enc, dec, nbytes = [], [], 0
        for _ in range(reps):
            t0 = time.perf_counter()
            out = encode(image)
            enc.append(time.perf_counter() - t0)
            nbytes = sum(len(s) for strings in out["strings"] for s in strings)
            t0 = time.perf_counter()
            decode(out, *image.shape[:2])
            dec.append(time.perf_counter() - t0)
            del out
    return {"model": f"mbt2018_mean quality {COMPRESSAI_QUALITY} (N=128, M=192), random weights",
            "encode": {"total_s": _median(enc), "runs_s": enc}, "decode": {"total_s": _median(dec), "runs_s": dec},
            "bytes": nbytes, "threads": threads, "peak_rss_mib": _peak_rss_mib()}


def job_entropy(png: str, target_bpp: float, reps: int, weights: str | None = None) -> dict:
    """Entropy coding alone on the y symbols of one image: constriction vs CompressAI's rANS."""
    _quiet_imports()
    _set_threads(1)
    import torch
    from compressai import ans
    from compressai.entropy_models import GaussianConditional
    from scipy.special import ndtr

    from rdcodec.api import get_codec
    from rdcodec.bitstream import container
    from rdcodec.entropy import coder
    from rdcodec.entropy.tables import SCALE_TABLE, Z_RANGE, scale_indices
    from rdcodec.image import load_rgb8

    codec = get_codec(weights)
    image = load_rgb8(png)
    px = image.shape[0] * image.shape[1]
    _, alpha = codec.compress_to_size(image, int(target_bpp * px / 8))
    c = codec.compress(image, alpha, estimate=True)

    # The y symbols and their scale-table indices, as the decoder sees them.
    f = container.unpack(c.data)
    h = f.header
    z_str, y_str = container.split_strings(f.base)
    hz, wz = h.hyper_shape
    zc = coder.decode_factorized(z_str, codec.m.z_pmf, Z_RANGE, hz * wz)
    z_sym = torch.from_numpy(zc).reshape(1, -1, hz, wz)
    _, igz = codec.m.gains(h.alpha)["z"]
    sym, _, scales = codec.decode_y(y_str, z_sym, igz, h.latent_shape)
    idx = scale_indices(scales)
    n = int(sym.size)

    # Information content under the exact coding model (zero-mean quantized Gaussian, table std).
    std = SCALE_TABLE[idx].astype(np.float64)
    a = np.abs(sym).astype(np.float64)
    p = ndtr((0.5 - a) / std) - ndtr((-0.5 - a) / std)
    ideal_bits = float(-np.log2(np.maximum(p, 1e-300)).sum())
    model_bits = float(c.estimated_bits["y"])  # the training-time estimate (unsnapped scales)

    def timed(fn, *args):
        best, out = [], None
        for _ in range(max(reps, 3)):
            t0 = time.perf_counter()
            out = fn(*args)
            best.append(time.perf_counter() - t0)
        return _median(best), out

    def coder_row(name, enc_s, dec_s, nbytes, ok) -> dict:
        return {"coder": name, "bytes": nbytes, "encode_s": enc_s, "decode_s": dec_s,
                "encode_msym_per_s": n / enc_s / 1e6, "decode_msym_per_s": n / dec_s / 1e6,
                "overhead_vs_ideal_pct": 100 * (8 * nbytes / ideal_bits - 1),
                "overhead_vs_model_estimate_pct": 100 * (8 * nbytes / model_bits - 1), "lossless": ok}

    rows = []
    te, data = timed(coder.encode_gaussian, sym, idx)
    td, back = timed(coder.decode_gaussian, data, idx)
    rows.append(coder_row("constriction range coder (rdcodec)", te, td, len(data), bool(np.array_equal(back, sym))))

    gc = GaussianConditional(None)
    gc.update_scale_table(SCALE_TABLE.astype(np.float64).tolist())
    sym_t, idx_t = torch.from_numpy(sym).float(), torch.from_numpy(idx).int()
    te, strings = timed(gc.compress, sym_t, idx_t)
    td, back = timed(gc.decompress, strings, idx_t)
    rows.append(coder_row("compressai rANS via GaussianConditional.compress", te, td, sum(map(len, strings)),
                          bool(torch.equal(back, sym_t))))

    lists = (gc._quantized_cdf.tolist(), gc._cdf_length.reshape(-1).int().tolist(),
             gc._offset.reshape(-1).int().tolist())
    sym_l, idx_l = sym.reshape(-1).tolist(), idx.reshape(-1).tolist()
    te, raw = timed(ans.RansEncoder().encode_with_indexes, sym_l, idx_l, *lists)
    td, back = timed(ans.RansDecoder().decode_with_indexes, raw, idx_l, *lists)
    rows.append(coder_row("compressai rANS core (inputs as Python lists, conversion not timed)", te, td, len(raw),
                          back == sym_l))

    layers = [len(z_str), len(y_str), len(f.residual or b"")]
    est_total = sum(c.estimated_bits.values())
    return {
        "image": Path(png).name, "alpha": alpha, "bpp": 8 * len(c.data) / px, "file_bytes": len(c.data),
        "y_symbols": n, "y_ideal_bits": ideal_bits, "y_model_estimate_bits": model_bits, "coders": rows,
        "file": {"header_bytes": h.size,
                 "container_bytes": len(c.data) - sum(layers),  # header + the varint z length
                 "coded_bytes": sum(layers), "estimated_bits_all_latents": est_total,
                 "entropy_overhead_pct_of_file": 100 * (8 * sum(layers) - est_total) / (8 * len(c.data))},
    }


# ---------------------------------------------------------------------------- CLI memory
def cli_rss(png: str, workdir: Path, alpha: float, weights: str | None = None) -> dict:
    """Peak RSS and wall time of ``rdcodec encode`` and ``rdcodec decode`` processes (default threads)."""
    rdc, out = workdir / "cli.rdc", workdir / "cli.png"
    res = {}
    chosen = ["--weights", weights] if weights else []
    for step, args in (("encode", ["encode", png, "-o", str(rdc), "-a", str(alpha), *chosen]),
                       ("decode", ["decode", str(rdc), "-o", str(out), *chosen])):
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, str(ROOT / "bin" / "rdcodec"), *args, "--force", "-q"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        err = p.stderr.read().decode(errors="replace").strip()
        p.stderr.close()
        res[step] = {"peak_rss_mib": ru.ru_maxrss / 1024, "wall_s": time.perf_counter() - t0,
                     "exit_status": p.returncode, **({"stderr": err[-500:]} if p.returncode else {})}
    rdc.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    steps = ("encode", "decode")
    res["max_peak_rss_gib"] = max(res[s]["peak_rss_mib"] for s in steps) / 1024
    res["within_6_gib"] = res["max_peak_rss_gib"] <= 6.0 and all(res[s]["exit_status"] == 0 for s in steps)
    return res


# ---------------------------------------------------------------------------- report
def _ratio(a: dict, b: dict, key: str, bkey: str | None = None) -> float | None:
    try:
        return a[key]["total_s"] / b[bkey or key]["total_s"]
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def machine_info() -> dict:
    from importlib.metadata import version

    import compressai
    import constriction  # noqa: F401
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from rdcodec.model.fastpath import bf16_default

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "compressai": compressai.__version__, "constriction": version("constriction"),
            "transforms": "bfloat16" if bf16_default() else "float32",
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def print_summary(doc: dict) -> None:
    print("\n== encode / decode wall time (median, seconds; no file I/O) ==")
    print(f"{'image':<10}{'thr':>4}{'rdc enc':>9}{'checked':>8}{'cai enc':>9}{'ratio':>7}{'(chk)':>9}"
          f"{'rdc dec':>9}{'cai dec':>9}{'ratio':>7}")
    for row in doc["timing"]:
        r, c = row["rdcodec"], row["compressai"]

        def g(d, k):
            return f"{d[k]['total_s']:.2f}" if k in d else "err"

        def q(x):
            return f"{x:.2f}" if x is not None else "-"

        print(f"{row['image']:<10}{row['threads']:>4}{g(r, 'encode'):>9}{g(r, 'encode_check_residual'):>8}"
              f"{g(c, 'encode'):>9}{q(row['ratio']['encode']):>7}{q(row['ratio']['encode_check_residual']):>9}"
              f"{g(r, 'decode'):>9}{g(c, 'decode'):>9}{q(row['ratio']['decode']):>7}")
    print("\n== rdcodec stages (median seconds) ==")
    for row in doc["timing"]:
        r = row["rdcodec"]
        for kind in ("encode", "decode"):
            if kind in r:
                st = " ".join(f"{k}={v:.2f}" for k, v in r[kind]["stages_s"].items())
                print(f"{row['image']:<8} {row['threads']}t {kind}: {st} | file_io={r[kind]['file_io_s']:.2f}")
    e = doc.get("entropy")
    if e and "coders" in e:
        print(f"\n== entropy coding alone: {e['y_symbols']} y symbols of {e['image']} at alpha {e['alpha']:.3f} "
              f"({e['bpp']:.3f} bpp) ==")
        for c in e["coders"]:
            print(f"{c['coder'][:44]:<45} enc {c['encode_msym_per_s']:6.2f} Msym/s  dec {c['decode_msym_per_s']:6.2f} "
                  f"Msym/s  {c['bytes']} B  overhead {c['overhead_vs_ideal_pct']:+.3f}% vs ideal, "
                  f"{c['overhead_vs_model_estimate_pct']:+.3f}% vs model estimate  lossless={c['lossless']}")
        fl = e["file"]
        print(f"file: entropy overhead {fl['entropy_overhead_pct_of_file']:+.3f}% of the file, "
              f"container {fl['container_bytes']} bytes (header {fl['header_bytes']})")
    print("\n== peak RSS of rdcodec encode / decode processes ==")
    for name, r in doc["peak_rss"].items():
        if "encode" in r:
            print(f"{name:<10} encode {r['encode']['peak_rss_mib']:.0f} MiB ({r['encode']['wall_s']:.1f} s), "
                  f"decode {r['decode']['peak_rss_mib']:.0f} MiB ({r['decode']['wall_s']:.1f} s); "
                  f"<= 6 GiB: {r['within_6_gib']}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", type=Path, default=SHARED / "kodak" / "kodim23.png", help="the Kodak-size image")
    ap.add_argument("--train", type=Path, default=SHARED / "train", help="training photos for the 24 MP mosaic")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "speed", help="folder for the JSON results")
    ap.add_argument("--threads", default="1,2", help="thread counts to time (comma-separated)")
    ap.add_argument("--alpha", type=float, default=0.5, help="rdcodec rate for the timing runs")
    ap.add_argument("--reps", type=int, default=3, help="repetitions at Kodak size (median reported)")
    ap.add_argument("--reps-large", type=int, default=1, help="repetitions at 24 MP")
    ap.add_argument("--no-compressai-large", action="store_true",
                    help="skip CompressAI at 24 MP (it runs untiled: about 10 GB of memory)")
    ap.add_argument("--sizes", default="kodak,24mp", help="image sizes to time: kodak, 24mp or both")
    ap.add_argument("--weights", default=None, help="rdcodec weights to time (default: the registry's default)")
    ap.add_argument("--quick", action="store_true", help="Kodak size only, one repetition (smoke test)")
    args = ap.parse_args(argv)
    sizes = {s for s in args.sizes.split(",") if s}
    if not sizes or sizes - {"kodak", "24mp"}:
        ap.error(f"--sizes takes kodak and/or 24mp, not {args.sizes!r}")
    if args.quick:
        args.reps, sizes = 1, {"kodak"}
    threads = [int(t) for t in args.threads.split(",")]
    if not args.kodak.is_file():
        raise SystemExit(f"no such image: {args.kodak}")
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", file=sys.stderr, flush=True)

    from rdcodec.weights import resolve

    doc = {"machine": machine_info(), "weights": resolve(args.weights).name,
           "settings": {"alpha": args.alpha, "threads": threads, "reps": args.reps, "reps_large": args.reps_large,
                        "quick": args.quick, "sizes": sorted(sizes), "compressai_quality": COMPRESSAI_QUALITY},
           "images": {}, "timing": [], "peak_rss": {}}
    with tempfile.TemporaryDirectory(prefix="rdc-speed-") as tmp:
        work = Path(tmp)
        images = {"kodak": (str(args.kodak), args.reps)} if "kodak" in sizes else {}
        if "24mp" in sizes:
            large = work / "mosaic-24mp.png"
            log("building the 24 MP mosaic")
            build_large_image(large, args.train)
            images["24mp"] = (str(large), args.reps_large)
        for name, (png, reps) in images.items():
            from PIL import Image

            with Image.open(png) as im:
                doc["images"][name] = {"path": png if name == "kodak" else f"mosaic of {MOSAIC[0] * MOSAIC[1]} "
                                       f"photos from {args.train}", "width": im.width, "height": im.height}
            for t in threads:
                log(f"{name}: rdcodec, {t} thread(s)")
                r = isolated(job_rdcodec, png, t, args.alpha, reps, tmp, args.weights)
                if name == "kodak" or not args.no_compressai_large:
                    log(f"{name}: compressai mbt2018_mean, {t} thread(s)")
                    c = isolated(job_compressai, png, t, reps)
                else:
                    c = {"error": "skipped (--no-compressai-large)"}
                doc["timing"].append({"image": name, "threads": t, "rdcodec": r, "compressai": c, "ratio": {
                    "encode": _ratio(r, c, "encode"), "decode": _ratio(r, c, "decode"),
                    "encode_check_residual": _ratio(r, c, "encode_check_residual", "encode"),
                    "encode_filter": _ratio(r, c, "encode_filter", "encode"),
                    "decode_filter": _ratio(r, c, "decode_filter", "decode")}})
            log(f"{name}: peak RSS of rdcodec encode / decode")
            doc["peak_rss"][name] = cli_rss(png, work, args.alpha, args.weights)
        log("entropy coding alone")
        doc["entropy"] = isolated(job_entropy, str(args.kodak), 0.5, args.reps, args.weights)
    doc["wall_s"] = time.perf_counter() - t_start
    path = args.out / ("speed-quick.json" if args.quick else
                       "speed.json" if sizes == {"kodak", "24mp"} else f"speed-{'-'.join(sorted(sizes))}.json")
    if args.weights:  # timings of chosen weights do not replace the default's
        path = path.with_name(f"{path.stem}-{doc['weights']}.json")
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print_summary(doc)
    print(f"\nwrote {path} ({doc['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
