"""The observation: a window of the most recent optimizer steps, one row per step."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from trainees.base import N_GRAD_BUCKETS

LOG_BOUND = 20.0  # log-ratio features are clipped to [-20, 20] (a factor of ~5e8)
FEATURES: tuple[str, ...] = (
    "remaining_fraction",
    "log_train_loss",
    "log_val_loss",
    "val_staleness",
    *(f"log_grad_norm_{i}" for i in range(N_GRAD_BUCKETS)),
    "log_lr_multiplier",
    "mask",
)
_UNIT = {"remaining_fraction", "val_staleness", "mask"}  # features in [0, 1]

# columns every observation version shares (experts and the policy network read them)
REMAINING_COL, LOG_LR_COL, MASK_COL = 0, -2, -1


class ObservationBuilder:
    """Keeps the last ``window`` rows and turns raw training signals into bounded features.

    Loss features are ``log(loss / loss0)`` with ``loss0`` the validation loss of the
    freshly initialised model; gradient features are ``log(norm / norm0)`` with ``norm0``
    the first step's norms. Rows are appended once per action (vectorised).
    """

    features = FEATURES

    def __init__(self, window: int) -> None:
        self.window = window
        low = np.array([0.0 if f in _UNIT else -LOG_BOUND for f in FEATURES], np.float32)
        high = np.array([1.0 if f in _UNIT else LOG_BOUND for f in FEATURES], np.float32)
        self.low, self.high = low, high
        self.space = spaces.Box(
            np.tile(low, (window, 1)), np.tile(high, (window, 1)), dtype=np.float32
        )
        self._buf = np.zeros((window, len(FEATURES)), np.float32)
        self._log_cols = np.array([f.startswith("log_") for f in FEATURES[1:-1]])
        self.loss0 = 1.0
        self.grad0: np.ndarray | None = None

    def reset(self, loss0: float, lr_mult: float = 1.0) -> np.ndarray:
        """Start a run: all rows padding but one for step 0.

        That row has the full budget, the initial LR multiplier ``lr_mult`` and zero loss
        and gradient-norm features (each is the log-ratio of a value to itself).
        """
        self.loss0 = loss0
        self.grad0 = None
        self._buf[:] = 0.0
        self._buf[-1, 0] = 1.0  # remaining fraction
        self._buf[-1, -2] = np.clip(np.log(lr_mult), -LOG_BOUND, LOG_BOUND)
        self._buf[-1, -1] = 1.0  # mask
        return self._buf.copy()

    def append(
        self,
        remaining: np.ndarray,
        train_loss: np.ndarray,
        val_loss: np.ndarray,
        staleness: np.ndarray,
        grad_norms: np.ndarray,
        lr_mult: float | np.ndarray,
    ) -> np.ndarray:
        """Add ``k`` rows (arrays of length ``k``; grad norms ``(k, N_GRAD_BUCKETS)``).

        ``lr_mult`` is one multiplier for every row, or one per row.

        Rows are written in place into the window (no temporaries): this runs once per
        action, between training steps, so it is kept to a handful of numpy calls.
        """
        if self.grad0 is None:
            self.grad0 = np.maximum(grad_norms[0], 1e-12)
        w = min(len(train_loss), self.window)
        buf = self._buf
        buf[:-w] = buf[w:]
        new = buf[-w:]
        new[:, 0] = remaining[-w:]
        new[:, 1] = train_loss[-w:]
        new[:, 2] = val_loss[-w:]
        new[:, 1:3] /= self.loss0
        new[:, 3] = staleness[-w:]
        new[:, -2] = np.broadcast_to(lr_mult, (len(train_loss),))[-w:]
        new[:, -1] = 1.0
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            new[:, 4:-2] = grad_norms[-w:] / self.grad0  # inf / inf on a diverged first step
            np.log(new[:, 1:-1], out=new[:, 1:-1], where=self._log_cols)
        # a diverged step's NaN/inf becomes the bound it ran towards, so rows stay in the space
        np.nan_to_num(new, copy=False, nan=LOG_BOUND, posinf=LOG_BOUND, neginf=-LOG_BOUND)
        np.clip(new, self.low, self.high, out=new)
        return buf.copy()

    def current(self) -> np.ndarray:
        """A copy of the current window."""
        return self._buf.copy()

    def state_dict(self) -> dict:
        """The window and its normalisers as plain lists (exact; for resuming)."""
        grad0 = None if self.grad0 is None else self.grad0.tolist()
        return {"buf": self._buf.tolist(), "loss0": self.loss0, "grad0": grad0}

    def load_state_dict(self, state: dict) -> None:
        """Restore a state written by :meth:`state_dict`."""
        if np.shape(state["buf"]) != self._buf.shape:
            raise ValueError(
                f"window of shape {np.shape(state['buf'])} does not fit {self._buf.shape}"
            )
        self._buf[:] = np.asarray(state["buf"], dtype=np.float32)
        self.loss0 = float(state["loss0"])
        self.grad0 = None if state["grad0"] is None else np.asarray(state["grad0"], np.float64)


# -- observation v1: dimensionless signals -------------------------------------------------

SLOPE_STEPS = 32  # minibatch losses in the loss-slope regression (one action's worth)
EMA_DECAY = 0.95  # of the minibatch loss whose position in its running range is observed
_POOLS = ("", *(f"_{i}" for i in range(N_GRAD_BUCKETS)))  # pooled, then buckets by depth
FEATURES_V1: tuple[str, ...] = (
    "remaining_fraction",
    "val_staleness",
    "train_loss_position",
    "val_loss_position",
    "loss_slope_t",
    *(f"log_update_ratio{p}" for p in _POOLS),
    *(f"update_cosine{p}" for p in _POOLS),
    "log_lr_multiplier",
    "mask",
)
_BOUNDS_V1 = {
    "remaining_fraction": (0.0, 1.0),
    "val_staleness": (0.0, 1.0),
    "train_loss_position": (0.0, 1.0),
    "val_loss_position": (0.0, 1.0),
    "mask": (0.0, 1.0),
    **{f"update_cosine{p}": (-1.0, 1.0) for p in _POOLS},
}
OBSERVATIONS: dict[str, tuple[str, ...]] = {"v0": FEATURES, "v1": FEATURES_V1}
for _features in OBSERVATIONS.values():  # the shared columns (experts, policy network)
    assert _features[REMAINING_COL] == "remaining_fraction" and _features[MASK_COL] == "mask"
    assert _features[LOG_LR_COL] == "log_lr_multiplier"


def observation_version(features: list[str] | tuple[str, ...]) -> str:
    """The observation version (``"v0"``, ``"v1"``) whose features are ``features``.

    Raises:
        ValueError: ``features`` is no version's (naming each version's first features).
    """
    for version, names in OBSERVATIONS.items():
        if tuple(features) == names:
            return version
    raise ValueError(
        f"features {list(features)[:6]}... are no observation version's; valid: "
        + "; ".join(f"{v}: {list(n[:6])}..." for v, n in OBSERVATIONS.items())
    )


def signature_observation(signature: Mapping[str, Any]) -> str | None:
    """The observation version an env signature (a policy file's ``env``) reads: its
    ``observation`` when given, else the version of its ``features``; None with neither.

    Raises:
        ValueError: features that are no version's (:func:`observation_version`).
    """
    if signature.get("observation") is not None:
        return str(signature["observation"])
    features = signature.get("features")
    return observation_version(features) if features else None


def position(value: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``(value - low) / (high - low)``: where a value lies in its running range.

    1 where the range is empty (one value so far) or the value is not finite.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (value - low) / (high - low)
    return np.where(np.isfinite(out), out, 1.0)


def slope_t(losses: np.ndarray, first: int, n_min: int = 3) -> np.ndarray:
    """t-statistic of the least-squares slope of loss on step, per row.

    Row ``j`` (``j >= first``) regresses ``losses[max(0, j - SLOPE_STEPS + 1) : j + 1]`` on
    their step index: ``slope / SE(slope)``, with ``SE² = (SSR / (n - 2)) / Sxx``. Returned
    for rows ``first..``: 0 with fewer than ``n_min`` points; ±inf for an exact line. It is
    unchanged when the losses are scaled or shifted.
    """
    y = np.asarray(losses, dtype=np.float64)
    m = np.arange(first, len(y))
    start = np.maximum(m - SLOPE_STEPS + 1, 0)
    n = (m - start + 1).astype(np.float64)
    x = np.arange(len(y), dtype=np.float64) - first  # centred near the rows: less cancellation
    c = [np.concatenate([[0.0], np.cumsum(v)]) for v in (y, x * y, y * y)]
    sy, sxy, syy = (ci[m + 1] - ci[start] for ci in c)
    a, b = x[start], x[m]  # Σx and Σx² of the consecutive run a..b in closed form
    sx = n * (a + b) / 2
    sxx_raw = (b * (b + 1) * (2 * b + 1) - (a - 1) * a * (2 * a - 1)) / 6
    with np.errstate(divide="ignore", invalid="ignore"):
        sxx = sxx_raw - sx * sx / n
        cxy = sxy - sx * sy / n
        cyy = syy - sy * sy / n
        slope = cxy / sxx
        ssr = np.maximum(cyy - slope * cxy, 0.0)
        t = slope / np.sqrt(ssr / (n - 2) / sxx)
    t = np.where(n >= n_min, t, 0.0)
    return np.where(np.isnan(t), 0.0, t)


class DimensionlessBuilder:
    """The ``v1`` observation: signals that read the same on any model.

    Per row (one optimizer step), in :data:`FEATURES_V1`'s order:

    - ``remaining_fraction``, ``val_staleness``, ``log_lr_multiplier``, ``mask``: as in v0;
    - ``train_loss_position``: an EMA (decay :data:`EMA_DECAY`) of the minibatch loss,
      placed in the running range ``[min, max]`` of that EMA: 0 at its lowest so far,
      1 at its highest (and while the range is a single value);
    - ``val_loss_position``: the validation loss in force, in the running range of the
      validation losses so far (the fresh model's included);
    - ``loss_slope_t``: ``asinh(t)`` of the slope of the last :data:`SLOPE_STEPS`
      minibatch losses on the step, ``t = slope / SE(slope)`` (:func:`slope_t`);
    - ``log_update_ratio`` (pooled, then 4 buckets by parameter count, shallow to deep):
      ``log(‖u_{t-1}‖ / ‖θ_t‖)``, the last update relative to the weights;
    - ``update_cosine`` (same pools): ``cos(g_t, u_{t-1})`` between this step's gradient
      and the last update: < 0, going on downhill (the LR could be higher); > 0, the
      last step overshot (the hypergradient's sign, Baydin et al. 2018).

    The loss features are unchanged when the loss is multiplied by a constant or shifted;
    the update features do not involve the loss. Before the first update the ratio is
    at its lower bound and the cosine 0. Rows are appended once per action (vectorised).
    """

    features = FEATURES_V1

    def __init__(self, window: int) -> None:
        self.window = window
        names = FEATURES_V1
        low = np.array([_BOUNDS_V1.get(f, (-LOG_BOUND, LOG_BOUND))[0] for f in names], np.float32)
        high = np.array([_BOUNDS_V1.get(f, (-LOG_BOUND, LOG_BOUND))[1] for f in names], np.float32)
        self.low, self.high = low, high
        self.space = spaces.Box(
            np.tile(low, (window, 1)), np.tile(high, (window, 1)), dtype=np.float32
        )
        self._buf = np.zeros((window, len(names)), np.float32)
        self._col = {f: i for i, f in enumerate(names)}
        self._reset_state(1.0)

    def _reset_state(self, loss0: float) -> None:
        self.ema: float | None = None
        self.ema_range = [math.inf, -math.inf]
        self.val_range = [loss0, loss0]
        self.recent: list[float] = []  # the last SLOPE_STEPS - 1 minibatch losses

    def _first_row(self, lr_mult: float) -> np.ndarray:
        row = np.zeros(len(FEATURES_V1), np.float32)
        c = self._col
        row[c["remaining_fraction"]] = 1.0
        row[[c["train_loss_position"], c["val_loss_position"]]] = 1.0
        row[c["log_update_ratio"] : c["update_cosine"]] = -LOG_BOUND  # no update yet
        row[LOG_LR_COL] = np.clip(np.log(lr_mult), -LOG_BOUND, LOG_BOUND)
        row[MASK_COL] = 1.0
        return row

    def reset(self, loss0: float, lr_mult: float = 1.0) -> np.ndarray:
        """Start a run: all rows padding but one for step 0 (full budget, no update yet)."""
        self._reset_state(float(loss0))
        self._buf[:] = 0.0
        self._buf[-1] = self._first_row(lr_mult)
        return self._buf.copy()

    def append(
        self,
        remaining: np.ndarray,
        train_loss: np.ndarray,
        val_loss: np.ndarray,
        staleness: np.ndarray,
        moments: np.ndarray,
        lr_mult: float | np.ndarray,
    ) -> np.ndarray:
        """Add ``k`` rows; ``moments`` is ``(k, 4, 1 + N_GRAD_BUCKETS)``
        (``trainees.gradnorm.UpdateMoments.pool`` per step)."""
        k = len(train_loss)
        train = np.asarray(train_loss, dtype=np.float64)
        ema = np.empty(k)
        e = self.ema
        for j, y in enumerate(train):  # k floats per action: cheaper than a filter call
            e = y if e is None else EMA_DECAY * e + (1 - EMA_DECAY) * y
            ema[j] = e
        self.ema = None if e is None else float(e)
        lo = np.minimum.accumulate(np.concatenate([[self.ema_range[0]], ema]))[1:]
        hi = np.maximum.accumulate(np.concatenate([[self.ema_range[1]], ema]))[1:]
        self.ema_range = [float(lo[-1]), float(hi[-1])]
        val = np.asarray(val_loss, dtype=np.float64)
        vlo = np.minimum.accumulate(np.concatenate([[self.val_range[0]], val]))[1:]
        vhi = np.maximum.accumulate(np.concatenate([[self.val_range[1]], val]))[1:]
        self.val_range = [float(vlo[-1]), float(vhi[-1])]
        history = np.concatenate([self.recent, train])
        t = slope_t(history, len(self.recent))
        self.recent = history[-(SLOPE_STEPS - 1) :].tolist()
        g2, p2, u2, dot = (moments[:, i, :] for i in range(4))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = 0.5 * np.log(u2 / p2)
            cosine = dot / np.sqrt(g2 * u2)
        cosine = np.where(np.isfinite(cosine), cosine, 0.0)  # no update yet, or a zero gradient
        rows = np.concatenate(
            [
                np.asarray(remaining, dtype=np.float64)[:, None],
                np.asarray(staleness, dtype=np.float64)[:, None],
                position(ema, lo, hi)[:, None],
                position(val, vlo, vhi)[:, None],
                np.arcsinh(t)[:, None],
                ratio,
                cosine,
                np.log(np.broadcast_to(lr_mult, (k,)))[:, None],
                np.ones((k, 1)),
            ],
            axis=1,
        )
        # a diverged step's NaN/inf becomes the bound it ran towards, so rows stay in the space
        np.nan_to_num(rows, copy=False, nan=LOG_BOUND, posinf=LOG_BOUND, neginf=-LOG_BOUND)
        w = min(k, self.window)
        buf = self._buf
        buf[:-w] = buf[w:]
        buf[-w:] = np.clip(rows[-w:], self.low, self.high)
        return buf.copy()

    def current(self) -> np.ndarray:
        """A copy of the current window."""
        return self._buf.copy()

    def state_dict(self) -> dict:
        """The window and the running statistics as plain values (exact; for resuming)."""
        return {
            "buf": self._buf.tolist(),
            "ema": self.ema,
            "ema_range": list(self.ema_range),
            "val_range": list(self.val_range),
            "recent": list(self.recent),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a state written by :meth:`state_dict`."""
        if np.shape(state["buf"]) != self._buf.shape:
            raise ValueError(
                f"window of shape {np.shape(state['buf'])} does not fit {self._buf.shape}"
            )
        self._buf[:] = np.asarray(state["buf"], dtype=np.float32)
        self.ema = None if state["ema"] is None else float(state["ema"])
        self.ema_range = [float(x) for x in state["ema_range"]]
        self.val_range = [float(x) for x in state["val_range"]]
        self.recent = [float(x) for x in state["recent"]]


BUILDERS: dict[str, type] = {"v0": ObservationBuilder, "v1": DimensionlessBuilder}
