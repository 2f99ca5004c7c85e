def tiny_kwargs(env_id: str, corpus_dir: str) -> dict:
    """Tiny budgets and small data for each registered id (a -v1 id: its v0's)."""
    return {
        "LRSchedule-MLP-v0": dict(dataset="digits", total_steps=48),
        "LRSchedule-ResNet18-v0": dict(dataset="digits", total_steps=12, batch_size=8, width=8),
        "LRSchedule-GPT-v0": dict(
            data_dir=corpus_dir,
            total_steps=24,
            steps_per_action=4,
            eval_every=8,
            inference_tokens=8,
        ),
        # a tiny base pretrained in the test's own cache (a few seconds), then LoRA
        "LRSchedule-LoRA-v0": dict(
            data_dir=corpus_dir,
            total_steps=24,
            steps_per_action=4,
            eval_every=8,
            inference_tokens=8,
            n_layer=1,
            n_head=2,
            n_embd=32,
            block_size=16,
            batch_size=4,
            eval_batches=2,
            source_eval_windows=8,
            pretrain_steps=12,
            pretrain_batch_size=8,
            corpus_bytes=20_000,
        ),
        "LRSchedule-ViT-v0": dict(dataset="digits", total_steps=48, dim=16),
        "LRSchedule-CNN-v0": dict(dataset="digits", total_steps=48, channels=4),
        "LRSchedule-LSTM-v0": dict(
            data_dir=corpus_dir,
            total_steps=24,
            steps_per_action=4,
            eval_every=8,
            inference_tokens=8,
            n_embd=32,
            block_size=16,
            batch_size=4,
        ),
        "LRSchedule-Quadratic-v0": dict(),
    }[env_id.removesuffix("-v1") + "-v0" if env_id.endswith("-v1") else env_id]
