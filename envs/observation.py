"""The observation: a window of the most recent optimizer steps, one row per step."""

from __future__ import annotations

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


class ObservationBuilder:
    """Keeps the last ``window`` rows and turns raw training signals into bounded features.

    Loss features are ``log(loss / loss0)`` with ``loss0`` the validation loss of the
    freshly initialised model; gradient features are ``log(norm / norm0)`` with ``norm0``
    the first step's norms. Rows are appended once per action (vectorised).
    """

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
