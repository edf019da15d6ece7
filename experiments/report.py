"""Rebuilds ``docs/results.md`` from the ``summary.json`` and PNGs the studies left in ``runs/``.

The page holds the claims, then one section per study: how it was run (command, date, wall
time, budget, machine), its tables, and its figures, copied next to the page (``runs/`` is not
versioned) and linked relative to it.

    python experiments/report.py
    python experiments/report.py --runs /tmp/runs --out /tmp/results.md --figures /tmp/results

Adding a study: write ``<study>_section(data: dict) -> str`` (its tables, from one summary) and
give it to the study's ``Section`` in ``SECTIONS``. A claim is fed by the ``measure`` function of
its ``Claim`` in ``CLAIMS``: it receives the study's ``Found`` folders and returns markdown.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from distral_jax import analysis, cli


@dataclasses.dataclass(frozen=True)
class Report:
    """Write the results page from the studies' outputs (flags from these fields)."""

    runs: str = "runs"
    """folder holding one output folder per study"""
    out: str = "docs/results.md"
    """the markdown page to write"""
    figures: str = "docs/results"
    """where the PNGs are copied (linked relative to --out)"""
    notes: str = str(Path(__file__).with_name("results_notes.md"))
    """hand-written reasons under each claim: its sections "## 1", "## 2", "## 3" (optional)"""


@dataclasses.dataclass(frozen=True)
class Found:
    """One output folder of a study: its summary and its place under ``--runs``."""

    folder: Path
    data: dict
    name: str = ""
    """the subfolder (a family, an env id); empty when the study writes one folder"""


# ----------------------------------------------------------------------------- formatting


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


steps_cell = analysis.format_steps  # "102k [76.8k, 128k] 7/8"


def num(x: float | None) -> str:
    """A return or fraction with three significant digits (– for a missing value)."""
    return "–" if x is None else f"{x:.3g}" if abs(x) < 1e3 else f"{x:,.0f}"


def nums(xs: Sequence[float | None] | None) -> str:
    """Per-task values, comma separated."""
    return ", ".join(num(x) for x in xs) if xs else "–"


def seconds(s: float | None) -> str:
    """A duration in s, min or h."""
    if s is None:
        return "not recorded"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


# ----------------------------------------------------------------------------- the header


def train_budget(data: dict) -> str:
    """The training budget of a study driven by a ``TrainConfig`` (``args.train``)."""
    args = data.get("args", {})
    t = args.get("train", {})
    profile = f"; profile {args['profile']}" if args.get("profile") else ""
    return (
        f"{t.get('total_env_steps', 0):,} env steps per run (all tasks); seeds: "
        f"{args.get('seeds')}; {t.get('learner')}, {t.get('num_envs')} envs, hidden "
        f"{t.get('hidden_sizes')}, β {t.get('beta')}, learning rate {t.get('learning_rate')}"
        + profile
    )


def header(data: dict, budget: Callable[[dict], str]) -> str:
    """How a summary was produced: command, date, wall time, budget, machine."""
    run = data.get("run") or {}
    m = run.get("machine")
    if m:
        machine = (
            f"{m.get('processor')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB; "
            f"JAX {run.get('jax')} on {m.get('backend')} ({m.get('device')} ×{m.get('devices')})"
        )
    else:
        machine = "not recorded" + (f" (device: {data['device']})" if "device" in data else "")
    command = f"`{run['command']}`" if run.get("command") else "not recorded"
    wall = run.get("wall_time_s") or data.get("wall_time_s") or data.get("seconds_total")
    return (
        f"- Command: {command}\n- Date: {run.get('date', 'not recorded')}; wall time "
        f"{seconds(wall)}\n- Budget: {budget(data)}\n- Machine: {machine}"
    )


# ----------------------------------------------------------------------------- the studies


def tabular_budget(data: dict) -> str:
    """The tabular study's budget, from its ``config``."""
    c = data["config"]
    steps = c["num_updates"] * c["rollout_length"] * c["num_envs"] * c["num_tasks"]
    return (
        f"sampled: seeds: {c['seeds']}, {c['num_updates']} updates × {c['rollout_length']} steps "
        f"× {c['num_envs']} envs × {c['num_tasks']} tasks = {steps:,} env steps per run; "
        f"exact: {c['rounds']} rounds; {c['layout']}, α {c['alpha']}, β {c['beta']}"
    )


STEP_KEYS = ("greedy_mean", "greedy_worst", "sampled_mean")


def tabular_section(data: dict) -> str:
    """Exact Distral's objective and π0's entropy; sampled learning's steps to 90%."""
    ex = data["exact"]
    joint = ex["joint_objective_history"]
    rooms = ", ".join(
        f"{room} {e['occupancy_weighted']:.2f}" + (" (goals)" if e["has_goals"] else "")
        for room, e in ex["pi0_entropy_by_room"].items()
    )
    exact = (
        f"Exact Distral: joint objective {joint[0]:.3f} → {joint[-1]:.3f} over {len(joint) - 1} "
        f"half-steps (smallest change {ex['min_joint_step_change']:+.1e}); π0 entropy (nats, "
        f"occupancy-weighted) by room: {rooms}."
    )
    cell = lambda per_seed: steps_cell(  # per-seed steps, None = never reached
        analysis.summarize_steps([float("inf") if s is None else s for s in per_seed])
    )
    rows = [
        [method, f"{r['beta']:g}", *map(cell, (r["steps_to_90"][k] for k in STEP_KEYS)),
         num(r["final_fraction_of_optimal_median"]), num(r["final_worst_task_fraction_median"])]
        for method, r in data["sampled"].items()
    ]  # fmt: skip
    head = ["method", "β", "greedy, mean over tasks", "greedy, every task", "sampled, mean",
            "final fraction of optimal", "final worst task"]  # fmt: skip
    return (
        f"{exact}\n\nSampled learning: env steps (all tasks) until the return reaches 90% of "
        f"the optimum, median [q25, q75] reached/runs:\n\n{table(head, rows)}"
    )


def each(entries: Mapping[str, dict], render: Callable[[str, dict], str]) -> str:
    """``render(name, entry)`` of every design or family of a summary, blank lines between."""
    return "\n\n".join(render(name, entry) for name, entry in entries.items())


def deep_section(data: dict) -> str:
    """Per design: steps to 90% of optimal on every task, final returns, Distral / baselines."""
    return each(data["designs"], deep_design)


def deep_design(design: str, d: dict) -> str:
    """One design's table of steps to 90% and final returns, and its ratios."""
    rows = [
        [v, steps_cell(r["steps_to_90_greedy"]), steps_cell(r["steps_to_90_sampled"]),
         num(r["final_return_mean"]), num(r["final_return_worst_task"]),
         num(r.get("final_pi0_return_mean"))]
        for v, r in d["results"].items()
    ]  # fmt: skip
    head = ["variant", "steps to 90%, greedy", "steps to 90%, sampled", "final return",
            "final worst task", "final π0 return"]  # fmt: skip
    return (
        f"**{design}** ({d['num_tasks']} tasks, episodes of {d['episode_length']} steps)\n\n"
        f"Env steps (all tasks) until the return is 90% of the optimum on every task, median "
        f"[q25, q75] reached/runs:\n\n{table(head, rows)}\n\n{ratio_table(d['ratios'])}"
    )


def ratio_table(ratios: Mapping[str, float | None]) -> str:
    """``{"d/b (mode)": ratio}`` as a table of Distral / baseline medians, greedy and sampled."""
    pairs: dict[str, dict[str, str]] = {}
    for key, r in ratios.items():
        pair, mode = key.rsplit(" (", 1)
        pairs.setdefault(pair.replace("/", " / "), {})[mode.rstrip(")")] = (
            "–" if r is None else f"{r:.2f}"
        )
    rows = [[p, m.get("greedy", "–"), m.get("sampled", "–")] for p, m in pairs.items()]
    return table(["median steps ratio", "greedy", "sampled"], rows) if rows else ""


def _median(steps: Mapping) -> str:
    """A ``summarize_steps`` dict's median alone: "102k", or "never"."""
    return "never" if steps.get("median") is None else analysis.format_steps(steps).split()[0]


def brax_section(data: dict) -> str:
    """Final returns per task (and steps to the scripted return, point mass)."""
    head = ["variant", "final return per task (sampled)", "greedy", "π0 alone (greedy)"]
    scripted = "scripted_return" in data
    if scripted:
        head += ["steps to scripted, sampled", "greedy"]
    reference = data.get("reference")
    if reference:
        head += [f"steps to {reference['learner']}'s final return", "per task (median)"]
    rows = []
    for v, r in data["variants"].items():
        row = [v, nums(r["final_return_sampled"]), nums(r["final_return_greedy"]),
               nums(r.get("final_pi0_return_greedy"))]  # fmt: skip
        if scripted:
            row += [steps_cell(r.get(f"steps_to_scripted_{m}")) for m in ("sampled", "greedy")]
        if reference:
            row.append(steps_cell(r.get("steps_to_reference_sampled")))
            per_task = r.get("steps_to_reference_per_task_sampled") or []
            row.append(", ".join(_median(t) for t in per_task) or "–")
        rows.append(row)
    refs = f"Random policy: {nums(data.get('random_policy_return'))}."
    if scripted:
        refs += f" Scripted controller: {nums(data['scripted_return'])}."
    if reference:
        refs += (
            f" Reference: {reference['learner']} {reference['variant']}'s final return (sampled) "
            f"after {reference['env_steps']:,} env steps, {nums(reference['final_return_sampled'])}"
            " — steps until a variant reaches it on every task."
        )
    return f"{table(head, rows)}\n\n{refs}"


def minigrid_section(data: dict) -> str:
    """Returns per task at the start and end, and steps to the threshold on every task."""
    tasks = "; ".join(f"{i}: {t}" for i, t in enumerate(data.get("tasks", [])))
    rows = [
        [v, nums(r["initial_return_sampled"]), nums(r["final_return_sampled"]),
         nums(r.get("final_pi0_return_sampled")), steps_cell(r["steps_to_threshold_sampled"]),
         steps_cell(r["steps_to_threshold_greedy"])]
        for v, r in data["variants"].items()
    ]  # fmt: skip
    head = ["variant", "start (sampled)", "end (sampled)", "π0 alone (sampled)",
            f"steps to {data['threshold']}, sampled", "greedy"]  # fmt: skip
    return f"Tasks: {tasks}. Returns per task, median over seeds:\n\n{table(head, rows)}"


def metaworld_section(data: dict) -> str:
    """Success rate per task and its mean at the end, steps to the success bar, references."""
    bar = data["success_bar"]
    head = ["variant", "mean success (greedy)", "sampled", "π0 alone (greedy)",
            "success per task (greedy)", f"tasks at {bar}", f"steps to {bar} per task (median)",
            "steps/s"]  # fmt: skip

    def mean(xs):  # π_0's success: null (NaN) for the variants without one
        xs = [x for x in xs if x is not None]
        return num(sum(xs) / len(xs)) if xs else "–"

    rows = [
        [v, num(r["final_success_mean_greedy"]), num(r["final_success_mean_sampled"]),
         mean(r.get("final_pi0_success_greedy") or []), nums(r["final_success_greedy"]),
         f"{r['tasks_at_bar_greedy']}/{len(data['tasks'])}",
         ", ".join(_median(t) for t in r["steps_to_bar_per_task_greedy"]),
         f"{r['training_sps_of_its_program']:,.0f}"]
        for v, r in data["variants"].items()
    ]  # fmt: skip
    refs = "; ".join(
        f"{r['method']} {r['mean_success']} at {r['env_steps']} ({r['source']})"
        for r in data.get("references", [])
    )
    return (
        f"Tasks: {', '.join(data['tasks'])}. Protocol: {data.get('protocol', 'not recorded')}. "
        "Success rates at the end (the greedy policy, as the field evaluates; sampled for "
        f"comparison), median over seeds:\n\n{table(head, rows)}\n\n"
        f"Published MT10 mean success rates (other code bases, quoted, not reproduced): {refs}."
    )


# ----------------------------------------------------------------------------- the registry

BACKUP = re.compile(r"-\d{8}-\d{6}(-\d+)?$")  # folders that analysis.fresh_output_dir moved aside


def robustness_budget(data: dict) -> str:
    """The robustness grid and each family's budget per run."""
    g = data["grid"]
    families = "; ".join(
        f"{name}: {f['config']['total_env_steps']:,} env steps per run ({f['learner']}, "
        f"{f['num_tasks']} tasks)"
        for name, f in data["families"].items()
    )
    return (
        f"profile {data['profile']}: learning rates {g['learning_rates']} × β {g['betas']} × "
        f"{g['seeds']} paired seeds per variant (baselines also at 2β); {families}"
    )


def robustness_section(data: dict) -> str:
    """Per family: fractions reaching the bar, steps to it, AUC and the sorted final scores."""
    return each(data["families"], robustness_family)


def robustness_family(name: str, f: dict) -> str:
    """One family's robustness table (and its late tasks' steps, with a curriculum)."""
    rows = []
    for v, r in f["variants"].items():
        auc = r["area_under_score_curve"]
        scores = r["sorted_setting_scores"]
        rows.append(
            [
                v,
                num(r["fraction_of_runs_reaching"]),
                num(r["fraction_of_settings_reaching"]),
                steps_cell(r["steps_to_bar"]),
                f"{num(auc['median'])} [{num(auc['q25'])}, {num(auc['q75'])}]",
                ", ".join(f"{x:.2f}" for x in scores),
            ]
        )
    text = (
        f"#### {name}\n\nBar: {f['bar']} on every task. Score: return / reference "
        "(grid worlds), (return − random) / (scripted − random) (point mass).\n\n"
        + table(
            [
                "variant",
                "runs reaching",
                "settings reaching",
                "steps to bar",
                "AUC of score",
                "final score per setting, best first",
            ],
            rows,
        )
    )
    late = {
        v: r["late_tasks_steps_after_introduction"]
        for v, r in f["variants"].items()
        if "late_tasks_steps_after_introduction" in r
    }
    if late:
        text += (
            f"\n\nLate tasks (entering at {max(f['task_start_steps']):,} env steps): steps "
            "after their introduction until every late task is at the bar, all runs.\n\n"
            + table(
                ["variant", "steps after introduction"],
                [[v, steps_cell(x)] for v, x in late.items()],
            )
        )
    return text


def transfer_budget(data: dict) -> str:
    """Each family's phase budgets."""
    return (
        "; ".join(
            f"{name}: phase 1 {f['phase1_config']['total_env_steps']:,} env steps on "
            f"{len(f['trained_on'])} tasks, phase 2 {f['phase2_config']['total_env_steps']:,} on "
            f"{len(f['held_out'])} held-out tasks, {f['seeds']} paired seeds"
            for name, f in data["families"].items()
        )
        + f" (profile {data['profile']})"
    )


def transfer_section(data: dict) -> str:
    """Per family: steps to the bar on the held-out tasks, and the paired ratios."""
    return each(data["families"], transfer_family)


def transfer_family(name: str, f: dict) -> str:
    """One family's held-out steps to the bar and paired ratios."""
    teachers = ", ".join(f"{t} {num(q['median'])}" for t, q in f["phase1_final_score"].items())
    ratios = [
        [pair, num(r["ratio_of_medians"]), *ratio_quartiles(r["per_seed"])]
        for pair, r in f["ratios"].items()
    ]
    return (
        f"#### {name}\n\nTrained on tasks {f['trained_on']}, held out {f['held_out']}; bar: "
        f"{f['bar']} on every held-out task. Phase-1 final score (median): {teachers}.\n\n"
        + table(
            ["method", "env steps to the bar (held-out tasks)"],
            [[m, steps_cell(x)] for m, x in f["steps_to_bar"].items()],
        )
        + "\n\n"
        + table(["ratio", "of medians", "per seed median", "q25", "q75", "seeds"], ratios)
        + (f"\n\nRatios count {f['ratios_count']}." if "ratios_count" in f else "")
    )


def ratio_quartiles(q: Mapping) -> list[str]:
    """Per-seed ratio quartiles as cells (∞: the prior's run never reached the bar)."""
    if not q["runs"]:
        return ["n/a", "n/a", "n/a", "0"]
    cell = lambda x: "∞" if x is None else f"{x:.2f}"
    return [cell(q["median"]), cell(q["q25"]), cell(q["q75"]), str(q["runs"])]


def load(folder: Path, name: str = "") -> Found:
    """``folder/summary.json`` read; ValueError naming the file if it cannot be."""
    try:
        return Found(folder, json.loads((folder / "summary.json").read_text()), name)
    except (OSError, ValueError) as error:
        raise ValueError(f"{folder / 'summary.json'}: {error}") from None


def find_summaries(folder: Path) -> list[Found]:
    """``folder/summary.json``, else one ``Found`` per subfolder holding one (backups skipped)."""
    if (folder / "summary.json").is_file():
        return [load(folder)]
    subs = sorted(p.parent for p in folder.glob("*/summary.json"))
    return [load(p, p.name) for p in subs if not BACKUP.search(p.name)]


@dataclasses.dataclass(frozen=True)
class Section:
    """A study on the page: where its outputs lie and how to render one summary."""

    key: str
    """its folder under --runs, and its key in ``claims``' summaries"""
    title: str
    command: str
    """the command that produces it, shown when it has not run"""
    render: Callable[[dict], str] | None
    """one summary -> its tables (markdown); None: only the header and figures"""
    budget: Callable[[dict], str] = train_budget
    find: Callable[[Path], list[Found]] = find_summaries


SECTIONS: list[Section] = [
    Section("gridworld_tabular", "Tabular grid world", "python experiments/gridworld_tabular.py",
            tabular_section, tabular_budget),
    Section("gridworld_deep", "Deep grid world: Distral vs baselines",
            "python experiments/gridworld_deep.py", deep_section),
    Section("brax_multitask", "Continuous control", "python experiments/brax_multitask.py",
            brax_section),
    Section("minigrid_multitask", "XLand-MiniGrid", "python experiments/minigrid_multitask.py",
            minigrid_section),
    Section("metaworld_mt", "Meta-World", "python experiments/metaworld_mt.py --small",
            metaworld_section),
    Section("robustness", "Robustness to hyperparameters", "python experiments/robustness.py",
            robustness_section, robustness_budget),
    Section("transfer", "Transfer of π0 to new tasks", "python experiments/transfer.py",
            transfer_section, transfer_budget),
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim of the paper, and the study whose outputs measure it."""

    text: str
    key: str
    """the measuring section's key"""
    measure: Callable[[list[Found]], str] | None
    """the study's folders -> what they show (markdown); None: not summarised yet"""


def speed_claim(found: list[Found]) -> str:
    """Claim 1 from gridworld_deep: Distral / baseline ratios of median steps to 90%."""
    parts = []
    for f in found:
        for design, d in f.data["designs"].items():
            below = [r for r in d["ratios"].values() if r is not None]
            parts.append(
                f"{design}: {sum(r < 1 for r in below)} of {len(below)} measured ratios below 1 "
                f"({len(d['ratios']) - len(below)} unmeasured: a median never reached)\n\n"
                f"{ratio_table(d['ratios'])}"
            )
    return (
        "Median env steps until every task is at 90% of its optimum, Distral's divided by the "
        "baseline's (below 1: Distral is faster).\n\n" + "\n\n".join(parts)
    )


def robustness_claim(found: list[Found]) -> str:
    """Claim 2: per family, the best Distral row against the best baseline row (matched-entropy
    rows included), by the fraction of runs reaching the bar."""
    rows, verdicts = [], []
    for f in found:
        for name, fam in f.data["families"].items():
            fractions = {v: r["fraction_of_runs_reaching"] for v, r in fam["variants"].items()}
            distral = {v: x for v, x in fractions.items() if v.startswith("distral")}
            baseline = {v: x for v, x in fractions.items() if not v.startswith("distral")}
            if not distral or not baseline:
                continue
            d, b = max(distral, key=distral.get), max(baseline, key=baseline.get)
            holds = distral[d] > baseline[b]
            verdicts.append(holds)
            rows.append(
                [
                    f"{name} ({f.name})" if f.name else name,
                    f"{d} {distral[d]:.2f}",
                    f"{b} {baseline[b]:.2f}",
                    "holds" if holds else "does not hold",
                ]
            )
    if not rows:
        return "not measured: the robustness runs compared no Distral and baseline variants"
    return (
        f"Holds in {sum(verdicts)} of {len(verdicts)} families: fraction of runs (every setting "
        "× seed of the grid) that reach the bar on every task, best Distral variant against the "
        "best baseline row.\n\n" + table(["family", "best Distral", "best baseline", "claim"], rows)
    )


def transfer_claim(found: list[Found]) -> str:
    """Claim 3: per family, a frozen-π0 method against learning from scratch and fine-tuning."""
    rows = []
    for f in found:
        for name, fam in f.data["families"].items():
            for pair, r in fam["ratios"].items():
                ratio = r["ratio_of_medians"]
                # Without a ratio of medians (one median never reached), the paired ratios say.
                x = ratio if ratio is not None else r["per_seed"]["median"]
                none = "n/a" if r["per_seed"]["runs"] == 0 else "slower"  # None per seed: ∞
                verdict = (
                    none if x is None else "faster" if x < 1 else "as fast" if x == 1 else "slower"
                )
                label = f"{name} ({f.name})" if f.name else name
                rows.append([label, pair, num(ratio), *ratio_quartiles(r["per_seed"])[:3], verdict])
    return (
        "Median env steps to the bar on the held-out tasks, the frozen-π0 method's divided by the "
        "other's (below 1: the prior speeds learning).\n\n"
        + table(
            ["family", "ratio", "of medians", "per seed median", "q25", "q75", "prior is"], rows
        )
    )


CLAIMS: list[Claim] = [
    Claim("1. Distral learns faster than its baselines on related tasks", "gridworld_deep",
          speed_claim),
    Claim("2. Distral is more robust to its hyperparameters than its baselines", "robustness",
          robustness_claim),
    Claim("3. The distilled policy π0 speeds up learning of new tasks", "transfer",
          transfer_claim),
]  # fmt: skip


def read_notes(path: Path) -> dict[str, str]:
    """Sections of the notes file by heading: "## 2" -> the text under it (none if absent)."""
    if not path.is_file():
        return {}
    sections = re.split(r"^## +(\S+)[^\n]*\n", path.read_text(), flags=re.M)
    return {key: text.strip() for key, text in zip(sections[1::2], sections[2::2], strict=True)}


def split_headings(text: str, level: int) -> dict[str, str]:
    """A page's sections at one heading level: heading text -> the section (heading included,
    up to the next heading of that level or above)."""
    marker = "#" * level + " "
    parts = re.split(rf"(?m)^(?=#{{1,{level}}} )", text)
    return {
        p.splitlines()[0][len(marker) :].strip(): p.rstrip() for p in parts if p.startswith(marker)
    }


def claims(
    summaries: Mapping[str, list[Found]],
    notes: Mapping[str, str] | None = None,
    previous: Mapping[str, str] | None = None,
) -> str:
    """The claims section: each claim's measurement (or how to measure it) and, from the notes,
    why it comes out as it does. ``previous``: the current page's claim subsections by heading,
    kept as they are for claims whose study has no output under ``--runs``."""
    notes, previous = notes or {}, previous or {}
    commands = {s.key: s.command for s in SECTIONS}
    parts = ["## Claims"]
    for c in CLAIMS:
        found = summaries.get(c.key, [])
        if not found and c.text in previous:
            parts.append(previous[c.text])
            continue
        if not found:
            body = f"not measured yet: run `{commands.get(c.key, c.key)}`"
        elif c.measure is None:
            body = f"measured, not summarised here yet: see the `{c.key}` section"
        else:
            try:
                body = c.measure(found)
            except KeyError as error:
                body = f"(not summarised: a summary lacks the key {error}; rerun the study)"
        why = notes.get(c.text.split(".")[0])
        parts.append(f"### {c.text}\n\n{body}" + (f"\n\n{why}" if why else ""))
    return "\n\n".join(parts)


# ----------------------------------------------------------------------------- the page


def figures(folder: Path, dest: Path, page: Path) -> str:
    """Copies the folder's PNGs into ``dest`` and embeds them, linked relative to ``page``."""
    links = []
    for png in sorted(folder.glob("*.png")):
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, dest / png.name)
        links.append(
            f"![{png.stem}]({Path(os.path.relpath(dest / png.name, page.parent)).as_posix()})"
        )
    return "\n\n".join(links)


def tables(s: Section, data: dict) -> str:
    """The section's tables for one summary; a summary of an older layout says what it lacks."""
    if s.render is None:
        return "(no tables for this study yet)"
    try:
        return s.render(data)
    except KeyError as error:
        return f"(no tables: this summary lacks the key {error}; rerun `{s.command}`)"


def render_section(s: Section, found: list[Found], args: Report) -> str:
    """A study's section: one subsection per output folder, or its "not run" line."""
    if not found:
        return f"## {s.title}\n\nnot run: `{s.command}`"
    parts = [f"## {s.title}"]
    for f in found:
        pictures = figures(f.folder, Path(args.figures) / s.key / f.name, Path(args.out))
        body = [f"### {f.name}" if f.name else "", header(f.data, s.budget), tables(s, f.data)]
        parts.append("\n\n".join(b for b in [*body, pictures] if b))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(Report, argv)
    try:
        summaries = {s.key: s.find(Path(args.runs) / s.key) for s in SECTIONS}
    except ValueError as error:
        print(f"report.py: error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    # A study with no output under --runs keeps its section of the current page: figures that
    # cannot be regenerated here are never replaced by "not run".
    current = out.read_text() if out.is_file() else ""
    sections = split_headings(current, 2)
    previous_claims = split_headings(sections.get("Claims", ""), 3)
    kept = [s.title for s in SECTIONS if not summaries[s.key] and s.title in sections]
    page = [
        "# Results",
        "Written by `python experiments/report.py` from the studies' outputs under `runs/`; "
        "rerun it after a study instead of editing this page.",
        claims(summaries, read_notes(Path(args.notes)), previous_claims),
        *(
            sections[s.title] if s.title in kept else render_section(s, summaries[s.key], args)
            for s in SECTIONS
        ),
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n\n".join(page) + "\n")
    regenerated = [s.title for s in SECTIONS if summaries[s.key]]
    print(
        f"wrote {out}: {len(regenerated)} sections regenerated from "
        f"{sum(map(len, summaries.values()))} study folders under {args.runs}"
        + (f" ({', '.join(regenerated)})" if regenerated else "")
        + (
            f"; {len(kept)} kept as they were, with no outputs here: {', '.join(kept)}"
            if kept
            else ""
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
