"""Reference LRs: tuned cosine's base LR per env, the ``k = 0`` of the LR-sensitivity sweep.

One versioned table. Each entry says what it was tuned on (trainee, dataset, budget,
seeds, grid) and the command that produced it; change an entry only with a new tuning
run, and bump ``VERSION``.
"""

from __future__ import annotations

from dataclasses import dataclass

from envs.registration import task_id

VERSION = 2  # 2: LRSchedule-LoRA-v0 added (the others unchanged)


@dataclass(frozen=True)
class ReferenceLR:
    """Tuned cosine's base LR on one env.

    Attributes:
        lr: the base LR cosine chose (lowest mean final validation loss on the tuning seeds).
        trainee, dataset, total_steps: what it was tuned on.
        tuning: the tuning seeds and LR grid, and how sure the choice is.
        command: the command that produced it (its ``results.json`` holds the table).
        commit, date: when.
    """

    lr: float
    trainee: str
    dataset: str
    total_steps: int
    tuning: str
    command: str
    commit: str
    date: str


REFERENCE_LRS: dict[str, ReferenceLR] = {
    "LRSchedule-MLP-v0": ReferenceLR(
        lr=4e-3, trainee="mlp", dataset="mnist", total_steps=2000,
        tuning="tuning seeds 2000-2002, LR 1e-3 x 2^k (k=-3..3); mean final val loss 0.0697 "
        "at 4e-3 against 0.0845 at 8e-3 and 0.0984 at 1e-3; not at the grid's edge",
        command="python scripts/evaluate.py --out runs/i20/eval_mlp --methods constant cosine "
        "cosine_untuned cosine_warmup linear_warmup polynomial wsd schedulefree prodigy_cosine "
        "--workers 2 --threads 1 (results.json: envs.LRSchedule-MLP-v0.tuning.cosine)",
        commit="2c6dfc8", date="2026-12-01",
    ),
    "LRSchedule-GPT-v0": ReferenceLR(
        lr=1e-3, trainee="gpt (tiny preset)", dataset="shakespeare_char", total_steps=256,
        tuning="tuning seeds 2000-2001, LR 1e-3 x {0.25, 0.5, 1, 2, 4}; kept the env's 1e-3; "
        "not at the grid's edge",
        command="python scripts/evaluate.py --out runs/i20/eval_gpt --env LRSchedule-GPT-v0 "
        "--total-steps 256 --n-final-seeds 5 --n-tuning-seeds 2 --lr-factors 0.25 0.5 1 2 4 "
        "--methods cosine cosine_untuned wsd constant schedulefree prodigy_cosine --workers 2 "
        "--threads 1 (results.json: envs.LRSchedule-GPT-v0.tuning.cosine)",
        commit="2c6dfc8", date="2026-12-01",
    ),
    "LRSchedule-ResNet18-v0": ReferenceLR(
        lr=4e-3, trainee="resnet18", dataset="digits", total_steps=256,
        tuning="ONE tuning seed (2000), LR 1e-3 x {0.25, 1, 4}; final val loss 0.0357, 0.0352, "
        "0.0344: barely separated, and at the grid's edge (flagged at_edge)",
        command="python scripts/evaluate.py --out runs/evaluate/resnet_digits_256 --env "
        "LRSchedule-ResNet18-v0 --dataset digits --total-steps 256 --n-final-seeds 5 "
        "--n-tuning-seeds 1 --lr-factors 0.25 1 4 --methods cosine cosine_untuned --workers 2 "
        "--threads 1",
        commit="b3e566e", date="2026-11-23",
    ),
    "LRSchedule-LoRA-v0": ReferenceLR(
        lr=1.2e-2, trainee="lora (r 8, GPT-tiny base pretrained on the stdlib)",
        dataset="shakespeare_char", total_steps=400,
        tuning="tuning seeds 2000-2001, LR 3e-3 x {0.25, 0.5, 1, 2, 4}; mean final val loss "
        "2.2691 2.1863 2.1371 2.1172 2.1139: at the grid's edge (flagged at_edge), 6e-3 and "
        "1.2e-2 barely separated",
        command="python scripts/evaluate.py --out runs/evaluate/lora_tune --env "
        "LRSchedule-LoRA-v0 --n-final-seeds 1 --n-tuning-seeds 2 --lr-factors 0.25 0.5 1 2 4 "
        "--methods cosine --workers 1 --threads 1",
        commit="453a4b4", date="2026-12-01",
    ),
}  # fmt: skip


def reference_lr(env_id: str) -> ReferenceLR:
    """The table's entry for ``env_id`` (an observation twin, ``-v1``, reads its v0 entry).

    Raises:
        ValueError: no entry, naming the envs that have one.
    """
    env_id = task_id(env_id)
    if env_id not in REFERENCE_LRS:
        raise ValueError(
            f"no reference LR for {env_id!r}; the table has {', '.join(REFERENCE_LRS)} "
            "(pass --reference-lr to give one)"
        )
    return REFERENCE_LRS[env_id]
