"""The tuning-free recipe's optional last stage: PPO from the DAgger policy on the recipe's
task distribution, with a privileged critic.

The critic sees ``log(reference / base_lr)`` and the trainee (``agents.privileged``), the
actor never does; the KL-to-start safeguard keeps the actor near the DAgger policy. The
stage reads only the run folder's last policy (``policy.pt``) and writes ``ppo/`` (the PPO
job's folder, ``experiments.ppo_job``) and ``policy_ppo.pt``. Its training episodes come
from RL-training block ``PPO_BLOCK_OFFSET + seed``, disjoint from every run's DAgger block.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.ppo import FinetuneConfig
from agents.privileged import TASK_TRAINEES
from common.files import atomic_write_bytes, write_json
from envs.options import EnvOptions
from envs.rewards import REWARDS, RewardName
from experiments.ppo_job import finetune
from experiments.task_mixture import task_kwargs
from experiments.tuningfree_config import TuningFreeConfig

PPO_BLOCK_OFFSET = 50  # the PPO stage of run seed s trains on RL-training block 50 + s


@dataclass(frozen=True)
class PPOStage:
    """The recipe's optional last stage: PPO from the DAgger policy, privileged critic.

    Attributes:
        timesteps: env steps of the whole stage (all envs); 0 skips it. A resume may
            raise it (the stage continues from its checkpoint).
        n_envs: envs in lockstep (batched where the trainee has a batched form).
        envs_per_extra_task: with a mixture (``TuningFreeConfig.extra_tasks``), each
            further task's envs beside the ``n_envs`` of the main env.
        reward: the reward preset PPO trains with (None: the recipe's env options').
            Choose it with ``evaluation.reward_ranking``: the preset whose returns rank
            runs as their final test loss does.
        privileged_critic: the critic is told each episode's task (False: it sees what the
            actor sees, as in plain fine-tuning; the ablation of the privileged critic).
        config: PPO hyperparameters and safeguards (KL to the DAgger start, separate
            clips); the critic warm-up is longer than fine-tuning's default because the
            DAgger policy's critic was never fitted.
    """

    timesteps: int = 0
    n_envs: int = 8
    envs_per_extra_task: int = 2
    reward: RewardName | None = None
    privileged_critic: bool = True
    config: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(critic_warmup_rollouts=4))

    def __post_init__(self) -> None:
        if self.timesteps < 0 or self.n_envs < 1 or self.envs_per_extra_task < 1:
            raise ValueError(
                f"timesteps={self.timesteps!r}, n_envs={self.n_envs!r}, envs_per_extra_task="
                f"{self.envs_per_extra_task!r}: expected timesteps >= 0, the others >= 1"
            )
        if self.reward is not None and self.reward not in REWARDS:
            raise ValueError(f"reward={self.reward!r} is invalid; valid: {', '.join(REWARDS)}")


def check_stage(cfg: TuningFreeConfig, stage: PPOStage) -> None:
    """Refuse, before any work, a stage the recipe's configuration cannot run."""
    if stage.timesteps > 0 and cfg.extra_tasks and not stage.privileged_critic:
        raise ValueError(
            "privileged_critic=False is invalid with a mixture of tasks (extra_tasks): its "
            "envs differ in their reference LR, which only a privileged critic is told"
        )
    if stage.timesteps > 0 and stage.privileged_critic:
        unknown = []
        for env_id, options, name in [
            (cfg.env_id, cfg.options, cfg.env_id),
            *((t.env_id, t.options, t.name()) for t in cfg.extra_tasks),
        ]:
            trainee = (dict(gym.spec(env_id).kwargs) | dict(options))["trainee"]
            if trainee not in TASK_TRAINEES:
                unknown.append(f"{name} ({trainee})")
        if unknown:
            raise ValueError(
                f"tasks {', '.join(unknown)} have trainees the privileged critic has no "
                f"feature for (it knows {', '.join(TASK_TRAINEES)}): train without the PPO "
                "stage (ppo_timesteps=0)"
            )


def ppo_stage(
    cfg: TuningFreeConfig,
    folder: Path,
    seed: int,
    reference: float,
    stage: PPOStage,
    progress: bool = True,
) -> dict[str, Any]:
    """PPO from ``folder/policy.pt`` on the recipe's task distribution, privileged critic
    (unless ``stage.privileged_critic`` is False).

    Resumes from ``folder/ppo``'s checkpoint when there is one (``stage.timesteps`` may
    extend it); a stage of other settings there is refused. Returns the PPO job's
    summary: its folder, policy files, training seeds and the report's paired
    differences against the DAgger start.
    """
    sub = folder / "ppo"
    settings = {
        "n_envs": stage.n_envs,
        "reward": stage.reward,
        "config": dataclasses.asdict(stage.config),
        "seed": PPO_BLOCK_OFFSET + seed,
    }
    if cfg.extra_tasks:  # (absent without a mixture: stages written before it resume)
        settings["envs_per_extra_task"] = stage.envs_per_extra_task
    if not stage.privileged_critic:  # (absent when privileged, as every earlier stage was)
        settings["privileged_critic"] = False
    settings_file = sub / "stage.json"
    resume = (sub / "checkpoint.pt").exists()
    if settings_file.exists() and json.loads(settings_file.read_text()) != settings:
        raise ValueError(
            f"{sub} holds a PPO stage of other settings ({settings_file}); "
            "give the same PPO settings (--ppo-timesteps may grow) or a new --out"
        )
    write_json(settings_file, settings)
    reward = {} if stage.reward is None else {"reward": stage.reward}
    options = EnvOptions(
        **(cfg.options | {"base_lr": reference, "base_lr_spread": cfg.spread} | reward)
    )
    with warnings.catch_warnings():  # the reward may differ from the DAgger file's: meant
        warnings.filterwarnings("ignore", message="fine-tuning .* on another env")
        run = finetune(
            folder / "policy.pt",
            sub,
            env_id=cfg.env_id,
            options=options,
            total_timesteps=stage.timesteps,
            n_envs=stage.n_envs,
            seed=PPO_BLOCK_OFFSET + seed,
            config=stage.config,
            resume=resume,
            progress=progress,
            reference_lr=reference if stage.privileged_critic else None,
            mixture=[
                (
                    t.env_id,
                    dict(task_kwargs(t, cfg.options, cfg.spread)) | reward,
                    stage.envs_per_extra_task,
                    t.reference_lr,
                )
                for t in cfg.extra_tasks
            ],
        )
    atomic_write_bytes(folder / "policy_ppo.pt", Path(run["final_policy"]).read_bytes())
    return {
        "folder": str(sub),
        "policy": str(folder / "policy_ppo.pt"),
        "total_timesteps": run["total_timesteps"],
        "training_seeds": run["training_seeds"],
        "paired": run["report"].get("paired", {}),
        "seconds_this_session": run["seconds_this_session"],
    }
