"""Fixtures of the trainee tests: a small character corpus in the prepared format."""

from __future__ import annotations

import pytest

from trainees.data.chars import load_prepared, prepare_bytes

TEXT = (
    "ROMEO:\nBut soft, what light through yonder window breaks?\n"
    "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n"
) * 60


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Tiny Shakespeare's format (train 90%, val 10%) holding ``TEXT``."""
    folder = tmp_path_factory.mktemp("corpus")
    prepare_bytes(TEXT.encode(), folder, (0.9, 0.1))
    return load_prepared("shakespeare_char", folder)
