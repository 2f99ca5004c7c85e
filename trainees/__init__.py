"""What is trained: the Trainee contract and the MLP, ResNet-18, GPT, LoRA and synthetic trainees
(LoRA needs the ``llm`` extra only when one is made)."""

from trainees.base import N_GRAD_BUCKETS, StepStats, Trainee, TraineeConfig
from trainees.factory import TRAINEES, make_trainee
from trainees.image import MLPConfig, MLPTrainee, ResNet18Config, ResNet18Trainee
from trainees.language import GPT_PRESETS, GPTConfig, GPTTrainee
from trainees.lora import LoRAConfig, LoRATrainee
from trainees.optimizers import OPTIMIZERS, make_optimizer
from trainees.quadratic import QuadraticConfig, QuadraticTrainee
from trainees.torch_trainee import TorchTrainee

__all__ = [
    "GPT_PRESETS",
    "N_GRAD_BUCKETS",
    "OPTIMIZERS",
    "TRAINEES",
    "GPTConfig",
    "GPTTrainee",
    "LoRAConfig",
    "LoRATrainee",
    "MLPConfig",
    "MLPTrainee",
    "QuadraticConfig",
    "QuadraticTrainee",
    "ResNet18Config",
    "ResNet18Trainee",
    "StepStats",
    "TorchTrainee",
    "Trainee",
    "TraineeConfig",
    "make_optimizer",
    "make_trainee",
]
