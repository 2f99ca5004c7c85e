"""Cost of the drop-in LearnedLRScheduler per optimizer step, as a fraction of the trainee's.

Trains each trainee for one whole run in a plain PyTorch loop driven by the scheduler
(a policy file, or by default a freshly built transformer policy of the default size:
inference costs the same trained or not) and writes a JSON::

    python scripts/bench_scheduler.py                       # GPT-tiny and the MLP
    python scripts/bench_scheduler.py --policy runs/.../policies/bc_cosine.pt
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import torch
import tyro

from agents.overhead import scheduler_overhead
from agents.policy import PolicyConfig, make_policy, save_policy
from envs.options import EnvOptions
from trainees.files import write_json


@dataclass(frozen=True)
class Args:
    """Benchmark the scheduler's overhead.

    Attributes:
        env_ids: registered ids whose trainees are measured.
        options: env options (None keeps each id's default).
        policy: a policy file (None: a fresh default-size policy per env).
        out: JSON file to write.
    """

    env_ids: tuple[str, ...] = ("LRSchedule-GPT-v0", "LRSchedule-MLP-v0")
    options: Annotated[EnvOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=EnvOptions)
    policy: str | None = None
    out: str = "runs/bench/scheduler.json"


def main(args: Args) -> dict:
    """Measure each id and write the JSON."""
    report = {"args": asdict(args), "torch_threads": torch.get_num_threads(), "results": {}}
    for env_id in args.env_ids:
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
        print(
            f"{env_id:22s} trainee {r['train_ms_per_step']:7.2f} ms/step  scheduler "
            f"{r['scheduler_ms_per_step']:6.3f} ms/step  = {100 * r['fraction']:.2f} %",
            flush=True,
        )
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(tyro.cli(Args))
