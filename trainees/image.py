"""Image-classification trainees on MNIST or the bundled digits: an MLP, a small CNN, ResNet-18, a ViT."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from common.checks import check as _check
from trainees.base import TraineeConfig
from trainees.data.digits import load_digits
from trainees.data.images import ImageDataset, downsampled, permuted
from trainees.data.mnist import load_mnist
from trainees.models.cnn import SmallCNN
from trainees.models.resnet import ResNet18
from trainees.models.vit import ViT
from trainees.torch_trainee import TorchTrainee

ImageDatasetName = Literal["mnist", "digits", "mnist_permuted", "mnist_14"]
IMAGE_DATASETS: tuple[str, ...] = get_args(ImageDatasetName)
MLPActivation = Literal["relu", "gelu", "tanh"]
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
MLPNorm = Literal["none", "layer"]
MLP_NORMS: tuple[str, ...] = get_args(MLPNorm)
CNNNorm = Literal["none", "batch"]
CNN_NORMS: tuple[str, ...] = get_args(CNNNorm)


@dataclass(frozen=True)
class ImageTraineeConfig(TraineeConfig):
    """Options of an image-classification trainee (see ``TraineeConfig`` for the rest).

    Attributes:
        dataset: ``mnist`` (needs the IDX files), ``digits`` (bundled with scikit-learn),
            or MNIST derived: ``mnist_permuted`` (pixels in a fixed random order) or
            ``mnist_14`` (down-sampled to 14x14).
        data_dir: folder with the dataset files; else ``$LRGYM_DATA_DIR``, cache, download.
        eval_samples: size of the fixed validation subset (the first images of the split),
            small enough that an evaluation costs a few training steps.
    """

    dataset: ImageDatasetName = "mnist"
    data_dir: str | None = None
    eval_samples: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.dataset in IMAGE_DATASETS, "dataset", self.dataset, f"one of {IMAGE_DATASETS}")
        _check(self.eval_samples >= 1, "eval_samples", self.eval_samples, "an integer >= 1")


def _check_layers(width_name: str, width: int, depth: int, activation: str) -> None:
    """The checks of a stack of layers: its width option, depth and activation."""
    _check(width >= 1, width_name, width, "an integer >= 1")
    _check(depth >= 1, "depth", depth, "an integer >= 1")
    _check(activation in ACTIVATIONS, "activation", activation, f"one of {tuple(ACTIVATIONS)}")


@dataclass(frozen=True)
class MLPConfig(ImageTraineeConfig):
    """MLP: input -> ``depth`` hidden layers of ``hidden`` units -> classes.

    The defaults are the 2-layer MLP (one ReLU hidden layer, no normalisation).

    Attributes:
        hidden: units per hidden layer.
        depth: hidden layers (>= 1).
        activation: ``relu``, ``gelu`` or ``tanh``.
        norm: ``none``, or ``layer`` (a LayerNorm after each hidden linear layer, before
            the activation; such an MLP has no batched form).
    """

    hidden: int = 128
    depth: int = 1
    activation: MLPActivation = "relu"
    norm: MLPNorm = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_layers("hidden", self.hidden, self.depth, self.activation)
        _check(self.norm in MLP_NORMS, "norm", self.norm, f"one of {MLP_NORMS}")


@dataclass(frozen=True)
class CNNConfig(ImageTraineeConfig):
    """A small plain CNN (``trainees.models.cnn``): ``depth`` blocks of a 3x3 convolution,
    optional BatchNorm, the activation and a 2x2 max-pool; then a global average pool and
    a linear layer. No residual connections (ResNet-18 is held out).

    Attributes:
        channels: the first block's channels; block ``i`` has ``channels · 2^i``.
        depth: conv blocks (>= 1); each halves the image sides, which must stay >= 1
            (digits' 8x8: depth <= 3).
        activation: ``relu``, ``gelu`` or ``tanh``.
        norm: ``none`` or ``batch`` (BatchNorm after each convolution).
    """

    channels: int = 16
    depth: int = 2
    activation: MLPActivation = "relu"
    norm: CNNNorm = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_layers("channels", self.channels, self.depth, self.activation)
        _check(self.norm in CNN_NORMS, "norm", self.norm, f"one of {CNN_NORMS}")


@dataclass(frozen=True)
class ResNet18Config(ImageTraineeConfig):
    """ResNet-18; ``width`` is the first stage's channels (64 in the standard network)."""

    batch_size: int = 32
    width: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.width >= 1, "width", self.width, "an integer >= 1")


@dataclass(frozen=True)
class ViTConfig(ImageTraineeConfig):
    """A small Vision Transformer (``trainees.models.vit``).

    The defaults keep it CPU-cheap: about 11 ms a step on MNIST on one CPU thread (dim 64
    with 4 heads at batch 64: about 45 ms; heads narrower than 16 are slow on a CPU).

    Attributes:
        patch: side of the square, non-overlapping patches; divides both image sides
            (4: 2x2 patches of the 8x8 digits, 7x7 of the 28x28 MNIST).
        dim: token width (divisible by ``heads``); the MLP is 4x as wide.
        depth: transformer blocks.
        heads: attention heads.
    """

    batch_size: int = 32
    patch: int = 4
    dim: int = 32
    depth: int = 2
    heads: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("patch", "dim", "depth", "heads"):
            _check(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")
        _check(self.dim % self.heads == 0, "dim", self.dim, f"divisible by heads={self.heads}")


def load_image_dataset(name: str, data_dir: str | None = None) -> ImageDataset:
    """Load an image dataset by name.

    ``mnist_permuted`` is MNIST with its pixels in one fixed random order (the same for
    every image and run: :func:`trainees.data.images.permuted`); ``mnist_14`` is MNIST
    down-sampled to 14x14 by 2x2 averaging (:func:`trainees.data.images.downsampled`).
    """
    if name == "mnist":
        return load_mnist(data_dir)
    if name == "digits":
        return load_digits()
    if name == "mnist_permuted":
        return permuted(load_mnist(data_dir), name)
    if name == "mnist_14":
        return downsampled(load_mnist(data_dir), 2, name)
    raise ValueError(f"unknown image dataset {name!r}; valid: {', '.join(IMAGE_DATASETS)}")


class ImageTrainee(TorchTrainee):
    """Cross-entropy classification with epoch-wise shuffled minibatches.

    ``test_metrics()`` scores the whole test split (MNIST: 10,000 images; digits: 297)
    and adds ``test_accuracy``.
    """

    config: ImageTraineeConfig

    def __init__(self, config: ImageTraineeConfig, dataset: ImageDataset | None = None) -> None:
        super().__init__(config)
        self.data = dataset or load_image_dataset(config.dataset, config.data_dir)
        # uint8 on the device, normalised per batch (4x less memory than float32); the
        # replicas of trainees.batched.trainee share these tensors
        self._train_x = torch.tensor(self.data.train_x).to(self.device)
        self._train_y = torch.tensor(self.data.train_y).to(self.device)
        n_eval = min(config.eval_samples, len(self.data.val_x))
        self._val_x = torch.tensor(self.data.val_x[:n_eval]).to(self.device)
        self._val_y = torch.tensor(self.data.val_y[:n_eval]).to(self.device)
        self._order = torch.empty(0, dtype=torch.long)
        self._cursor = 0
        self._test: tuple[torch.Tensor, torch.Tensor] | None = None  # built by test_batches
        self._train_x_float: torch.Tensor | None = None  # built by stack_batches

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255.0).sub_(self.data.mean).div_(self.data.std)

    def reset_data(self) -> None:
        self._order = torch.empty(0, dtype=torch.long)
        self._cursor = 0

    def _next_indices(self, gen: torch.Generator) -> torch.Tensor:
        bs = self.config.batch_size
        if self._cursor + bs > len(self._order):  # new epoch; the ragged tail is dropped
            self._order = torch.randperm(len(self._train_x), generator=gen)
            self._cursor = 0
        idx = self._order[self._cursor : self._cursor + bs]
        self._cursor += bs
        return idx

    def next_batch(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self._next_indices(gen).to(self.device)
        return self._normalise(self._train_x[idx]), self._train_y[idx]

    def stack_batches(self, replicas: Sequence[TorchTrainee]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each replica's next minibatch, gathered in one operation.

        The batched trainee's K models share one normalised float32 copy of the training
        images, made on first use (4x the uint8 images: 172 MB for MNIST): gathering from
        it costs about a third of normalising K batches per step, with the same values
        (``_normalise`` is elementwise).
        """
        if self._train_x_float is None:
            self._train_x_float = self._normalise(self._train_x)
        idx = torch.cat([r._next_indices(r._gen) for r in replicas]).to(self.device)  # type: ignore[attr-defined]
        k = len(replicas)
        x = self._train_x_float.index_select(0, idx)
        return x.view(k, -1, *x.shape[1:]), self._train_y.index_select(0, idx).view(k, -1)

    def batched_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(K,)`` mean cross-entropy of K models' ``(K, B, classes)`` logits."""
        # flattened, its gradient is bit-identical to F.cross_entropy's on each model
        per_sample = F.cross_entropy(outputs.float().flatten(0, 1), y.flatten(), reduction="none")
        return per_sample.view(y.shape).mean(1)

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bs = 500
        for i in range(0, len(self._val_x), bs):
            yield self._normalise(self._val_x[i : i + bs]), self._val_y[i : i + bs]

    def test_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The whole test split in batches of 1000, normalised as the training images."""
        if self._test is None:  # on the device only from the first call, at a run's end
            self._test = (
                torch.tensor(self.data.test_x).to(self.device),
                torch.tensor(self.data.test_y).to(self.device),
            )
        test_x, test_y = self._test
        bs = 1000
        for i in range(0, len(test_x), bs):
            yield self._normalise(test_x[i : i + bs]), test_y[i : i + bs]

    def test_sums(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The summed cross-entropy and the number of correct predictions of one batch."""
        logits = model(x).float()
        return {
            "loss": F.cross_entropy(logits, y, reduction="sum").double(),
            "accuracy": (logits.argmax(1) == y).sum().double(),
        }

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x).float(), y)


class MLPTrainee(ImageTrainee):
    """2-layer MLP on flattened images."""

    config: MLPConfig

    def __init__(self, config: MLPConfig | None = None, dataset: ImageDataset | None = None):
        super().__init__(config or MLPConfig(), dataset)

    def build_model(self) -> nn.Module:
        c, h, w = self.data.image_shape
        cfg = self.config
        layers: list[nn.Module] = [nn.Flatten()]
        width = c * h * w
        for _ in range(cfg.depth):
            layers.append(nn.Linear(width, cfg.hidden))
            if cfg.norm == "layer":
                layers.append(nn.LayerNorm(cfg.hidden))
            layers.append(ACTIVATIONS[cfg.activation]())
            width = cfg.hidden
        layers.append(nn.Linear(width, self.data.num_classes))
        return nn.Sequential(*layers)


class CNNTrainee(ImageTrainee):
    """A small plain CNN on the images (``trainees.models.cnn.SmallCNN``)."""

    config: CNNConfig

    def __init__(self, config: CNNConfig | None = None, dataset: ImageDataset | None = None):
        super().__init__(config or CNNConfig(), dataset)
        _, h, w = self.data.image_shape
        _check(
            min(h, w) >= 2**self.config.depth,
            "depth",
            self.config.depth,
            f"at most {int(math.log2(min(h, w)))} for the {h}x{w} images (each block halves "
            "the sides)",
        )

    def build_model(self) -> nn.Module:
        c = self.data.image_shape[0]
        cfg = self.config
        return SmallCNN(
            c,
            self.data.num_classes,
            cfg.channels,
            cfg.depth,
            ACTIVATIONS[cfg.activation],
            cfg.norm == "batch",
        )


class ResNet18Trainee(ImageTrainee):
    """ResNet-18 with a small-image stem."""

    config: ResNet18Config

    def __init__(self, config: ResNet18Config | None = None, dataset: ImageDataset | None = None):
        super().__init__(config or ResNet18Config(), dataset)

    def build_model(self) -> nn.Module:
        c = self.data.image_shape[0]
        return ResNet18(c, self.data.num_classes, self.config.width)


class ViTTrainee(ImageTrainee):
    """A small Vision Transformer on the images, split into ``patch`` x ``patch`` patches."""

    config: ViTConfig

    def __init__(self, config: ViTConfig | None = None, dataset: ImageDataset | None = None):
        super().__init__(config or ViTConfig(), dataset)
        _, h, w = self.data.image_shape
        patch = self.config.patch
        _check(
            h % patch == 0 and w % patch == 0,
            "patch",
            patch,
            f"a divisor of both sides of the {h}x{w} images",
        )

    def build_model(self) -> nn.Module:
        c, h, w = self.data.image_shape
        cfg = self.config
        return ViT(c, (h, w), self.data.num_classes, cfg.patch, cfg.dim, cfg.depth, cfg.heads)

    def init_weights(self, model: nn.Module, gen: torch.Generator) -> None:
        model.init_weights(gen)
