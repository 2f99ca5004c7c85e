"""Behavioural cloning of expert LR schedules with a transformer actor-critic.

Collects demonstrations of each expert (real env rollouts, several seeds), trains one
BC policy per expert and one on all experts combined (imitation's ``bc.BC``, then the
critic on discounted returns), saves each policy as one file, and evaluates every
policy against its expert(s) on held-out seeds::

    python scripts/train_bc.py                                   # MLP on MNIST
    python scripts/train_bc.py --env LRSchedule-GPT-v0 --demo-episodes 4
    python scripts/train_bc.py --dataset digits --total-steps 640  # env options: see --help
    python scripts/train_bc.py --demos runs/demos        # reuse (or save) demonstrations there

Arguments are checked before any work starts: an unknown env id, expert, reward or
dataset, or saved demonstrations (``--demos``) of another env, expert or seeds, is
refused in one line (exit status 2).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import tyro
from torch.utils.tensorboard import SummaryWriter

from agents.bc import BCConfig, clone_policy
from agents.policy import PolicyConfig
from common.cli import parse
from common.files import run_dir, write_json
from common.plots import save_episode_schedules
from common.seeds import take
from common.tensorboard import log_hyperparameters
from envs.options import EnvOptions, check_env_ids
from envs.rollout import run_episodes
from evaluation.compare import compare, inference_cost
from experts.demos import ExpertName, check_saved_experts, collect_experts
from experts.policy import SchedulePolicy
from experts.schedules import SCHEDULES, make_schedule


@dataclass(frozen=True)
class Args:
    """Behavioural cloning of expert schedules.

    Attributes:
        env: registered env id.
        options: env options (None keeps the id's default).
        experts: expert schedules to imitate.
        combined: also train one policy on all the experts' demonstrations together.
        demo_episodes: demonstration episodes per expert (seeds 0, 1, ...).
        selection_episodes: held-out demonstrations per expert (seeds 500, ...) on which the
            BC epoch with the lowest action error is kept (0: keep the last epoch).
        eval_episodes: held-out evaluation episodes (seeds 1000, 1001, ...).
        epochs: BC epochs over the demonstrations.
        critic_epochs: epochs of critic fitting.
        batch_size: BC minibatch size.
        lr: Adam learning rate for BC and the critic.
        demos: folder of saved demonstrations to reuse (collected there if missing); they
            must be of this env, its options and the seeds this run asks for.
        seed: seed of BC training.
        out: root folder of run directories.
        progress: show progress bars.
    """

    env: str = "LRSchedule-MLP-v0"
    options: Annotated[EnvOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=EnvOptions)
    experts: tuple[ExpertName, ...] = ("linear_warmup", "cosine", "polynomial")
    combined: bool = True
    demo_episodes: int = 8
    selection_episodes: int = 2
    eval_episodes: int = 3
    epochs: int = 200
    critic_epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    demos: str | None = None
    seed: int = 0
    out: str = "runs"
    progress: bool = True

    def __post_init__(self) -> None:
        check_env_ids(self.env)
        unknown = sorted(set(self.experts) - set(SCHEDULES))
        if unknown:
            raise ValueError(f"--experts {unknown} invalid; valid: {', '.join(SCHEDULES)}")
        sets = self.demo_sets(Path(self.demos or "demos"))  # checks the numbers of seeds
        take("held_out", self.eval_episodes)
        if self.demos is not None:
            for folder, seeds in sets:
                check_saved_experts(folder, self.experts, seeds, env_id=self.env,
                                    env_kwargs=self.options.kwargs())  # fmt: skip

    def demo_sets(self, root: Path) -> tuple[tuple[Path, list[int]], tuple[Path, list[int]]]:
        """The demonstrations' and the selection demonstrations' folders and seeds."""
        return (
            (root, take("demonstrations", self.demo_episodes)),
            (root / "selection", take("model_selection", self.selection_episodes)),
        )


# imitation 1.0.1's BC logs float(tensor) on a tensor that requires grad: harmless, noisy
warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")


def main(args: Args) -> dict:
    """Collect demonstrations, clone, evaluate; write policies, metrics, plots."""
    folder = run_dir(args.out, args.env, "train_bc", args.seed)
    env = args.options.make(args.env)
    print(f"run folder {folder}")
    root = Path(args.demos) if args.demos else folder / "demos"
    demos, held = (
        collect_experts(sub, args.experts, env, seeds, env_id=args.env,
                        env_kwargs=args.options.kwargs(), progress=args.progress)
        for sub, seeds in args.demo_sets(root)
    )  # fmt: skip
    datasets = {name: (demos[name], held[name]) for name in args.experts}
    if args.combined and len(args.experts) > 1:
        datasets["combined"] = tuple(
            [t for name in args.experts for t in part[name]] for part in (demos, held)
        )

    config = PolicyConfig()
    bc_config = BCConfig(epochs=args.epochs, critic_epochs=args.critic_epochs,
                         batch_size=args.batch_size, lr=args.lr)  # fmt: skip
    eval_seeds = take("held_out", args.eval_episodes)
    expert_runs = {
        n: run_episodes(env, SchedulePolicy(make_schedule(n), env.action_space), eval_seeds,
                        desc=f"eval expert {n}", progress=args.progress)
        for n in args.experts
    }  # fmt: skip
    writer = SummaryWriter(folder / "tb")
    log_hyperparameters(writer, args)
    report: dict = {"args": asdict(args), "policy_config": asdict(config), "policies": {}}
    for i, (name, (trajs, selection)) in enumerate(datasets.items()):
        policy, entry = clone_policy(
            env, trajs, selection, folder / "policies" / f"bc_{name}.pt",
            policy_config=config, bc_config=bc_config, seed=args.seed + i,
            log_dir=str(folder / "tb" / f"bc_{name}"), progress=args.progress,
        )  # fmt: skip
        runs = run_episodes(env, policy, eval_seeds, desc=f"eval BC {name}", progress=args.progress)
        targets = args.experts if name == "combined" else (name,)
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
        save_episode_schedules(folder / "plots" / f"bc_{name}", curves,
                               title=f"{name}: held-out seed {runs[0].seed}")  # fmt: skip
    writer.close()
    write_json(folder / "metrics.json", report)
    print(f"wrote {folder / 'metrics.json'}")
    return report


if __name__ == "__main__":
    main(parse(Args))
