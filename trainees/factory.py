"""Build a trainee from its name and config options."""

from __future__ import annotations

from typing import Any, Literal, get_args

from trainees.image import (
    CNNConfig,
    CNNTrainee,
    MLPConfig,
    MLPTrainee,
    ResNet18Config,
    ResNet18Trainee,
    ViTConfig,
    ViTTrainee,
)
from trainees.language import GPTConfig, GPTTrainee, LSTMConfig, LSTMTrainee
from trainees.lora import LoRAConfig, LoRATrainee
from trainees.quadratic import QuadraticConfig, QuadraticTrainee
from trainees.torch_trainee import TorchTrainee

TraineeName = Literal["quadratic", "mlp", "resnet18", "gpt"]
TRAINEES: tuple[str, ...] = get_args(TraineeName)
# trainees that need an optional extra (`pip install -e .[llm]`: peft, transformers, gguf);
# made by name like the others, but not in TRAINEES, which scripts and benchmarks sweep
EXTRA_TRAINEES: tuple[str, ...] = ("lora",)
# architectures out of the training distribution of the policies, for held-out evaluation:
# made by name like the others, but not in TRAINEES (nor in the privileged critic's one-hot
# over TRAINEES + EXTRA_TRAINEES), so that no training sweep or task feature includes them
HELDOUT_TRAINEES: tuple[str, ...] = ("vit", "lstm")
# trainees that only the task sampler draws (experiments.task_sampler, v2): made by name,
# but not in TRAINEES, so that the privileged critic's one-hot (and its saved critics) stay
SAMPLED_TRAINEES: tuple[str, ...] = ("cnn",)

_CLASSES = {
    "quadratic": (QuadraticTrainee, QuadraticConfig),
    "mlp": (MLPTrainee, MLPConfig),
    "resnet18": (ResNet18Trainee, ResNet18Config),
    "gpt": (GPTTrainee, GPTConfig),
    "lora": (LoRATrainee, LoRAConfig),
    "vit": (ViTTrainee, ViTConfig),
    "lstm": (LSTMTrainee, LSTMConfig),
    "cnn": (CNNTrainee, CNNConfig),
}


def trainee_options(name: str) -> frozenset[str]:
    """The config options of trainee ``name``.

    Raises:
        ValueError: an unknown trainee name, naming the valid ones.
    """
    if name not in _CLASSES:
        valid = ", ".join(TRAINEES + EXTRA_TRAINEES + HELDOUT_TRAINEES + SAMPLED_TRAINEES)
        raise ValueError(f"unknown trainee {name!r}; valid: {valid}")
    return frozenset(_CLASSES[name][1].__dataclass_fields__)


def make_trainee(name: str, **options: Any) -> TorchTrainee:
    """``make_trainee("gpt", preset="tiny")``: the trainee ``name`` with config ``options``.

    Raises:
        ValueError: an unknown trainee name or option, naming the valid ones.
    """
    valid = trainee_options(name)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for trainee {name!r}; valid: {', '.join(sorted(valid))}"
        )
    cls, config_cls = _CLASSES[name]
    return cls(config_cls(**options))
