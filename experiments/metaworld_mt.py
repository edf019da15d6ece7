"""Distral-SAC vs MT-SAC and independent SAC on Meta-World MT10 (or MT50, or any task list).

    python experiments/metaworld_mt.py --small        # CPU, under twenty minutes
    python experiments/metaworld_mt.py                # the published budget, one GPU host
    python experiments/metaworld_mt.py --tiny         # a smoke test
    python experiments/metaworld_mt.py --benchmark mt50 --seeds 3
    python experiments/metaworld_mt.py --tasks reach-v3 drawer-close-v3 --small

The tasks are simulated by EnvPool's C++ port of Meta-World v3 and stepped from inside the
compiled training loop (``distral_jax.envs.metaworld_tasks``): 500-step episodes, the goal and
the task's one-hot index in the observation, success when ``info["success"]`` is set at any step
of an episode. Variants (default): Distral-SAC with two columns and with one
(``distral_klent_2col``, ``distral_klent_1col``), MT-SAC (``a3c_multitask``: one network with
the task id in its input), independent SAC per task (``a3c``) and ``a3c_2col`` (two columns,
no distillation), all with the SAC learner, each task's temperature learnt.

Writes to ``--out`` (default ``runs/metaworld_mt/<benchmark>/``):

  * ``success.png``: each task's success rate (greedy policy, as the field evaluates; median
    over seeds) against env steps, one line per variant, π_0's own for the Distral variants
    dotted;
  * ``success_mean.png``: the mean success over tasks and the worst task, with quartile bands;
  * ``summary.json``: per variant the success rate per task and its mean at the end (sampled
    and greedy, π_i and π_0), the returns, the env steps until each task's success rate first
    reaches ``--success-bar`` (greedy policy; median over seeds), env steps per second and
    compile time; and the published figures the ``gpu`` profile can be set against, with their
    sources.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Annotated, Literal

import jax
import numpy as np
import tyro

from distral_jax import analysis, cli, sweeps
from distral_jax.checkpoint import CheckpointError
from distral_jax.configs import VARIANTS, TrainConfig
from distral_jax.envs import metaworld_tasks

Variant = Literal[tuple(VARIANTS)]
ALL_VARIANTS = ("distral_klent_2col", "distral_klent_1col", "a3c_multitask", "a3c", "a3c_2col")

# Published mean success rates on MT10 for the gpu profile's table: other code bases' figures
# (Meta-World v1/v2, 50 fixed variations per task), quoted as the field reports them, not
# reproduced here. Check each against its paper's own table before citing it next to ours.
REFERENCES = [
    {
        "method": "MT-SAC (re-runs)",
        "mean_success": 0.36,
        "env_steps": "15M (1.5M per task)",
        "source": "re-runs of MT-SAC reported in later multitask papers (e.g. CARE, 2021)",
    },
    {
        "method": "MT-MH-SAC, multi-head (re-runs)",
        "mean_success": 0.61,
        "env_steps": "15M (1.5M per task)",
        "source": "re-runs reported alongside the MT-SAC ones",
    },
    {
        "method": "recent methods (PaCo, MOORE and others)",
        "mean_success": "0.88-0.89",
        "env_steps": "20M (2M per task)",
        "source": "their papers' MT10 tables (PaCo 2022, MOORE 2024)",
    },
]

# What every profile shares: SAC, each task's temperature learnt towards an entropy of -|A|
# (4 for the Sawyer arm), starting at β = 1 (rewards are up to 10 a step), γ = 0.99, Adam
# at 3e-4, no observation normalisation and no gradient clipping, as MT-SAC is usually run.
_SAC = TrainConfig(
    learner="sac",
    beta=1.0,
    gamma=0.99,
    learning_rate=3e-4,
    sac_tau=0.005,
    sac_auto_temperature=True,
    sac_target_entropy=-4.0,
    max_grad_norm=1e9,
)
_SIZE_FIELDS = (
    "num_envs",
    "unroll_length",
    "total_env_steps",
    "eval_every",
    "eval_envs",
    "hidden_sizes",
    "learning_rate",
    "replay_capacity",
    "sac_batch_size",
    "sac_grad_updates",
    "sac_warmup_steps",
    "iterations_per_call",
)
# gpu: one gradient step of 256 per env step of each task, SAC's usual replay ratio, and
# MT-SAC's three layers of 400. small: what a 2-core CPU trains in minutes, one gradient step
# of 128 per 4 env steps of each task and two layers of 64 (two layers of 256 at one gradient
# step of 128 per env step trained Distral-SAC on MT10 at 237 env steps/s here).
# fmt: off
_TRAIN = cli.config_table(_SAC, _SIZE_FIELDS, {
    #        envs unroll steps (all)  eval every eval hidden           lr    replay   batch grads
    "gpu":   (16,  8,    20_000_000, 500_000,   10,  (400, 400, 400), 3e-4, 10**6,   256,  128,
              10_000, 50),  # warm-up, iterations per call
    "small": (4,   8,    1_000_000,  200_000,   5,   (64, 64),        1e-3, 100_000, 128,  8,
              2_000,  50),
    "tiny":  (2,   4,    800,        800,       1,   (16,),           1e-3, 400,     16,   1,
              40,     5),
})
# fmt: on


@dataclasses.dataclass(frozen=True)
class Study:
    """Distral-SAC vs MT-SAC and independent SAC on Meta-World (flags from these fields).

    The profile (``gpu`` by default, ``small`` with ``--small``, ``tiny`` with ``--tiny``) sets
    the defaults of every flag; flags given override it.
    """

    benchmark: Literal["mt10", "mt50"] = "mt10"
    """the task set (unless --tasks names one)"""
    tasks: tuple[str, ...] | None = None
    """Meta-World v3 task names instead of the benchmark's"""
    task_id_in_obs: bool = True
    """the task's one-hot index in the observation (the MT protocol)"""
    variants: tuple[Variant, ...] = ALL_VARIANTS
    """the variants compared (all with the SAC learner)"""
    small: bool = False
    """the CPU profile (under twenty minutes): same as --profile small"""
    tiny: bool = False
    """a smoke test, mostly compilation: same as --profile tiny"""
    profile: Literal["gpu", "small", "tiny"] | None = None
    """sizes and budget (default: small with --small, tiny with --tiny, else gpu)"""
    seeds: int = 3
    """runs per variant (vmapped)"""
    train: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = _SAC
    """the configuration shared by every variant"""
    success_bar: float = 0.9
    """the success rate a task must reach (greedy policy) to count as solved"""
    out: str = ""
    """output folder (default: runs/metaworld_mt/<benchmark or tasks>; an earlier one is moved
    aside)"""
    quiet: bool = False
    """no progress bars"""
    persistence: Annotated[cli.Persistence, tyro.conf.OmitArgPrefixes] = cli.Persistence()
    """checkpoints (one folder per architecture) and the compilation cache"""

    def __post_init__(self):
        if self.seeds < 1:
            raise ValueError(f"`seeds` must be >= 1, got {self.seeds}")
        if not 0.0 < self.success_bar <= 1.0:
            raise ValueError(f"`success_bar` must be in (0, 1], got {self.success_bar}")
        if self.train.learner != "sac":
            raise ValueError(f"`learner` must be 'sac' in this study, got {self.train.learner!r}")
        cli.check_shared_train(
            self.train, episode_length="is Meta-World's 500 steps here (the simulator's limit)"
        )


PROFILES: dict[str, Study] = {
    # The published budget: 2M env steps per task (20M for MT10), three seeds.
    "gpu": Study(seeds=3, train=_TRAIN["gpu"]),
    # A 2-core CPU, under twenty minutes: Distral-SAC against MT-SAC, one seed, 100k env
    # steps per task. Distral-SAC alone at 800k env steps (10 evaluations of 5 episodes):
    # 8.3 min, greedy success 0.8 on reach, 1.0 on drawer-close, 0.6 on window-open, 0.2 on
    # push, 0 on the other six.
    "small": Study(
        seeds=1,
        variants=("distral_klent_2col", "a3c_multitask"),
        train=_TRAIN["small"],
    ),
    # The CI smoke test: MT10, one variant, a few updates.
    "tiny": Study(variants=("distral_klent_2col",), seeds=1, train=_TRAIN["tiny"]),
}


def profile_defaults(argv: list[str]) -> Study:
    """The study's defaults for the profile that ``--small``/``--tiny``/``--profile`` pick."""
    name = cli.chosen_profile(argv, PROFILES, shortcuts=("small", "tiny")) or "gpu"
    return dataclasses.replace(PROFILES[name], profile=name)


def make_family(args: Study) -> metaworld_tasks.EnvpoolFamily:
    """The study's family: ``--tasks``, else the benchmark's."""
    names = args.tasks or (
        metaworld_tasks.MT10 if args.benchmark == "mt10" else metaworld_tasks.all_tasks()
    )
    return metaworld_tasks.metaworld(names, task_id_in_obs=args.task_id_in_obs)


def summarize(results: dict[str, sweeps.VariantResult], bar: float) -> dict[str, dict]:
    """Per variant: final success per task and its mean, returns, steps to the bar, speed."""
    table = {}
    for name, r in results.items():
        med = lambda key, e: np.median(r.curves[key][:, e], axis=0)
        per_task = [
            analysis.summarize_steps(
                analysis.steps_to_threshold(
                    r.steps, r.curves["success_greedy"][:, :, [i]], np.full(1, bar)
                )
            )
            for i in range(r.curves["success_greedy"].shape[-1])
        ]
        table[name] = {
            "final_success_sampled": med("success_sampled", -1),
            "final_success_greedy": med("success_greedy", -1),
            "final_pi0_success_sampled": med("pi0_success_sampled", -1),
            "final_pi0_success_greedy": med("pi0_success_greedy", -1),
            "final_success_mean_sampled": float(np.mean(med("success_sampled", -1))),
            "final_success_mean_greedy": float(np.mean(med("success_greedy", -1))),
            "final_return_sampled": med("sampled", -1),
            "steps_to_bar_per_task_greedy": per_task,
            "tasks_at_bar_greedy": int(np.sum(med("success_greedy", -1) >= bar)),
            "training_sps_of_its_program": r.sps,
            "compile_time_s": r.compile_time_s,
            "wall_s": r.wall_s,
            "eval_steps": r.steps,
            "median_curve_success_greedy": np.median(r.curves["success_greedy"], axis=0),
            "median_curve_success_sampled": np.median(r.curves["success_sampled"], axis=0),
        }
    return table


def print_table(table: dict[str, dict], names: list[str], bar: float) -> None:
    print(f"\nsuccess rate per task at the end (greedy policy, median over seeds); bar {bar}")
    print(f"{'variant':20s} {'mean':>5s}  " + " ".join(f"{n[:8]:>8s}" for n in names))
    for name, row in table.items():
        cells = " ".join(f"{x:8.2f}" for x in np.asarray(row["final_success_greedy"], float))
        print(
            f"{name:20s} {row['final_success_mean_greedy']:5.2f}  {cells} | "
            f"{row['training_sps_of_its_program']:,.0f} steps/s | compile "
            f"{row['compile_time_s']:.0f}s"
        )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = cli.parse(Study, argv, default=profile_defaults(argv))
    args.persistence.apply()
    start = time.perf_counter()
    try:
        env = make_family(args)
    except ValueError as error:
        print(f"metaworld_mt.py: error: {error}", file=sys.stderr)
        return 2
    label = "-".join(args.tasks) if args.tasks else args.benchmark
    out = analysis.fresh_output_dir(args.out or f"runs/metaworld_mt/{label}")
    names = list(env.task_names)
    print(
        f"Meta-World {label}: {env.num_tasks} tasks, observation {env.observation_size}, "
        f"{env.episode_length}-step episodes, {jax.devices()[0].device_kind}",
        flush=True,
    )
    config = args.train.replace(episode_length=env.episode_length)
    try:
        results = sweeps.train_study(env, config, args)
    except CheckpointError as error:
        print(f"metaworld_mt.py: error: {error}", file=sys.stderr)
        return 2

    analysis.plot_variants_per_task(
        out / "success.png",
        results,
        names,
        curve="success_greedy",
        prior_curve="pi0_success_greedy",
        with_prior=[v for v in results if VARIANTS[v].distill],
        bar=args.success_bar,
        ylabel="success rate",
        ylim=(-0.03, 1.03),
        cols=5,
    )
    analysis.plot_learning_curves(
        out / "success_mean.png",
        results[args.variants[0]].steps,
        {name: r.curves["success_greedy"] for name, r in results.items()},
        title=f"Meta-World {label}: success rate (greedy policy)",
    )
    table = summarize(results, args.success_bar)
    print_table(table, names, args.success_bar)
    summary = {
        "args": cli.to_dict(args),
        "config": cli.to_dict(config),
        "device": jax.devices()[0].device_kind,
        "tasks": names,
        "success_bar": args.success_bar,
        "steps_to_bar_means": (
            "per task: the first evaluation at which its success rate (greedy policy, the "
            "field's protocol; eval_envs episodes) is >= success_bar, per seed; median and "
            "quartiles over seeds"
        ),
        "protocol": (
            "EnvPool's Meta-World v3 port: goals drawn afresh at every reset from the task's "
            "ranges (Meta-World samples one of 50 fixed variations); goal observable; one-hot "
            "task id appended" + ("" if args.task_id_in_obs else " (off in this run)")
        ),
        "references": REFERENCES,
        "variants": table,
    }
    analysis.write_summary(out, summary, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
