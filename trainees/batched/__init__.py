"""K training runs of one trainee in lockstep, as one vectorised step.

``trainee`` (BatchedTrainee and its per-model slots), ``adamw`` (BatchedAdamW), ``grouped``
(grouped linear layers).
"""

from trainees.batched.adamw import BatchedAdamW
from trainees.batched.grouped import GroupedLinearStack, grouped_product
from trainees.batched.trainee import (
    BATCHED_OPTIMIZERS,
    BATCHED_TRAINEES,
    BatchedTrainee,
    TraineeSlot,
    make_batched_trainee,
)

__all__ = [
    "BATCHED_OPTIMIZERS",
    "BATCHED_TRAINEES",
    "BatchedAdamW",
    "BatchedTrainee",
    "GroupedLinearStack",
    "TraineeSlot",
    "grouped_product",
    "make_batched_trainee",
]
