"""``benchmarks/RESULTS.md`` from the JSON files written by ``benchmarks/compare.py``.

    python benchmarks/compare_report.py    # regenerate from benchmarks/results/compare_*.json

One section per JSON (a profile on a device): the settings, one table per family, the per-task
loop, SAC against Brax's SAC and Distral-SAC against independent SAC, the task scaling, and the
issue's targets with the ratio measured and whether it holds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# (name, threshold, what is divided by what)
TARGETS = (
    ("trainer / raw environment (Brax family, Distral PPO)", 0.9),
    ("trainer / Brax PPO (Brax family, Distral PPO)", 1.2),
    ("vmapped tasks / per-task loop (grid world, Distral A2C)", 3.0),
    ("64 tasks / 1 task, same total environments (steps/s)", 0.8),
    ("Brax PPO compile / trainer compile (first launch)", 1.0),
    ("trainer / Brax SAC (Brax family, one task, a3c SAC)", 1.0),
)


def _row(rows: list[dict], method: str) -> dict | None:
    return next((r for r in rows if r["method"] == method), None)


def _ratio(a: dict | None, b: dict | None, key: str = "sps") -> float | None:
    if a is None or b is None or not b.get(key):
        return None
    return a[key] / b[key]


def _share(row: dict | None) -> float | None:
    """A row's rate over the raw environment's, timed in alternate windows with it."""
    if row is None or not row.get("raw_sps"):
        return None
    return row["sps"] / row["raw_sps"]


def ratios(result: dict) -> list[tuple[str, float, float | None, str]]:
    """Each target's name, threshold, measured ratio (None where the profile lacks it) and how
    it was formed."""
    brax_family = next((f for f in result["families"] if f["family"] == "halfcheetah_vel"), None)
    cheetah = brax_family["rows"] if brax_family else []
    trainer = _row(cheetah, "trainer distral_klent_2col ppo")
    brax = _row(cheetah, "brax_ppo")
    loop = result.get("loop")
    same_total = [s for s in result["scaling"] if s["mode"] == "same_total_envs"]
    by_tasks = {s["tasks"]: s for s in same_total}
    trainer_share, brax_share = _share(trainer), _share(brax)
    direct = _ratio(trainer, brax)
    sac = sac_ratios(result["sac"]) if result.get("sac") else {}
    sac_direct = sac.get("trainer_over_brax")
    values = (
        (trainer_share, "trainer and raw env in alternate windows"),
        (
            None if trainer_share is None or brax_share is None else trainer_share / brax_share,
            "each ÷ the raw env timed beside it"
            + ("" if direct is None else f"; direct ratio of the rates {direct:.2f}"),
        ),
        (
            None if loop is None else loop["vmapped_sps"] / loop["sps"],
            "vmapped trainer and loop in alternate windows",
        ),
        (
            None if 64 not in by_tasks else by_tasks[64]["sps"] / by_tasks[64]["first_sps"],
            "64 tasks and 1 task in alternate windows",
        ),
        (_ratio(brax, trainer, key="compile_s"), "compile seconds, Brax's over the trainer's"),
        (
            sac.get("trainer_over_brax_per_raw"),
            "each ÷ the raw env timed beside it"
            + ("" if sac_direct is None else f"; direct ratio of the rates {sac_direct:.2f}"),
        ),
    )
    rows = [
        (name, threshold, v, how)
        for (name, threshold), (v, how) in zip(TARGETS, values, strict=True)
    ]
    return rows + peer_ratios(result.get("peers", []))


def sac_ratios(sac: dict) -> dict[str, float | None]:
    """The SAC section's ratios: this trainer's ``a3c`` SAC over Brax's SAC (directly, and each
    over the raw env timed beside it), compile seconds Brax's over ours, and Distral-SAC over
    independent SAC on several tasks (in alternate windows)."""
    ours, brax = _row(sac["rows"], "trainer a3c sac"), _row(sac["rows"], "brax_sac")
    ours_share, brax_share = _share(ours), _share(brax)
    distral = _row(sac["multitask"]["rows"], "trainer distral_klent_2col sac")
    return {
        "trainer_over_brax": _ratio(ours, brax),
        "trainer_over_brax_per_raw": (
            None if ours_share is None or brax_share is None else ours_share / brax_share
        ),
        "brax_compile_over_trainer": _ratio(brax, ours, key="compile_s"),
        "distral_over_a3c": (
            None
            if distral is None or not distral.get("a3c_sps")
            else distral["sps"] / distral["a3c_sps"]
        ),
    }


def _raw_table(rows: list[dict]) -> list[str]:
    """Rows beside the raw environment's: rate, share of the raw env, compile, memory."""
    raw = _row(rows, "raw")
    lines = [
        "| method | env steps/s | ÷ raw env | compile s | memory |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        share = _share(row) if row["method"] != "raw" else _ratio(row, raw)
        lines.append(
            f"| {row['method']} | {_rate(row['sps'])} | "
            f"{'-' if share is None else f'{share:.2f}'} | {row['compile_s']:.1f} | "
            f"{_memory(row)} |"
        )
    return lines


def _sac_tables(sac: dict) -> list[str]:
    """The one-task table (raw env, this trainer, Brax) and the several-task one (Distral-SAC
    and independent SAC)."""
    st = sac["settings"]
    lines = [
        f"### SAC: {sac['family']}, 1 task x {st['envs']} envs, batch {st['batch_size']}, "
        f"{st['grad_updates']} gradient steps per env step, hidden "
        f"{tuple(st['hidden_sizes'])}, lr {st['learning_rate']:g}, replay {st['replay_size']:,}, "
        f"warm-up {st['warmup']:,} transitions",
        "",
        "One env step of every environment, then the gradient steps (Brax's training step; here "
        "`unroll_length=1`). Brax SAC: its `training/sps`, best epoch after the first.",
        "",
    ]
    lines += _raw_table(sac["rows"])
    ratios = sac_ratios(sac)
    direct, per_raw = ratios["trainer_over_brax"], ratios["trainer_over_brax_per_raw"]
    if direct is not None:
        lines += [
            "",
            f"a3c SAC / Brax SAC: {direct:.2f} directly"
            + ("" if per_raw is None else f", {per_raw:.2f} each ÷ the raw env timed beside it")
            + ".",
        ]
    multi = sac["multitask"]
    lines += [
        "",
        f"Distral-SAC against independent SAC: {multi['tasks']} tasks x {multi['envs']} envs, "
        f"the same per-task settings, {multi['iterations']} iterations per call, alternate "
        "windows.",
        "",
        "| method | env steps/s | ÷ a3c SAC | compile s | memory |",
        "|---|---|---|---|---|",
    ]
    for row in multi["rows"]:
        share = f"{row['sps'] / row['a3c_sps']:.2f}" if row.get("a3c_sps") else "-"
        lines.append(
            f"| {row['method']} | {_rate(row['sps'])} | {share} | {row['compile_s']:.1f} | "
            f"{_memory(row)} |"
        )
    return lines + [""]


def peer_ratios(rows: list[dict]) -> list[tuple[str, float, float | None, str]]:
    """Per environment: this trainer's rate over rejax's, and rejax's compile over ours."""
    out = []
    for env in dict.fromkeys(r["env"] for r in rows):
        ours = next(
            (r for r in rows if r["env"] == env and r["method"].startswith("trainer")), None
        )
        peer = next((r for r in rows if r["env"] == env and r["method"] == "rejax ppo"), None)
        how = (
            f"{ours and ours['seeds']} seeds vmapped, compilation excluded, run one after the other"
        )
        out.append((f"trainer / rejax PPO ({env}, a3c PPO)", 1.0, _ratio(ours, peer), how))
        out.append(
            (
                f"rejax compile / trainer compile ({env})",
                1.0,
                _ratio(peer, ours, key="compile_s"),
                "compile seconds, rejax's over the trainer's",
            )
        )
    return out


def _peer_table(rows: list[dict]) -> list[str]:
    lines = [
        "### Peers: rejax's PPO at its settings (`benchmarks/peers.py`)",
        "",
        "| method | env | seeds × steps | env steps/s (all seeds) | compile s "
        "| final return (mean; per seed) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_seed = ", ".join(f"{x:.0f}" for x in r["final_return"])
        lines.append(
            f"| {r['method']} | {r['env']} | {r['seeds']} × {r['steps_per_seed']:,} | "
            f"{_rate(r['sps'])} | {r['compile_s']:.1f} | {r['final_return_mean']:.1f}; {per_seed} |"
        )
    return lines + [""]


def _memory(row: dict) -> str:
    parts = []
    if row.get("program_bytes"):
        parts.append(f"program {row['program_bytes'] / 2**20:.1f} MiB")
    if row.get("device_peak_bytes"):
        parts.append(f"device peak {row['device_peak_bytes'] / 2**20:.0f} MiB")
    elif row.get("rss_bytes"):
        parts.append(f"RSS {row['rss_bytes'] / 2**20:.0f} MiB")
    return ", ".join(parts) or "-"


def _rate(sps: float) -> str:
    return f"{sps / 1e6:.2f}M" if sps >= 1e6 else f"{sps / 1e3:.1f}k"


def section(result: dict) -> str:
    meta = result["meta"]
    lines = [
        f"## `{meta['command']}`",
        "",
        f"{meta['device']}, {meta['cpu']}; jax {meta['jax']}; {meta['date']}; the whole "
        f"script took {meta['wall_s'] / 60:.1f} min.",
        "",
    ]
    for fam in result["families"]:
        lines += [
            f"### {fam['family']}: {fam['tasks']} tasks x {fam['envs']} envs, unroll "
            f"{fam['unroll_length']}, hidden {tuple(fam['hidden_sizes'])}, PPO {fam['ppo']}",
            "",
            *_raw_table(fam["rows"]),
            "",
        ]
    loop = result.get("loop")
    if loop:
        lines += [
            f"Per-task loop ({loop['family']}, {loop['tasks']} tasks x {loop['envs']} envs, "
            f"Distral A2C, one update per task per Python call): {_rate(loop['sps'])} env "
            f"steps/s, compile {loop['compile_s']:.1f} s; the vmapped trainer in alternate "
            f"windows: {_rate(loop['vmapped_sps'])}.",
            "",
        ]
    if result.get("sac"):
        lines += _sac_tables(result["sac"])
    if result["scaling"]:
        lines += [
            f"### Task scaling ({result['scaling'][0]['family']}, Distral 2-column A2C)",
            "",
            "| environments | tasks x envs | env steps/s | ÷ first row | compile s | memory |",
            "|---|---|---|---|---|---|",
        ]
        for s in result["scaling"]:
            mode = "same total" if s["mode"] == "same_total_envs" else "same per task"
            share = f"{s['sps'] / s['first_sps']:.2f}" if s.get("first_sps") else "-"
            lines.append(
                f"| {mode} | {s['tasks']} x {s['envs']} | {_rate(s['sps'])} | {share} | "
                f"{s['compile_s']:.1f} | {_memory(s)} |"
            )
        lines.append("")
    if result.get("peers"):
        lines += _peer_table(result["peers"])
    lines += [
        "### Targets",
        "",
        "| target | needs | measured | holds | how |",
        "|---|---|---|---|---|",
    ]
    for name, threshold, value, how in ratios(result):
        if value is None:
            lines.append(f"| {name} | ≥ {threshold} | not in this profile | - | |")
        else:
            holds = "yes" if value >= threshold else "**no**"
            lines.append(f"| {name} | ≥ {threshold} | {value:.2f} | {holds} | {how} |")
    lines.append("")
    return "\n".join(lines)


HEADER = """# Benchmark results: the trainer, the raw simulator, Brax PPO and SAC, a per-task loop

Generated by `benchmarks/compare.py` (which also states what each row measures); do not edit
by hand: rerun the command of a section, or `python benchmarks/compare_report.py` to rebuild
this file from `benchmarks/results/compare_*.json`. Steps/s are env steps per second, learning
included, best of the timed windows. Rates on a shared machine drift by tens of percent from
one minute to the next, so every ratio is formed from windows timed in alternation (a trainer
row with the raw environment, "÷ raw env"; the loop with the vmapped trainer; each scaling row
with one task; Distral-SAC with independent SAC) or, for Brax's
PPO and SAC, which cannot alternate, from the raw environment timed just before and after them.
Compile is seconds before the first update (the trainer:
wall time of `Trainer.compile`, its three programs compiled concurrently; Brax PPO: the sum of
JAX's compile events before its first update; Brax SAC: the same sum until its first epoch's
metrics). Memory: XLA's size of the compiled training
program, and the process's resident set (CPU) or the device's peak (accelerator) after the row.

"""


def host_section(result: dict) -> str:
    """``benchmarks/host_families.py``'s measurements: EnvPool families' throughput, MT50's
    start-up and memory, SAC on reach-v3."""
    machine = result.get("machine", {})
    lines = [
        f"## `{result.get('command', 'python benchmarks/host_families.py')}`",
        "",
        f"{machine.get('device')}, {machine.get('processor')}; jax {machine.get('jax')}; "
        f"{result.get('date')}.",
        "",
    ]
    rows = result.get("throughput") or []
    if rows:
        config = rows[0]["training_config"]
        lines += [
            "### EnvPool families: env steps/s over all tasks (best of the windows)",
            "",
            "Simulator alone: EnvPool's pools stepped from Python (random actions, no JAX). "
            "Through the family: the same, one host call per step inside a jitted `lax.scan`. "
            f"Training: `Trainer.run` of {config['variant']} SAC after its warm-up, unroll "
            f"{config['unroll_length']}, {config['sac_grad_updates']} gradient steps of "
            f"{config['sac_batch_size']} per task per iteration, hidden "
            f"{tuple(config['hidden_sizes'])}.",
            "",
            "| family | tasks x envs | simulator alone | through the family | ÷ alone | training "
            "| compile s | RSS after |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            t = r["training"]
            lines.append(
                f"| {r['family']} | {r['tasks']} x {r['envs_per_task']} | "
                f"{_rate(r['simulator_alone_sps'])} | {_rate(r['family_jitted_sps'])} | "
                f"{r['family_jitted_sps'] / r['simulator_alone_sps']:.2f} | {_rate(t['sps'])} | "
                f"{t['compile_s']:.1f} | {t['rss_mib']:,.0f} MiB |"
            )
        lines.append("")
    start = result.get("startup")
    if start:
        per_env = (start["rss_after_mib"] - start["rss_before_mib"]) / (50 * start["envs_per_task"])
        lines += [
            f"MT50 start-up, {start['envs_per_task']} environments per task: the family built "
            f"in {start['construction_s']:.2f} s; its first reset, which creates and resets the "
            f"50 pools, {start['first_reset_s']:.2f} s (compilation apart, "
            f"{start['compile_s']:.2f} s); a later reset {start['reset_again_s']:.2f} s. Resident "
            f"memory {start['rss_before_mib']:,.0f} MiB before, "
            f"{start['rss_after_mib']:,.0f} MiB after: about "
            f"{per_env:.0f} MiB per environment (each holds its own MuJoCo model and data).",
            "",
        ]
    reach = result.get("reach")
    if reach:
        c = reach["config"]
        when = (
            "never reached 0.9"
            if reach["steps_to_0.9"] is None
            else f"first reached 0.9 at {reach['steps_to_0.9']:,} env steps, "
            f"{reach['wall_s_to_0.9'] / 60:.1f} min after the start (compilation included)"
        )
        curve = ", ".join(f"{s / 1000:.0f}k: {x:.1f}" for s, x in reach["curve"])
        lines += [
            f"SAC on reach-v3 (`a3c`, one task, seed {c['seed']}; {c['num_envs']} envs x "
            f"{c['unroll_length']} steps, {c['sac_grad_updates']} gradient steps of "
            f"{c['sac_batch_size']} per iteration, hidden {tuple(c['hidden_sizes'])}, lr "
            f"{c['learning_rate']}, temperature learnt towards {c['sac_target_entropy']}): the "
            f"sampled policy's success rate over {c['eval_envs']} episodes {when}. Curve: "
            f"{curve}.",
            "",
        ]
    return "\n".join(lines)


def load_host(folder: Path) -> dict | None:
    """``host_families.json`` of ``folder`` (``benchmarks/host_families.py``), if there."""
    path = folder / "host_families.json"
    return json.loads(path.read_text()) if path.is_file() else None


def render(results: list[dict], host: dict | None = None) -> str:
    text = HEADER + "\n".join(section(r) for r in results)
    return text + ("\n" + host_section(host) if host else "")


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("benchmarks/results")
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("compare_*.json"))]
    if not results:
        raise SystemExit(f"no compare_*.json in {folder}: run benchmarks/compare.py first")
    Path("benchmarks/RESULTS.md").write_text(render(results, load_host(folder)))


if __name__ == "__main__":
    main()
