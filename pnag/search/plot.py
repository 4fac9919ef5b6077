"""A run on a plot: accuracy against latency, the run's table and its Pareto front, and the answers for
a few budgets, each marked measured or predicted (``pnag plot``, and ``search.png`` of ``pnag search``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import PnagError

_KIND_WORDS = {"measured": "accuracy measured", "predicted": "accuracy predicted", "proxy": "proxy score computed",
               "predicted-proxy": "proxy score predicted"}


def plot_run(run, path: str | Path, budgets=None, samples: int = 16, gens=None, title: str = "") -> Path:
    """Accuracy vs latency (PNG): the run's table (measured accuracies, or proxy scores) and its Pareto front,
    and each budget's answer, marked measured or predicted and joined to its budget by a dotted line (so that
    an architecture answering several budgets shows each of them). ``gens``: the answers when already
    generated for ``budgets``; ``title``: a first title line (the device and the sources follow)."""
    import numpy as np
    from matplotlib.figure import Figure  # not pyplot: a library leaves the user's backend alone
    from matplotlib.transforms import blended_transform_factory

    from .._io import save_figure_atomic
    from ..latency.describe import device_words
    from .answers import accuracy_kind, is_proxy, latency_kind
    from .pareto import pareto_front

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise PnagError(f"-o: {str(path)!r}; allowed: a .png file name")
    t = run.training_table
    acc, lat = t["accuracy"], t["latency_ms"]
    lo, hi = run.budget_range
    if budgets is None:
        budgets = np.linspace(max(lo, run.min_latency_ms), hi, 30)
    if gens is None:
        gens = run.generate(budgets, samples=samples)
    proxy, lat_is = is_proxy(run), latency_kind(run)
    table_is = accuracy_kind(run, True)
    front = pareto_front(acc, lat)
    order = np.argsort(lat[front])
    fig = Figure(figsize=(8, 5.2), dpi=120)
    ax = fig.subplots()
    what = "proxy score" if proxy else f"{table_is} top-1"
    ax.scatter(lat, acc, s=6, c="0.72", label=f"{what} of {len(acc)} architectures (latency: {lat_is})")
    ax.plot(lat[front][order], acc[front][order], "-", c="0.3", lw=1, label=f"Pareto front of these ({what})")
    ga = np.array([g.predicted_accuracy for g in gens])
    gl = np.array([g.predicted_latency_ms for g in gens])
    gb = np.array([g.budget for g in gens])
    kinds = [accuracy_kind(run, g.measured) for g in gens]
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    for i, (b, a, la) in enumerate(zip(gb, ga, gl)):  # every budget: a tick, and a dotted line to its answer
        ax.plot([b, b], [0, 0.04], c="C0", lw=1.2, transform=trans, zorder=2)
        ax.plot([la, b], [a, a], ":", c="C0", lw=0.9, zorder=2)
        if len(gb) <= 12:
            ax.text(b, 0.05, str(i + 1), transform=trans, ha="center", va="bottom", fontsize=7, color="C0")
    ax.plot([], [], ":", c="C0", marker="|", label=f"budgets 1-{len(gb)} (ticks) and their answers (dotted)")
    styles = {"measured": dict(marker="o", facecolors="C2", edgecolors="k"),
              "proxy": dict(marker="o", facecolors="C2", edgecolors="k"),
              "predicted": dict(marker="D", facecolors="none", edgecolors="C3"),
              "predicted-proxy": dict(marker="D", facecolors="none", edgecolors="C3")}
    for kind in dict.fromkeys(kinds):
        sel = np.array([k == kind for k in kinds])
        n_arch = len({g.arch for g, s in zip(gens, sel) if s})
        ax.scatter(gl[sel], ga[sel], s=34, lw=1.2, zorder=4, **styles[kind],
                   label=f"answers, {_KIND_WORDS[kind]} ({n_arch} architectures)")
    if len(gb) <= 12:  # which budgets each answer serves (one architecture may serve several)
        served: dict[tuple[float, float], list[int]] = {}
        for i, (a, la) in enumerate(zip(ga, gl)):
            served.setdefault((round(float(la), 6), round(float(a), 6)), []).append(i + 1)
        for (la, a), ids in served.items():
            ax.annotate(",".join(map(str, ids)), (la, a), xytext=(-4, 5), textcoords="offset points", fontsize=7,
                        ha="right", color="C3" if "predicted" in kinds[ids[0] - 1] else "C2")
    ax.axvspan(lo, hi, color="C0", alpha=0.06, label=f"trained budget range {lo:g}..{hi:g} ms")
    ax.set_xlabel(f"latency (ms, {lat_is}: {run.config.latency})")
    ax.set_ylabel(f"{run.config.accuracy.split(':', 1)[-1]} score (proxy, not an accuracy)" if proxy
                  else f"ImageNet top-1 accuracy (%, {table_is} in the table)" if table_is == "measured"
                  else "top-1 accuracy (%, predicted)")
    # keep the whole front and every answer in view; the cloud below the front may be cut
    view = np.concatenate([acc[front], ga])
    pad = 0.06 * float(np.ptp(view) or 1.0)
    ax.set_ylim(float(view.min()) - 3 * pad, float(max(view.max(), acc.max())) + 2 * pad)
    device = device_words(run.lat_source.source)
    head = title or f"{len(gb)} budgets, {lo:g}..{hi:g} ms"
    ax.set_title(f"{head}\nlatency: {run.config.latency} = {device}\naccuracy: {run.config.accuracy} ({what} "
                 f"of {len(acc)}{'' if proxy else ' architectures'})", fontsize=8)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    ax.grid(alpha=0.3)
    return save_figure_atomic(fig, path, bbox_inches="tight")


__all__ = ["plot_run"]
