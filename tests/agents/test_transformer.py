import pytest
import torch

from agents.transformer import WindowTransformer
from envs.observation import FEATURES, ObservationBuilder


@pytest.mark.parametrize("window", [1, 15, 16, 100, 512])
def test_output_shape_for_window_sizes(window):
    space = ObservationBuilder(window).space
    extractor = WindowTransformer(space, features_dim=32)
    obs = torch.zeros(5, window, len(FEATURES))
    obs[:, -1, -1] = 1.0  # one real row
    out = extractor(obs)
    assert out.shape == (5, 32) and torch.isfinite(out).all()
    assert extractor.n_patches == -(-window // 16)


def test_padding_rows_do_not_change_features():
    space = ObservationBuilder(64).space
    extractor = WindowTransformer(space).eval()
    obs = torch.rand(1, 64, len(FEATURES))
    obs[:, :40] = 0.0  # rows before the run began: padding, mask 0
    obs[:, 40:, -1] = 1.0
    noisy = obs.clone()
    noisy[:, :32, :-1] = 5.0  # garbage in whole padding patches (mask stays 0)
    torch.testing.assert_close(extractor(obs), extractor(noisy))


def test_four_layers_two_heads():
    extractor = WindowTransformer(ObservationBuilder(32).space)
    assert len(extractor.encoder.layers) == 4
    assert extractor.encoder.layers[0].self_attn.num_heads == 2
