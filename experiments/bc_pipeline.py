"""The behavioural-cloning job: expert demonstrations, one BC policy per expert, their evaluation.

:func:`train_bc` (behind ``scripts/train_bc.py``) collects demonstrations of each expert
(real env rollouts, several seeds), trains one BC policy per expert and one on all
experts combined (``agents.bc.clone_policy``: imitation's ``bc.BC``, then the critic on
discounted returns), saves each policy as one file, and evaluates every policy against
its expert(s) on held-out seeds. :func:`check_bc_args` refuses, before any work, what
the job would fail on.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from agents.bc import BCConfig, clone_policy
from agents.policy import PolicyConfig
from benchmarks.policy import inference_cost
from common.files import run_dir, write_json
from common.plots import save_episode_schedules
from common.seeds import take
from common.tensorboard import log_hyperparameters
from envs.options import EnvOptions, check_env_ids
from envs.rollout import run_episodes
from evaluation.compare import compare
from evaluation.suite import check_training_env
from experts.demos import check_saved_experts, collect_experts
from experts.policy import SchedulePolicy
from experts.schedules import SCHEDULES, make_schedule

DemoSets = tuple[tuple[Path, list[int]], tuple[Path, list[int]]]


def demo_sets(root: str | Path, demo_episodes: int, selection_episodes: int) -> DemoSets:
    """The demonstrations' and the selection demonstrations' folders and seeds under ``root``.

    Raises:
        ValueError: more seeds asked than their ranges hold (``common.seeds.take``).
    """
    root = Path(root)
    return (
        (root, take("demonstrations", demo_episodes)),
        (root / "selection", take("model_selection", selection_episodes)),
    )


def check_bc_args(
    env_id: str,
    experts: Sequence[str],
    *,
    options: EnvOptions | None = None,
    demo_episodes: int = 8,
    selection_episodes: int = 2,
    eval_episodes: int = 3,
    demos: str | Path | None = None,
) -> None:
    """Raise ValueError for what :func:`train_bc` would refuse, before any work.

    An unknown env id or expert, more seeds than their ranges hold, or saved
    demonstrations (``demos``) of another env, its options, expert or seeds.
    """
    check_env_ids(env_id)
    check_training_env(env_id, (options or EnvOptions()).kwargs(), "the BC env")
    unknown = sorted(set(experts) - set(SCHEDULES))
    if unknown:
        raise ValueError(f"--experts {unknown} invalid; valid: {', '.join(SCHEDULES)}")
    sets = demo_sets(demos or "demos", demo_episodes, selection_episodes)  # checks the numbers
    take("held_out", eval_episodes)
    if demos is not None:
        kwargs = (options or EnvOptions()).kwargs()
        for folder, seeds in sets:
            check_saved_experts(folder, experts, seeds, env_id=env_id, env_kwargs=kwargs)


def train_bc(
    env_id: str = "LRSchedule-MLP-v0",
    experts: Sequence[str] = ("linear_warmup", "cosine", "polynomial"),
    *,
    options: EnvOptions | None = None,
    combined: bool = True,
    demo_episodes: int = 8,
    selection_episodes: int = 2,
    eval_episodes: int = 3,
    bc_config: BCConfig | None = None,
    demos: str | Path | None = None,
    seed: int = 0,
    out: str | Path = "runs",
    progress: bool = True,
    record: Mapping[str, Any] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Collect demonstrations, clone each expert, evaluate; write policies, metrics, plots.

    Writes into a new run folder under ``out``: ``policies/bc_<name>.pt``,
    ``metrics.json``, ``plots/bc_<name>`` (PNG + CSV), TensorBoard logs (``tb/``) and,
    unless ``demos`` names a folder, the demonstrations (``demos/``).

    Args:
        env_id: a registered id.
        experts: expert schedules to imitate.
        options: env options (None keeps the id's default).
        combined: also train one policy on all the experts' demonstrations together.
        demo_episodes: demonstration episodes per expert (seeds 0, 1, ...).
        selection_episodes: held-out demonstrations per expert (seeds 500, ...) on which
            the BC epoch with the lowest action error is kept (0: keep the last epoch).
        eval_episodes: held-out evaluation episodes (seeds 1000, 1001, ...).
        bc_config: BC and critic epochs, batch size and learning rate.
        demos: folder of saved demonstrations to reuse (collected there if missing).
        seed: seed of BC training (the i-th policy: ``seed + i``).
        out: root folder of run directories.
        progress: show progress bars.
        record: the command's arguments, stored as the metrics' ``args`` and logged to
            TensorBoard.

    Returns:
        The run folder, and the metrics written there.
    """
    options = options or EnvOptions()
    record = dict(record or {})
    folder = run_dir(out, env_id, "train_bc", seed)
    env = options.make(env_id)
    print(f"run folder {folder}")
    root = Path(demos) if demos else folder / "demos"
    demo, held = (
        collect_experts(
            sub, experts, env, seeds, env_id=env_id, env_kwargs=options.kwargs(), progress=progress
        )
        for sub, seeds in demo_sets(root, demo_episodes, selection_episodes)
    )
    datasets = {name: (demo[name], held[name]) for name in experts}
    if combined and len(experts) > 1:
        datasets["combined"] = tuple(
            [t for name in experts for t in part[name]] for part in (demo, held)
        )

    config = PolicyConfig()
    bc_config = bc_config or BCConfig()
    eval_seeds = take("held_out", eval_episodes)
    expert_runs = {
        n: run_episodes(
            env,
            SchedulePolicy(make_schedule(n), env.action_space),
            eval_seeds,
            desc=f"eval expert {n}",
            progress=progress,
        )
        for n in experts
    }
    writer = SummaryWriter(folder / "tb")
    log_hyperparameters(writer, record)
    report: dict = {"args": record, "policy_config": asdict(config), "policies": {}}
    for i, (name, (trajs, selection)) in enumerate(datasets.items()):
        with warnings.catch_warnings():
            # imitation 1.0.1's BC logs float(tensor) on a tensor that requires grad: harmless
            warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
            policy, entry = clone_policy(
                env,
                trajs,
                selection,
                folder / "policies" / f"bc_{name}.pt",
                policy_config=config,
                bc_config=bc_config,
                seed=seed + i,
                log_dir=str(folder / "tb" / f"bc_{name}"),
                progress=progress,
            )
        runs = run_episodes(env, policy, eval_seeds, desc=f"eval BC {name}", progress=progress)
        targets = experts if name == "combined" else (name,)
        entry["vs_expert"] = {n: compare(runs, expert_runs[n]) for n in targets}
        entry["inference"] = inference_cost(runs)
        report["policies"][name] = entry
        for n, c in entry["vs_expert"].items():
            writer.add_scalar(
                f"eval/{name}/mean_abs_log_lr_ratio_vs_{n}", c["mean_abs_log_lr_ratio"]
            )
            print(
                f"BC {name:13s} vs {n:13s}: mean|log lr ratio| {c['mean_abs_log_lr_ratio']:.4f}  "
                f"best val {c['policy_best_val_mean']:.4f} (expert {c['expert_best_val_mean']:.4f}"
                f" ± {c['expert_best_val_std']:.4f})  within spread: {c['within_spread']}"
            )
        curves = {f"BC {name}": runs[0]} | {f"ref:expert {n}": expert_runs[n][0] for n in targets}
        save_episode_schedules(
            folder / "plots" / f"bc_{name}", curves, title=f"{name}: held-out seed {runs[0].seed}"
        )
    writer.close()
    write_json(folder / "metrics.json", report)
    return folder, report
