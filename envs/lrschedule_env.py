"""LRScheduleEnv: one training run of a trainee as a partially observable MDP."""

from __future__ import annotations

import math
import time
from typing import Any

import gymnasium as gym
import numpy as np

from envs.actions import ContinuousLogMultiplier, DiscreteFactors
from envs.config import ENV_OPTIONS, EnvConfig
from envs.render import RENDER_MODES, RenderHistory, render_ansi, render_rgb
from envs.rewards import (
    RewardInputs,
    divergence_reward,
    make_reward,
)
from envs.signals import TrainingSignals
from envs.signature import env_signature
from trainees import StepStats, Trainee, make_trainee
from trainees.factory import trainee_options


class LRScheduleEnv(gym.Env):
    """Choose the learning rate of a neural network's training run, step by step.

    ## Description

    One episode is one complete training run of a *trainee* (an MLP or ResNet-18 on
    MNIST, a GPT on a character corpus, or a synthetic regression). Each ``step``
    sets the learning rate and runs ``steps_per_action`` AdamW steps at exactly that
    LR; every ``eval_every`` optimizer steps the model is evaluated on a fixed
    validation subset. The agent sees a window of recent training signals, not the
    weights: the problem is partially observable.

    ## Action Space

    - ``action_type="continuous"`` (default): ``Box(log(min_lr_mult), log(max_lr_mult), (1,))``,
      ``lr = base_lr * exp(a)``; by default ``lr`` is in ``[1e-3, 100] * base_lr``.
      Out-of-range values are clipped to the bounds; a NaN action raises ``ValueError``.
      (Wrap with ``gymnasium.wrappers.RescaleAction`` for a ``[-1, 1]`` space.)
    - ``action_type="discrete"``: ``Discrete(len(factors))``; action ``i`` multiplies the
      current LR by ``factors[i]`` (default x0.9, x1.0, x1.1), clipped to the same bounds.
      The first LR is ``initial_lr_mult * base_lr``.

    ## Observation Space

    ``Box(window, 10)`` float32, one row per optimizer step, oldest first; rows before
    the run began are zeros (mask 0). ``loss0`` is the validation loss of the freshly
    initialised model; ``norm0`` the gradient norms of the first step.

    | column | feature | range |
    |---|---|---|
    | 0 | remaining budget fraction after the step | [0, 1] |
    | 1 | log(train minibatch loss / loss0) | [-20, 20] |
    | 2 | log(last validation loss / loss0) | [-20, 20] |
    | 3 | staleness of that evaluation: steps since it / eval_every | [0, 1] |
    | 4-7 | log(gradient norm / norm0) in 4 depth buckets, shallow to deep | [-20, 20] |
    | 8 | log(LR / base_lr) | [-20, 20] |
    | 9 | mask: 1 for a real row, 0 for padding | [0, 1] |

    With ``observation="v1"`` (the ``-v1`` ids) the row holds signals that read the same
    on any model instead (``Box(window, 17)``; ``envs.observation.DimensionlessBuilder``);
    columns 0, -2 and -1 are the same in both versions:

    | column | feature | range |
    |---|---|---|
    | 0 | remaining budget fraction after the step | [0, 1] |
    | 1 | staleness of the last evaluation | [0, 1] |
    | 2 | EMA of the minibatch loss in its running [min, max] | [0, 1] |
    | 3 | validation loss in its running [min, max] | [0, 1] |
    | 4 | asinh(slope / SE) of the last 32 minibatch losses on the step | [-20, 20] |
    | 5-9 | log(‖u_{t-1}‖ / ‖θ_t‖), the last update to the weights: pooled, 4 buckets | [-20, 20] |
    | 10-14 | cos(g_t, u_{t-1}), gradient vs last update: pooled, 4 buckets | [-1, 1] |
    | 15 | log(LR / base_lr) | [-20, 20] |
    | 16 | mask | [0, 1] |

    Buckets split the parameters, in depth order, into 4 runs of equal parameter count.
    Columns 5-14 are measured at the last optimizer step of each action (once per action:
    each measurement costs a few passes over the weights); the rows between carry the
    latest measurement.

    Values are clipped into the bounds (a diverged step's NaN/inf becomes the bound).
    The reset observation holds one row, for step 0: full budget, the initial LR
    multiplier (``log(initial_lr_mult)`` for discrete actions, 0 for continuous ones) and
    zeros for the losses and gradient norms (the ratios to themselves).

    ## Rewards

    Presets over the losses normalised by ``loss0`` and clipped to ``[0, reward_loss_cap]``
    (4), validation data only. ``T`` is the budget of optimizer steps, ``t`` runs over the
    env step's ``k`` optimizer steps:

    | reward | per env step | return: losses <= loss0 | return: any finished run |
    |---|---|---|---|
    | ``stability`` (default) | ``-(1/T) sum_t[1·max(0, Δtrain_t) + 0.5·train_t + 0.5·val_t]`` | [-2, 0] | [-8, 0] |
    | ``neg_val_loss`` | ``-(1/T) sum_t val_t`` | [-1, 0] | [-4, 0] |
    | ``val_improvement`` | ``max(0, best_before - min(evaluations of the step))`` | [0, 1] | [0, 1] |
    | ``best_minus_val`` | ``(k/T)·[1·(best_before - val) + 0.1·remaining]`` | [-1, 1.1] | [-4, 1.1] |

    Weights are set with ``reward_params`` (``envs.rewards`` documents each formula).
    A diverged step earns ``low - high - divergence_margin·(1 + remaining)`` instead,
    where ``low`` is the lowest return of any finished run and ``high`` the most any
    episode can have earned before (``envs.rewards.return_bounds``): a diverged run's
    return is below that of every finished run, so diverging never pays, and diverging
    earlier costs more.

    ## Starting State

    ``reset(seed=...)`` draws a trainee seed from the env's ``np_random``, then
    initialises weights, optimizer state and data order from it and evaluates once
    (``loss0``). The same seed gives the same episode, bit for bit, on CPU.

    ## Episode End

    - Terminated: the budget of ``total_steps`` optimizer steps is spent (the remaining
      fraction is observed, so this is termination, not truncation).
    - Terminated: training diverged, i.e. a non-finite loss or gradient (the update is
      skipped) or validation loss. ``info["diverged"]`` is True and the reward is the
      divergence reward (see Rewards); nothing is raised, and ``reset()`` starts a fresh run.

    ``info`` has ``lr``, ``train_loss`` (not at reset), ``val_loss``, ``best_val_loss``, ``step`` and
    ``diverged``; at episode end also ``final_train_loss`` (mean minibatch loss of the
    last env step), ``total_train_time`` (seconds in training and evaluation), for a
    GPT ``avg_inference_tokens_per_second``, and whatever the trainee's optional
    ``episode_info()`` returns (the LoRA trainee: ``source_loss_start``,
    ``source_loss_end``, ``forgetting``, ``target_val_loss``, ``train_tokens_per_second``).

    ## Arguments

    ``LRScheduleEnv(trainee="mlp", render_mode=None, **options)``, where ``trainee`` is a
    name (``quadratic``, ``mlp``, ``resnet18``, ``gpt``, ``lora``) or any object implementing the
    ``trainees.Trainee`` protocol, and options are ``EnvConfig`` fields or the trainee
    config's fields (``total_steps``, ``dataset``, ``preset``, ``base_lr``,
    ``data_dir``...). An unknown option or value is a ``ValueError`` that names the valid
    ones. ``render_mode`` is None, ``"ansi"`` (``render()`` returns a one-line status:
    step, LR, train/val loss) or ``"rgb_array"`` (an ``(240, 320, 3)`` uint8 image of the
    LR and loss curves so far, for ``RecordVideo`` and notebooks). Registered ids::

        gym.make("LRSchedule-MLP-v0")                      # MLP on MNIST
        gym.make("LRSchedule-ResNet18-v0")                 # ResNet-18 on MNIST
        gym.make("LRSchedule-GPT-v0", dataset="enwik8", preset="small")
        gym.make("LRSchedule-LoRA-v0")                     # LoRA on a pretrained GPT (llm extra)
        gym.make("LRSchedule-Quadratic-v0")                # synthetic, for fast tests

    ## Version History

    - v1 (2026-12-07): the same env with the dimensionless observation
      (``observation="v1"``); v0 is kept unchanged, and either id takes either option.
    - v0: initial version (rewards scaled by the budget and a divergence reward that
      never pays; ``render_mode``). 2026-12-01: the default ``max_lr_mult`` went from
      10 to 100 (a policy file records the bounds it was trained with; loading it on an
      env with other bounds says so).
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}  # noqa: RUF012

    def __init__(
        self, trainee: str | Trainee = "mlp", render_mode: str | None = None, **options: Any
    ) -> None:
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(
                f"render_mode={render_mode!r} is invalid; valid: None, "
                + ", ".join(repr(m) for m in RENDER_MODES)
            )
        self.render_mode = render_mode
        env_options = {k: v for k, v in options.items() if k in ENV_OPTIONS}
        trainee_options = {k: v for k, v in options.items() if k not in ENV_OPTIONS}
        if isinstance(trainee, str):
            self._check_options(trainee, trainee_options)
            self.trainee_name = trainee
            trainee = make_trainee(trainee, **trainee_options)
        elif trainee_options:
            raise ValueError(
                f"unknown option(s) {sorted(trainee_options)}; valid: {sorted(ENV_OPTIONS)}"
            )
        else:  # a trainee object may say what it was made from (a batched trainee's slot does)
            self.trainee_name = getattr(trainee, "name", type(trainee).__name__)
            trainee_options = dict(getattr(trainee, "options", {}))
        self.trainee_options = trainee_options
        self.config = cfg = EnvConfig(**env_options)
        self.trainee = trainee
        self.base_lr = trainee.base_lr  # this episode's (drawn at reset with base_lr_spread)
        self.reward_fn = make_reward(cfg.reward, cfg.reward_params)
        if cfg.action_type == "continuous":
            self.actions = ContinuousLogMultiplier(cfg.min_lr_mult, cfg.max_lr_mult)
        else:
            self.actions = DiscreteFactors(
                cfg.factors, cfg.min_lr_mult, cfg.max_lr_mult, cfg.initial_lr_mult
            )
        if cfg.observation == "v1":  # the dimensionless signals need the update moments
            if not hasattr(trainee, "track_updates"):
                raise ValueError(
                    f"observation='v1' needs a trainee that reports update moments "
                    f"(StepStats.moments, a TorchTrainee's track_updates); "
                    f"{type(trainee).__name__} does not: use observation='v0'"
                )
            trainee.track_updates = cfg.steps_per_action  # the last step of each action
        self.signals = TrainingSignals(
            window=cfg.window,
            total_steps=self.trainee.total_steps,
            eval_every=cfg.eval_every,
            observation=cfg.observation,
        )
        self.action_space = self.actions.space
        self.observation_space = self.signals.builder.space
        self.history = RenderHistory()
        self._done = True

    @staticmethod
    def _check_options(name: str, options: dict[str, Any]) -> None:
        valid = trainee_options(name)
        unknown = sorted(set(options) - valid)
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for LRScheduleEnv with trainee {name!r}; "
                f"valid env options: {sorted(ENV_OPTIONS)}; valid trainee options: {sorted(valid)}"
            )

    # -- gymnasium API ---------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        t0 = time.perf_counter()
        self.trainee.reset(int(self.np_random.integers(0, 2**31 - 1)))
        self.base_lr = self.trainee.base_lr  # drawn after the trainee's seed: that one stays
        if self.config.base_lr_spread > 1:  # task randomisation (EnvConfig.base_lr_spread)
            half = math.log(self.config.base_lr_spread)
            self.base_lr *= math.exp(float(self.np_random.uniform(-half, half)))
        loss0 = self.trainee.evaluate()
        self._train_time = time.perf_counter() - t0
        self.lr_mult = self.actions.initial_multiplier()
        obs = self.signals.start(loss0, self.lr_mult)
        self.prev_train = 1.0  # normalised: the first minibatch loss is compared with loss0
        self._last_losses: np.ndarray | None = None  # no minibatch yet
        self._done = False
        self.history.reset(loss0, self.lr_mult * self.base_lr)
        return obs, self._info(diverged=False)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        lr = self._begin_step(action)
        t0 = time.perf_counter()
        for _ in range(self._action_steps):  # the hot loop
            if self._record_step(self.trainee.train_step(lr)):
                self._record_eval(self.trainee.evaluate())
            if self._diverged:
                break
        return self._end_step(time.perf_counter() - t0)

    # -- the phases of step(), also driven by envs.vec_env for K envs in lockstep ----------
    def _begin_step(self, action: Any) -> float:
        """Apply ``action``; returns the LR of the optimizer steps to come."""
        if self._done:
            raise RuntimeError("the episode has ended; call reset() before step()")
        self.lr_mult = self.actions.multiplier(action, self.lr_mult)
        self._best_before = self.signals.best_val
        self._diverged = False
        self._action_steps = min(
            self.config.steps_per_action, self.trainee.total_steps - self.trainee.steps_done
        )
        return self.lr_mult * self.base_lr

    def _record_step(self, stats: StepStats) -> bool:
        """Record one optimizer step's signals; returns whether an evaluation is due now."""
        self.signals.record_step(stats.loss, stats.grad_norms, self.lr_mult, stats.moments)
        if not (stats.finite and math.isfinite(stats.loss)):
            self._diverged = True
            return False
        step = self.trainee.steps_done
        return step % self.config.eval_every == 0 or step == self.trainee.total_steps

    def _record_eval(self, val_loss: float) -> None:
        """Record the evaluation made after the latest optimizer step."""
        self.signals.record_eval(val_loss)
        self._diverged = not math.isfinite(self.signals.val_loss)

    def _end_step(
        self, train_seconds: float
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """The step's observation, reward, termination and info (``train_seconds`` is timed)."""
        self._train_time += train_seconds
        diverged = self._diverged
        lr = self.lr_mult * self.base_lr
        rows = self.signals.flush()
        obs = self.signals.observation()
        total, done_steps = self.trainee.total_steps, self.trainee.steps_done
        terminated = diverged or done_steps >= total
        remaining = (total - done_steps) / total
        if diverged:
            reward = divergence_reward(
                self.config.reward,
                self.config.reward_params,
                remaining=remaining,
                margin=self.config.divergence_margin,
                loss_cap=self.config.reward_loss_cap,
            )
        else:
            inputs = RewardInputs(
                train=self._normalise(rows.train_loss),
                prev_train=self.prev_train,
                val=self._normalise(rows.val_loss),
                evals=self._normalise(rows.evals),
                best_before=self._best_before / self.loss0,
                remaining=remaining,
                total_steps=total,
            )
            reward = float(self.reward_fn(inputs))
            self.prev_train = float(inputs.train[-1])
        self._last_losses = rows.train_loss
        self._done = terminated
        self.history.append(done_steps, lr, float(rows.train_loss[-1]), self.signals.val_loss)
        info = self._info(diverged)
        if terminated:
            info.update(self._final_info())
        return obs, reward, terminated, False, info

    @property
    def loss0(self) -> float:
        """Validation loss of the freshly initialised model (the loss normaliser)."""
        return self.signals.loss0

    def render(self) -> str | np.ndarray | None:
        """The status line (``"ansi"``), the curves image (``"rgb_array"``), or None."""
        if self.render_mode == "ansi":
            return render_ansi(self.history, self.trainee.total_steps)
        if self.render_mode == "rgb_array":
            return render_rgb(self.history, self.trainee.total_steps)
        return None

    def signature(self) -> dict[str, Any]:
        """What a policy trained on this env depends on (stored in policy files)."""
        return env_signature(
            env_id=self.spec.id if self.spec is not None else None,
            trainee=self.trainee_name,
            trainee_options=self.trainee_options,
            config=self.config,
            features=self.signals.builder.features,
        )

    # -- internals -------------------------------------------------------------------------
    def _normalise(self, losses: np.ndarray) -> np.ndarray:
        """Losses as rewards see them: divided by ``loss0``, clipped to ``[0, loss cap]``."""
        return np.clip(losses / self.loss0, 0.0, self.config.reward_loss_cap)

    def _info(self, diverged: bool) -> dict[str, Any]:
        info = {
            "lr": self.lr_mult * self.base_lr,
            "base_lr": self.base_lr,
            "val_loss": float(self.signals.val_loss),
            "best_val_loss": float(self.signals.best_val),
            "step": self.trainee.steps_done,
            "diverged": diverged,
        }
        if self._last_losses is not None:  # absent at reset: no minibatch yet
            info["train_loss"] = float(self._last_losses[-1])
        return info

    def _final_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "final_train_loss": float(np.mean(self._last_losses)),
            "best_val_loss": float(self.signals.best_val),
            "total_train_time": self._train_time,
        }
        episode_info = getattr(self.trainee, "episode_info", None)
        if episode_info is not None:  # a trainee's own end-of-run metrics (LoRA: forgetting)
            info.update(episode_info())
        generate = getattr(self.trainee, "generate", None)
        if generate is not None and self.config.inference_tokens > 0:
            t0 = time.perf_counter()
            generate(self.config.inference_tokens)
            info["avg_inference_tokens_per_second"] = self.config.inference_tokens / (
                time.perf_counter() - t0
            )
        return info
