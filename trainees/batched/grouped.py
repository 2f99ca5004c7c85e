"""Grouped linear layers: K stacks of ``nn.Linear`` run as batched matrix products, each product rounded as the per-model one."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_ELEMENTWISE = (nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.Identity)


# Whether a batched product rounds as the per-model product does, per operation, shapes,
# layouts and threads: BLAS libraries (MKL, cuBLAS) pick other kernels for some batched
# shapes (here, the MLP's small last layer), and one ulp per step grows over a run.
_BATCHED_IS_EXACT: dict[tuple, bool] = {}


def grouped_product(op: str, *args: torch.Tensor) -> torch.Tensor:
    """``op`` over K models' ``(K, ...)`` operands, rounded as the per-model product is.

    ``grouped_product("mm", a, b)`` is ``a @ b`` for ``(K, n, m)`` and ``(K, m, p)``.

    ``op`` is ``"mm"`` (``bmm``; per model ``torch.mm``) or ``"addmm"`` (``baddbmm``
    with a ``(K, n)`` bias; per model ``torch.addmm``, as ``F.linear`` computes). On a
    CPU the batched product is used where it is bit-identical to the per-model one (the
    first call with new shapes and layouts compares the two, once), else K per-model
    products. On a GPU the batched product is used as it is (K launches per product
    would cost more than batching gains): there, model ``k`` follows its single run up
    to float reassociation.
    """
    key = (op, torch.get_num_threads(), *((t.shape, t.stride(), t.dtype, t.device) for t in args))
    exact = True if args[0].device.type != "cpu" else _BATCHED_IS_EXACT.get(key)
    if exact is not False:
        if op == "mm":
            out = torch.bmm(*args)
        else:
            bias, x, w = args
            out = torch.baddbmm(bias[:, None], x, w)
        if exact:
            return out
    single = getattr(torch, op)
    want = torch.stack([single(*(t[k] for t in args)) for k in range(args[0].shape[0])])
    if exact is None:
        _BATCHED_IS_EXACT[key] = torch.allclose(out, want, rtol=0, atol=0, equal_nan=True)
    return want


class _GroupedLinear(torch.autograd.Function):
    """``x @ w^T + b`` for K models, with the backward pass ``F.linear``'s would take.

    Each model's output and gradients are computed with the products that ``addmm`` and
    its backward would use on that model (``x w^T + b`` forward, ``gy^T x`` for the
    weight, ``gy w`` for the input), batched where that rounds the same (see
    ``grouped_product``): no reassociation enters, and a model's gradients are
    bit-identical to its single run's.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        device = x.device.type
        if torch.is_autocast_enabled(device):  # the backward pass runs outside autocast:
            # keep the operands in the dtype autocast gives the forward products (as
            # autograd keeps them for F.linear), so the gradients come out as theirs do
            dtype = torch.get_autocast_dtype(device)
            x, w, b = (None if t is None else t.to(dtype) for t in (x, w, b))
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        w_t = w.transpose(1, 2)
        if b is None:
            return grouped_product("mm", x, w_t)
        return grouped_product("addmm", b, x, w_t)

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w = ctx.saved_tensors
        gx = grouped_product("mm", gy, w) if ctx.needs_input_grad[0] else None
        gw = grouped_product("mm", gy.transpose(1, 2), x)
        gb = gy.sum(1) if ctx.has_bias else None
        return gx, gw, gb


class GroupedLinearStack:
    """The forward pass of K models of one ``nn.Sequential`` of linear layers, together.

    Each ``nn.Linear`` becomes one batched matrix product over the K models' stacked
    weights; ``nn.Flatten`` and elementwise activations apply as they are.

    Raises:
        ValueError: a layer without a grouped form, naming it and those supported.
    """

    def __init__(self, model: nn.Module) -> None:
        layers = list(model) if isinstance(model, nn.Sequential) else [model]
        prefix = isinstance(model, nn.Sequential)
        self.layers: list[tuple[nn.Module, str]] = []
        for i, layer in enumerate(layers):
            ok = isinstance(layer, (nn.Linear, *_ELEMENTWISE)) or (
                isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) == (1, -1)
            )
            if not ok:
                raise ValueError(
                    f"layer {i} ({type(layer).__name__}) has no grouped form; supported: "
                    "nn.Linear, nn.Flatten(), "
                    + ", ".join(f"nn.{c.__name__}" for c in _ELEMENTWISE)
                )
            self.layers.append((layer, f"{i}." if prefix else ""))

    def __call__(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``(K, B, ...)`` outputs of the K models with ``params`` (``(K, *shape)`` each)."""
        for layer, prefix in self.layers:
            if isinstance(layer, nn.Linear):
                x = _GroupedLinear.apply(x, params[prefix + "weight"], params.get(prefix + "bias"))
            elif isinstance(layer, nn.Flatten):
                x = x.flatten(2)  # keep the model and batch dimensions
            else:
                x = layer(x)
        return x
