"""Markdown tables from a ``rd.py`` summary: ``python benchmarks/report.py benchmarks/results/kodak``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rdcodec.eval.bjontegaard import bd_table  # noqa: E402

OWN_CURVES = {"rdcodec-beta0.json", "rdcodec-beta1.json"}  # the run's own curves, never its anchors


def read_curve(path: Path) -> dict | None:
    """The ``results`` of a curve JSON (a dict with ``results.bpp`` and ``results.psnr-rgb``), else None.

    Decided by content, not by name: the summary, the per-image records and any other JSON that
    lands in the folder (``benchmarks/beta.py``'s output, say) are not curves.
    """
    try:
        r = json.loads(path.read_text()).get("results")
    except (ValueError, AttributeError):
        return None
    return r if isinstance(r, dict) and "bpp" in r and "psnr-rgb" in r else None


def anchor_curves(folder: Path) -> dict[str, dict]:
    """Every curve in ``folder`` except the run's own, by file stem, in name order."""
    curves = {p.stem: read_curve(p) for p in sorted(folder.glob("*.json")) if p.name not in OWN_CURVES}
    return {k: v for k, v in curves.items() if v is not None}


def fmt(v, spec=".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def plot(curves: dict[str, dict], path: Path) -> None:
    """PSNR against bpp of CompressAI-style ``results`` dicts, rdcodec solid, the rest dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=120)
    for name, r in curves.items():
        style = "-o" if name.startswith("rdcodec") else "--."
        ax.plot(r["bpp"], r["psnr-rgb"], style, label=name, markersize=4, linewidth=1.6 if "rdcodec" in name else 1)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (RGB, dB)")
    ax.set_xlim(0, 2.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Kodak, real file sizes")
    fig.tight_layout()
    fig.savefig(path)


def steps_text(refine: int | list[int]) -> str:
    """A run's refinement steps in words: ``10 steps``, or ``20 -> 10 steps by alpha`` for a list per alpha."""
    return f"{refine[0]} -> {refine[-1]} steps by alpha" if isinstance(refine, list) else f"{refine} steps"


def report(s: dict, folder: Path) -> str:
    """The README text of the summary ``s`` of ``folder``'s run (its BD table and curves as
    :func:`refresh_summary` left them); draws ``folder/rd.png``."""
    c0, c1 = s["curves"]["rdcodec beta=0"], s["curves"]["rdcodec beta=1"]
    refine = f", encoder-side latent refinement of {steps_text(s['refine'])}" if s.get("refine") else ""
    refine += f" for machines ({s['machines']})" if s.get("machines") else ""
    lines = [f"Weights `{s['weights']}`{refine}, {s['images']} images, real file sizes.", "",
             "| alpha | bpp (beta=0) | PSNR beta=0 | JPEG PSNR at same bpp | images beating JPEG | "
             "bpp (base only) | PSNR beta=1 |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for j, a in enumerate(s["alpha"]):
        lines.append(f"| {a:.1f} | {c0['bpp'][j]:.3f} | {c0['psnr-rgb'][j]:.2f} | "
                     f"{fmt(s['jpeg_psnr_at_matched_bpp_beta0'][j])} | "
                     f"{s['images_beating_jpeg_beta0'][j]}/{s['images_in_jpeg_range_beta0'][j]} | "
                     f"{c1['bpp'][j]:.3f} | {c1['psnr-rgb'][j]:.2f} |")
    lines += ["", f"bpp strictly increasing with alpha on every image: {s['bpp_strictly_increasing_every_image']}; "
              f"beta=0 above beta=1 on every image and alpha: {s['beta0_above_beta1_every_image_and_alpha']}.", "",
              "| comparison | BD-rate (PSNR) | BD-PSNR |", "|---|---:|---:|"]
    plot(s["curves"], folder / "rd.png")
    for k, v in s["bd"].items():
        if "error" in v:
            lines.append(f"| {k} | {v['error']} | |")
        else:
            lines.append(f"| {k} | {v['bd_rate_percent']:+.1f}% | {v['bd_psnr_db']:+.2f} dB |")
    worst = max((p["below_line_db"] for p in s["smoothness_beta0"]), default=None)
    lines += ["", "Interpolated alpha points: none (every alpha is a trained level)." if worst is None else
              f"Interpolated alpha points: at most {fmt(worst)} dB below the line joining their trained "
              "neighbours (positive = below)."]
    return "\n".join(lines) + "\n"


def refresh_summary(folder: Path) -> dict:
    """Bring ``summary.json``'s ``bd`` table and ``curves`` up to the anchor curves now in ``folder``
    (one archived or added after the run), so the summary and the README agree; returns it."""
    path = folder / "summary.json"
    s = json.loads(path.read_text())
    ours = {k: s["curves"][k] for k in ("rdcodec beta=0", "rdcodec beta=1")}
    anchors = anchor_curves(folder)
    s["bd"] = bd_table(ours, anchors)
    s["curves"] = {**ours, **anchors}
    path.write_text(json.dumps(s, indent=1))
    return s


def write_readme(folder: Path) -> str:
    """The tables of ``folder``'s run, written to its README.md (returned too); ``summary.json``
    is refreshed first (:func:`refresh_summary`)."""
    text = report(refresh_summary(folder), folder)
    (folder / "README.md").write_text(text)
    return text


if __name__ == "__main__":
    print(write_readme(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/kodak")))
