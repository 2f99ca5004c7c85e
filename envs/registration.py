"""Registered environment ids, loaded by gymnasium through the ``gymnasium.envs`` entry point.

``import gymnasium`` calls :func:`register_envs`, so ``gym.make("LRSchedule-GPT-v0")``
works after ``pip install`` without importing this package. Horizons are chosen so
that an episode takes well under a minute on a CPU for the MLP and the tiny GPT.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

ENTRY_POINT = "envs.lrschedule_env:LRScheduleEnv"

ENV_SPECS: dict[str, dict] = {
    # 2,000 steps of the MLP on MNIST: about 5 s on a 2-core CPU
    "LRSchedule-MLP-v0": dict(trainee="mlp", dataset="mnist", total_steps=2000),
    # ResNet-18 costs ~0.4 s per step on a 2-core CPU: a short run by default
    "LRSchedule-ResNet18-v0": dict(trainee="resnet18", dataset="mnist", total_steps=500),
    "LRSchedule-GPT-v0": dict(
        trainee="gpt", dataset="shakespeare_char", preset="tiny", total_steps=2000
    ),
    # LoRA on a byte-level GPT pretrained on the Python standard library (built once into
    # the user cache, ~3 min), fine-tuned on tiny Shakespeare: needs the `llm` extra (peft)
    "LRSchedule-LoRA-v0": dict(
        trainee="lora",
        dataset="shakespeare_char",
        total_steps=400,
        steps_per_action=16,
        eval_every=32,
    ),
    # held-out architectures (not among the policies' training trainees):
    # a small ViT on MNIST, about 15 s per episode on a 2-core CPU (1 thread)
    "LRSchedule-ViT-v0": dict(trainee="vit", dataset="mnist", total_steps=1000),
    # a 2-layer char LSTM on tiny Shakespeare, about 20 s per episode on a 2-core CPU (1 thread)
    "LRSchedule-LSTM-v0": dict(trainee="lstm", dataset="shakespeare_char", total_steps=1000),
    # a small plain CNN (2 conv blocks, 16-32 channels) on MNIST: a trainee of the task
    # sampler's v2 distribution (experiments.task_sampler), not a held-out one
    "LRSchedule-CNN-v0": dict(trainee="cnn", dataset="mnist", total_steps=1000),
    # synthetic linear regression, seconds per episode: for tests and quick experiments
    "LRSchedule-Quadratic-v0": dict(
        trainee="quadratic", total_steps=256, steps_per_action=8, eval_every=16, window=64
    ),
}


# v1 of every env: the same task, observed through dimensionless signals
# (EnvConfig.observation; v0 is kept as it was)
ENV_SPECS |= {
    env_id.removesuffix("-v0") + "-v1": {**kwargs, "observation": "v1"}
    for env_id, kwargs in list(ENV_SPECS.items())
}


def task_id(env_id: str) -> str:
    """The v0 id of the task ``env_id`` runs: an observation twin (``-v1``) maps to its v0 id.

    Both ids train the same trainee on the same data; only what the policy reads differs, so
    whatever describes the task (its tuned reference LR) is keyed by the v0 id. Any other id is
    returned as given.
    """
    if env_id.endswith("-v1") and ENV_SPECS.get(env_id, {}).get("observation") == "v1":
        return env_id.removesuffix("-v1") + "-v0"
    return env_id


def register_envs() -> None:
    """Register every id in ``ENV_SPECS`` (ids already registered are left alone)."""
    for env_id, kwargs in ENV_SPECS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=ENTRY_POINT, kwargs=kwargs)
