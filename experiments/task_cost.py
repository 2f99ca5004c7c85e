"""The task sampler's cost model: a sampled run's single-threaded seconds, from its FLOPs.

Tasks are drawn cheap (VeLO rejection-samples its tasks by step time):
``experiments.task_sampler.sample_tasks`` redraws a task whose :func:`estimated_seconds`
exceed :data:`MAX_RUN_SECONDS`. A cost model to keep draws cheap, not a benchmark: a tuned
table's ``median_run_seconds`` is the measurement.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_RUN_SECONDS = 6.0  # estimated single-threaded seconds of one run; dearer draws are redrawn
FLOPS_PER_SECOND = 2e10  # one CPU thread on the fp32 matmuls of these models (calibrated)
STEP_OVERHEAD_S = 6e-4  # per optimizer step, whatever the model (Python, dispatch, AdamW)
# a small CNN's step costs more than its FLOPs say (activations, pooling, the conv
# kernels' own overhead): its own rate and step overhead, timed on this CPU beside a
# 2-worker job (0.5-20 GFLOP/s; 5 ms a step for one 4-channel block at batch 16)
CONV_FLOPS_PER_SECOND = 1e10
CONV_STEP_OVERHEAD_S = 3e-3
_SIDES = {"mnist": 28, "mnist_permuted": 28, "mnist_14": 14, "digits": 8}
_INPUTS = {name: side * side for name, side in _SIDES.items()}
_EVAL_SAMPLES = 1000  # the image trainees' fixed validation subset (digits: its 300)
_VOCABS = {"shakespeare_char": 65, "python_stdlib": 256}  # tiny Shakespeare's chars; bytes


def _cnn_channels(options: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(in, out) channels of each conv block."""
    outs = [options["channels"] * 2**i for i in range(options["depth"])]
    return list(zip([1, *outs[:-1]], outs, strict=True))


def multiply_adds(family: str, options: Mapping[str, Any]) -> int:
    """Multiply-adds of one example's forward pass: the weights of a dense model (a GPT's
    per token); a CNN's convolutions at each block's image size."""
    if family != "cnn":
        return parameter_count(family, options)
    side, total = _SIDES[options["dataset"]], 0
    for c_in, c_out in _cnn_channels(options):
        total += side * side * 9 * c_in * c_out
        side //= 2
    return total + _cnn_channels(options)[-1][1] * 10


def parameter_count(family: str, options: Mapping[str, Any]) -> int:
    """Weights of a sampled task's model (matrices and biases; norms and embeddings)."""
    if family == "cnn":
        batch_norm = options["norm"] == "batch"
        convs = sum(9 * i * o + (2 * o if batch_norm else o) for i, o in _cnn_channels(options))
        return convs + _cnn_channels(options)[-1][1] * 10 + 10
    if family == "mlp":
        h, depth = options["hidden"], options["depth"]
        norm = 2 * h * depth if options["norm"] == "layer" else 0
        first = _INPUTS[options["dataset"]] * h + h
        return first + (depth - 1) * (h * h + h) + norm + h * 10 + 10
    if family == "gpt":
        d, layers = options["n_embd"], options["n_layer"]
        dataset = options.get("dataset", "shakespeare_char")
        if dataset not in _VOCABS:
            raise ValueError(
                f"dataset={dataset!r} is invalid for a sampled GPT; valid: {', '.join(_VOCABS)}"
            )
        vocab = _VOCABS[dataset]
        return layers * 12 * d * d + (vocab + options["block_size"]) * d
    return options["dim"] + 1


def estimated_seconds(family: str, options: Mapping[str, Any]) -> float:
    """A run's single-threaded seconds on a CPU, from its FLOPs: 6 per multiply-add of an
    example (token) per training step, 2 per multiply-add and example per evaluation
    (:func:`multiply_adds`; an evaluation every ``options["eval_every"]`` steps and one at
    the start), at :data:`FLOPS_PER_SECOND`, plus :data:`STEP_OVERHEAD_S` a step (a CNN:
    :data:`CONV_FLOPS_PER_SECOND`, :data:`CONV_STEP_OVERHEAD_S`)."""
    params, steps = multiply_adds(family, options), options["total_steps"]
    if family == "gpt":
        examples = options["batch_size"] * options["block_size"]
        evals = 4 * examples  # eval_batches (4) of the batch
    else:
        examples = options["batch_size"]
        evals = min(_EVAL_SAMPLES, 300) if options.get("dataset") == "digits" else _EVAL_SAMPLES
    n_evals = steps // options["eval_every"] + 1
    flops = 6 * params * examples * steps + 2 * params * evals * n_evals
    if family == "cnn":
        return steps * CONV_STEP_OVERHEAD_S + flops / CONV_FLOPS_PER_SECOND
    return steps * STEP_OVERHEAD_S + flops / FLOPS_PER_SECOND
