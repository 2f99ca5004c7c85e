"""envs.render: the ansi status line and the rgb_array plot of an episode's LR and losses."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from envs.render import RENDER_MODES, RenderHistory, render_ansi, render_rgb


def make_history(lrs: tuple[float, float, float] = (1e-3, 1e-3, 5e-4)) -> RenderHistory:
    """Reset at val loss 2.5 and LR lrs[0], then two steps of 32 optimizer steps each."""
    history = RenderHistory()
    history.reset(2.5, lrs[0])
    history.append(32, lrs[1], 0.61234, 0.55)
    history.append(64, lrs[2], 0.43124, 0.60)
    return history


def test_render_modes() -> None:
    assert RENDER_MODES == ("ansi", "rgb_array")


def test_history_records_reset_and_steps() -> None:
    history = make_history()
    assert history.steps == [0, 32, 64]
    assert history.lrs == [1e-3, 1e-3, 5e-4]
    assert math.isnan(history.train_losses[0]) and history.train_losses[1:] == [0.61234, 0.43124]
    assert history.val_losses == [2.5, 0.55, 0.60]
    history.reset(3.0, 0.1)  # a new episode forgets the old one
    assert (history.steps, history.lrs, history.val_losses) == ([0], [0.1], [3.0])


def test_ansi_line_after_steps() -> None:
    # Last step 64, LR 5e-4, train 0.43124 -> 0.4312, val 0.60, best = min(2.5, 0.55, 0.60).
    expected = "step 64/2000  lr 5.000e-04  train 0.4312  val 0.6000  best 0.5500"
    assert render_ansi(make_history(), 2000) == expected


def test_ansi_line_after_reset_only() -> None:
    history = RenderHistory()
    history.reset(2.5, 1e-3)
    assert (
        render_ansi(history, 2000) == "step 0/2000  lr 1.000e-03  train -  val 2.5000  best 2.5000"
    )


def test_ansi_line_diverged_step_and_empty_history() -> None:
    history = make_history()
    history.append(96, 5e-4, math.nan, math.inf)  # best ignores the non-finite val loss
    expected = "step 96/2000  lr 5.000e-04  train nan  val inf  best 0.5500"
    assert render_ansi(history, 2000) == expected
    assert render_ansi(RenderHistory(), 10) == "step 0/10  lr -  train -  val -  best -"


def assert_image(img: np.ndarray, shape: tuple[int, int, int]) -> None:
    assert img.shape == shape and img.dtype == np.uint8
    assert img.min() != img.max()  # not a constant image


def test_rgb_shape_dtype_and_not_constant() -> None:
    assert_image(render_rgb(make_history(), 2000), (240, 320, 3))
    history = RenderHistory()
    history.reset(2.5, 1e-3)  # only the reset point
    assert_image(render_rgb(history, 2000), (240, 320, 3))
    assert_image(render_rgb(RenderHistory(), 2000), (240, 320, 3))  # never reset


def test_rgb_differs_with_lr_curve_only_in_lr_panel() -> None:
    constant = render_rgb(make_history((1e-3, 1e-3, 1e-3)), 100)
    decaying = render_rgb(make_history((1e-3, 1e-4, 1e-5)), 100)
    # Layout: LR axes span rows ~7..97, loss axes rows ~116..214 (margins 0.97/0.11, hspace 0.12).
    assert (constant[:100] != decaying[:100]).any()
    np.testing.assert_array_equal(constant[110:], decaying[110:])


@pytest.mark.parametrize(("height", "width"), [(123, 321), (301, 457), (480, 640)])
def test_rgb_custom_size(height: int, width: int) -> None:
    assert_image(render_rgb(make_history(), 2000, height=height, width=width), (height, width, 3))


def test_rgb_with_nan_and_inf() -> None:
    history = make_history()
    history.append(96, math.inf, math.nan, math.inf)
    history.append(128, 0.0, -math.inf, math.nan)  # non-positive values cannot be log-scaled
    assert_image(render_rgb(history, 2000), (240, 320, 3))
    all_bad = RenderHistory()
    all_bad.reset(math.nan, math.nan)
    all_bad.append(1, math.inf, math.nan, math.inf)
    assert_image(render_rgb(all_bad, 10), (240, 320, 3))


def render_in_new_thread(history: RenderHistory, total_steps: int) -> np.ndarray:
    """Render on a fresh thread, hence with a freshly built figure."""
    results: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: results.append(render_rgb(history, total_steps)))
    worker.start()
    worker.join()
    return results[0]


def test_rgb_reused_figure_matches_fresh_figure() -> None:
    fresh = render_in_new_thread(make_history(), 2000)
    render_rgb(make_history((1.0, 1e-6, 1e-2)), 50)  # different data and x range in between
    render_rgb(RenderHistory(), 7)  # and empty axes (fixed y limits)
    np.testing.assert_array_equal(render_rgb(make_history(), 2000), fresh)
