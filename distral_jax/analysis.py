"""Turning learning curves into the numbers and pictures the studies report.

Curves are arrays ``[runs, evaluations, tasks]`` of returns measured at ``steps [evaluations]``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def steps_to_threshold(steps: np.ndarray, curves: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """First step at which every task's return reaches its threshold, per run.

    Args:
      steps: ``[E]`` env steps of the evaluations (increasing).
      curves: ``[R, E, N]`` returns.
      threshold: ``[N]`` per-task thresholds (e.g. 0.9 × the optimal return).
    Returns:
      ``[R]`` float steps; ``inf`` for runs that never reach it.
    """
    steps = np.asarray(steps, np.float64)
    curves = np.asarray(curves, np.float64)
    if curves.ndim != 3 or curves.shape[1] != steps.shape[0]:
        raise ValueError(f"`curves` must be [runs, {steps.shape[0]}, tasks], got {curves.shape}")
    reached = np.all(curves >= np.asarray(threshold)[None, None, :], axis=-1)  # [R, E]
    first = np.argmax(reached, axis=1)
    return np.where(reached.any(axis=1), steps[first], np.inf)


def summarize_steps(values: np.ndarray) -> dict[str, float | int | None]:
    """Median and quartiles over runs (``inf`` = never reached), JSON-ready."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    # "Never" sorts last: a stand-in larger than every step count keeps the interpolation exact
    # between finite runs (np.percentile on inf gives NaN even at weight 0), and any quantile
    # that leans on a run that never got there comes out above every finite value: "never".
    never = 1e300
    largest = values[finite].max() if finite.any() else -np.inf

    def clean(x: float) -> float | None:
        return None if x > largest else float(x)

    filled = np.where(finite, values, never)
    q25, median, q75 = np.percentile(filled, [25, 50, 75]) if values.size else (np.inf,) * 3
    return {
        "median": clean(median),
        "q25": clean(q25),
        "q75": clean(q75),
        "reached": int(finite.sum()),
        "runs": int(values.size),
    }


@dataclasses.dataclass(frozen=True)
class TaskBar:
    """What a run must reach on each task, and a score that puts tasks on one scale.

    ``score(R) = (R − floor) / (reference − floor)``: 0 at the floor, 1 at the reference; a task
    is reached when its score is at least ``fraction`` (``R ≥ threshold``).

    Attributes:
      reference: ``[N]`` the optimal return (grid worlds) or a scripted controller's.
      floor: ``[N]`` score 0 (no reward, or a uniformly random policy's return).
      fraction: the bar as a score (0.9 of the optimum; 1.0 of a scripted controller).
      describes: the bar in words, for reports.
    """

    reference: np.ndarray
    floor: np.ndarray
    fraction: float
    describes: str

    @property
    def threshold(self) -> np.ndarray:
        return self.floor + self.fraction * (self.reference - self.floor)

    def of_tasks(self, task_ids) -> TaskBar:
        """The bar of some of the tasks, by index."""
        ids = np.asarray(task_ids)
        return dataclasses.replace(self, reference=self.reference[ids], floor=self.floor[ids])

    def score(self, returns: np.ndarray) -> np.ndarray:
        """Returns ``[..., N]`` on the common scale."""
        return (np.asarray(returns) - self.floor) / (self.reference - self.floor)


def task_bar(env, episode_length: int) -> TaskBar:
    """The bar of a grid world (90% of the exact optimum, floor 0) or of the point mass (its
    scripted go-around controller's return, floor: random actions), for ``env``'s tasks (a
    ``TaskSubset`` picks its tasks' entries by ``task_ids``)."""
    # The families' helpers describe all tasks of the family a subset was drawn from.
    if hasattr(env, "optimal_returns"):
        reference = np.asarray(env.optimal_returns(episode_length))
        bar = TaskBar(reference, np.zeros_like(reference), 0.9, "90% of the optimal return")
        return bar.of_tasks(env.task_ids)
    if hasattr(env, "reference_returns"):
        returns = lambda p: np.asarray(env.reference_returns(p, episode_length, 64))
        bar = TaskBar(
            returns("scripted"), returns("random"), 1.0, "the scripted controller's return"
        )
        return bar.of_tasks(env.task_ids)
    raise ValueError(f"`env`: no reference return known for {type(env.unwrapped).__name__}")


def area_under_curve(steps: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Normalised area under learning curves: the mean score over the run, ``[R, E] -> [R]``
    (trapezoids over ``steps``, divided by the steps covered)."""
    steps = np.asarray(steps, np.float64)
    scores = np.asarray(scores, np.float64)
    if steps.size < 2:
        return scores[:, -1]
    widths = np.diff(steps)
    heights = 0.5 * (scores[:, 1:] + scores[:, :-1])
    return (heights * widths).sum(axis=1) / (steps[-1] - steps[0])


def quartiles(values: np.ndarray) -> dict[str, float]:
    """Median and quartiles of finite values, JSON-ready."""
    q25, median, q75 = np.percentile(np.asarray(values, np.float64), [25, 50, 75])
    return {"median": float(median), "q25": float(q25), "q75": float(q75)}


def format_steps(s: Mapping | None) -> str:
    """``summarize_steps``'s dict as "102k [76.8k, 128k] 7/8" (median [q25, q75] reached/runs)."""
    if not s:
        return "–"
    if s.get("median") is None:
        return f"never ({s['reached']}/{s['runs']})"
    q75 = "never" if s.get("q75") is None else _short(s["q75"])
    return f"{_short(s['median'])} [{_short(s['q25'])}, {q75}] {s['reached']}/{s['runs']}"


def _short(x: float) -> str:
    """A step count as 850, 13.2k, 102k or 1.5M."""
    return f"{x:.0f}" if x < 1e3 else f"{x / 1e3:.3g}k" if x < 1e6 else f"{x / 1e6:.3g}M"


def ratio(numerator: Mapping, denominator: Mapping) -> float | None:
    """Ratio of two ``summarize_steps`` medians; None when either never reached the bar."""
    a, b = numerator.get("median"), denominator.get("median")
    return None if a is None or b is None or b == 0 else float(a / b)


def fresh_output_dir(path: str | Path) -> Path:
    """Creates ``path`` for a new run's results without losing an earlier run's.

    If ``path`` already holds files, they are moved aside to ``<path>-<timestamp>`` (the time of
    their newest file) before ``path`` is created empty.
    """
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        newest = max(f.stat().st_mtime for f in path.rglob("*"))
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(newest))
        backup = path.with_name(f"{path.name}-{stamp}")
        k = 1
        while backup.exists():
            backup = path.with_name(f"{path.name}-{stamp}-{k}")
            k += 1
        path.rename(backup)
        print(f"earlier results in {path} moved to {backup}", flush=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_record(wall_time_s: float | None = None) -> dict:
    """What a results report needs to say how a study's numbers were produced.

    Returns ``{"command", "date", "machine", "jax", "wall_time_s"}``: the command line as typed
    from the repository root (the script's path relative to the working directory), the UTC
    date, the processor, core count, memory and JAX device it ran on.
    """
    import jax  # noqa: PLC0415 (the record is made after training, when JAX is up anyway)

    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(Path.cwd().resolve())
    except ValueError:  # launched from elsewhere: name it as from the repository root
        script = Path(script.parent.name, script.name)
    device = jax.devices()[0]
    return {
        "command": shlex.join(["python", script.as_posix(), *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "processor": _processor_name(),
            "cores": os.cpu_count(),
            "memory_gib": _memory_gib(),
            "backend": jax.default_backend(),
            "device": device.device_kind,
            "devices": jax.device_count(),
        },
        "jax": jax.__version__,
        "wall_time_s": wall_time_s,
    }


def _processor_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return round(pages / 2**30, 1)


def run_families(
    families: Sequence[str],
    run_family: Callable[[str], dict],
    print_table: Callable[[str, dict], None],
    out: Path,
    summary: dict,
) -> dict:
    """A study's loop: ``summary["families"][f] = run_family(f)`` for each family, printed as
    it ends; then the wall time and ``run_record`` are added and ``out/summary.json`` written."""
    start = time.perf_counter()
    summary.setdefault("families", {})
    for family in families:
        summary["families"][family] = run_family(family)
        print_table(family, summary["families"][family])
    return write_summary(out, summary, start)


def write_summary(out: Path, summary: dict, start: float) -> dict:
    """A study's last step: the wall time since ``start`` (``time.perf_counter()``) and
    ``run_record`` added to ``summary``, written to ``out/summary.json``, and said."""
    summary["wall_time_s"] = time.perf_counter() - start
    summary["run"] = run_record(summary["wall_time_s"])
    write_json(Path(out) / "summary.json", summary)
    print(f"\nwrote {out}/summary.json in {summary['wall_time_s']:.0f} s")
    return summary


def write_json(path: Path, payload: Mapping) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(payload), indent=2, sort_keys=False) + "\n")


def jsonable(x):
    """Plain JSON data from metrics: arrays (numpy or jax) as lists, NaN and inf as null."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "__array__") and not isinstance(x, np.generic):
        return jsonable(np.asarray(x).tolist())
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def plot_learning_curves(
    path: Path,
    steps: np.ndarray,
    curves: Mapping[str, np.ndarray],
    optimal: np.ndarray | None = None,
    title: str = "",
    ylabel: str = "episode return",
    panels: Sequence[str] = ("mean over tasks", "worst task"),
) -> None:
    """Median (line) and interquartile band over runs for each method.

    Args:
      path: PNG to write.
      steps: ``[E]``.
      curves: method -> ``[R, E, N]`` returns.
      optimal: ``[N]`` optimal returns; drawn as 90% reference lines when given.
      panels: which reductions over tasks to show ("mean over tasks", "worst task").
    """
    import matplotlib  # noqa: PLC0415 (plotting is optional at import time)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    reducers = {"mean over tasks": np.mean, "worst task": np.min}
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for name, c in curves.items():
            per_run = reducers[panel](np.asarray(c), axis=-1)  # [R, E]
            q25, med, q75 = np.percentile(per_run, [25, 50, 75], axis=0)
            (line,) = ax.plot(steps, med, label=name)
            ax.fill_between(steps, q25, q75, alpha=0.2, color=line.get_color())
        if optimal is not None:
            ref = reducers[panel](np.asarray(optimal))
            ax.axhline(0.9 * ref, color="k", ls="--", lw=0.8, label="90% of optimal")
        ax.set_title(f"{title} — {panel}" if title else panel)
        ax.set_xlabel("environment steps (all tasks)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_task_curves(
    path: Path,
    steps: np.ndarray,
    returns: np.ndarray,
    pi0_returns: np.ndarray | None = None,
    title: str = "",
) -> None:
    """One line per task (the median over runs, with the interquartile band when there are
    several), and π_0's mean over tasks dashed.

    Args:
      path: PNG to write.
      steps: ``[E]`` env steps of the evaluations.
      returns: ``[E, N]`` or ``[E, R, N]`` the task policies' returns.
      pi0_returns: the same shape, π_0's returns on each task (optional).
    """
    import matplotlib  # noqa: PLC0415 (plotting is optional at import time)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    runs = lambda x: np.asarray(x, float).reshape(len(steps), -1, np.shape(x)[-1])  # [E, R, N]
    returns = runs(returns)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for task in range(returns.shape[-1]):
        q25, med, q75 = np.nanpercentile(returns[..., task], [25, 50, 75], axis=1)
        (line,) = ax.plot(steps, med, label=f"task {task}")
        if returns.shape[1] > 1:
            ax.fill_between(steps, q25, q75, alpha=0.15, color=line.get_color())
    if pi0_returns is not None:
        pi0 = np.nanmedian(np.nanmean(runs(pi0_returns), axis=-1), axis=1)
        ax.plot(steps, pi0, "k--", label="π_0 (mean over tasks)")
    ax.set_title(title)
    ax.set_xlabel("environment steps (all tasks)")
    ax.set_ylabel("episode return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_variants_per_task(
    path: Path,
    results: Mapping[str, Any],
    titles: Sequence[str],
    curve: str = "sampled",
    prior_curve: str = "pi0_sampled",
    with_prior: Sequence[str] = (),
    bar: float | None = None,
    ylabel: str = "episode return",
    ylim: tuple[float, float] | None = None,
    cols: int = 4,
) -> None:
    """One panel per task: each variant's ``curve`` (median over seeds) against env steps and,
    dotted, its ``prior_curve`` (π_0 acting alone) for the variants in ``with_prior``.

    Args:
      path: PNG to write.
      results: variant -> ``sweeps.VariantResult`` (``steps [E]``, ``curves[name] [S, E, N]``).
      titles: one per task.
      curve, prior_curve: the curves drawn.
      with_prior: the variants whose π_0 is drawn (those that distil one).
      bar: a horizontal line (a threshold, a success bar), or ``None``.
      ylabel, ylim: the y axis.
      cols: panels per row.
    """
    import math  # noqa: PLC0415

    import matplotlib  # noqa: PLC0415 (plotting is optional at import time)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.ticker import EngFormatter  # noqa: PLC0415

    n = len(titles)
    cols = min(n, cols)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_visible(False)
            continue
        for name, r in results.items():
            (line,) = ax.plot(r.steps, np.median(r.curves[curve][:, :, i], axis=0), label=name)
            if name in with_prior:
                prior = np.median(r.curves[prior_curve][:, :, i], axis=0)
                ax.plot(r.steps, prior, ls=":", color=line.get_color(), label=f"{name} π0 alone")
        if bar is not None:
            ax.axhline(bar, color="gray", ls="--", lw=0.8, label="bar")
        ax.set_title(titles[i], fontsize=8)
        ax.xaxis.set_major_formatter(EngFormatter())  # 100k, 10M: long numbers overlap
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("env steps (all tasks)")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_steps_bars(path: Path, table: Mapping[str, Mapping], title: str = "") -> None:
    """Bar chart of median steps-to-threshold with interquartile whiskers (never = hatched)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = list(table)
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2, 4))
    top = max([t["q75"] or t["median"] or 0 for t in table.values()] + [1.0])
    for k, name in enumerate(names):
        t = table[name]
        if t["median"] is None:
            ax.bar(k, top * 1.05, color="none", edgecolor="gray", hatch="//")
            ax.text(k, top * 0.5, "not\nreached", ha="center", fontsize=7, color="gray")
            continue
        low = t["median"] - (t["q25"] or t["median"])
        high = (t["q75"] or top * 1.05) - t["median"]
        ax.bar(k, t["median"], yerr=[[low], [high]], capsize=3)
        ax.text(k, t["median"], f"{t['reached']}/{t['runs']}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("env steps to 90% of optimal (all tasks)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
