"""Cost of the drop-in LearnedLRScheduler per optimizer step, as a fraction of the trainee's.

Trains each trainee for four whole runs in a plain PyTorch loop
(``benchmarks.overhead.scheduler_overhead``): one driven by the scheduler (a policy file,
or by default a freshly built transformer policy of the default size: inference costs
the same trained or not), whose ``observe(loss, max_norm=...)`` also clips, one with
``clip_grad_norm_`` and a cosine ``LambdaLR``, and both again without clipping. Reports
the scheduler's calls per step (gross) and that minus the calls they replace (net), and
writes a JSON::

    python scripts/bench_scheduler.py                       # GPT-tiny and the MLP
    python scripts/bench_scheduler.py --policy runs/.../policies/bc_cosine.pt
    python scripts/bench_scheduler.py --env LRSchedule-MLP-v0 --dataset digits
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import torch
import tyro

from agents.policy import PolicyConfig, make_policy, save_policy
from benchmarks.overhead import scheduler_overhead
from common.cli import parse
from common.files import write_json
from envs.options import EnvOptions, check_env_ids

EnvIds = Annotated[tuple[str, ...], tyro.conf.arg(aliases=("--envs", "--env-ids"))]


@dataclass(frozen=True)
class Args:
    """Benchmark the scheduler's overhead.

    Attributes:
        env: registered ids whose trainees are measured.
        options: env options (None keeps each id's default).
        policy: a policy file (None: a fresh default-size policy per env).
        out: JSON file to write.
    """

    env: EnvIds = ("LRSchedule-GPT-v0", "LRSchedule-MLP-v0")
    options: Annotated[EnvOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=EnvOptions)
    policy: str | None = None
    out: str = "runs/bench/scheduler.json"

    def __post_init__(self) -> None:
        check_env_ids(*self.env)


def main(args: Args) -> dict:
    """Measure each id and write the JSON."""
    report = {"args": asdict(args), "torch_threads": torch.get_num_threads(), "results": {}}
    for env_id in args.env:
        env = args.options.make(env_id)
        inner = env.unwrapped
        policy = args.policy
        with tempfile.TemporaryDirectory() as tmp:
            if policy is None:
                net = make_policy(env.observation_space, env.action_space, PolicyConfig())
                policy = str(save_policy(net, Path(tmp) / "p.pt", PolicyConfig(), env=env,
                                         gamma=0.99))  # fmt: skip
            r = scheduler_overhead(inner.trainee, policy, eval_every=inner.config.eval_every,
                                   steps_per_action=inner.config.steps_per_action)  # fmt: skip
        report["results"][env_id] = r
        for suffix in ("", "_unclipped"):
            if f"fraction{suffix}" in r:
                print(
                    f"{env_id:22s}{suffix:11s} trainee {r['train_ms_per_step']:7.2f} ms/step  "
                    f"scheduler {r['scheduler_ms_per_step' + suffix]:6.3f} ms/step = "
                    f"{100 * r['fraction' + suffix]:.2f} %  (it replaces "
                    f"{r['baseline_control_ms_per_step' + suffix]:6.3f} ms/step; net "
                    f"{r['net_ms_per_step' + suffix]:+6.3f} ms/step = "
                    f"{100 * r['net_fraction' + suffix]:+.2f} %)",
                    flush=True,
                )
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(parse(Args))
