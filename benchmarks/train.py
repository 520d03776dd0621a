"""Training and generation throughput of provkit's loop vs plain transformers, on the same model and data.

Prints tokens/s for: provkit ``train_lm`` (weighted per-sequence loss) vs a plain loop using the
model's own ``labels=`` loss; provkit ``generate_continuations`` vs ``model.generate`` called on the
same prompts in the same batches; and the ratio (target >= 1.0).  ``--tiny-preset`` also times a
full ``prov experiment run`` with the tiny preset (the <= 10 minutes on 2 CPU cores target).

    python benchmarks/train.py [--threads 1] [--blocks 256] [--tiny-preset]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from provkit.provenance import builtin_texts
from provkit.lm import (DecodingConfig, TinyOPTConfig, TrainConfig, build_tiny_opt, clone_model, generate_continuations,
                        make_blocks, pad_left, pad_right, train_bpe_tokenizer, train_lm)
from provkit.train import load_experiment_config, run_experiment


def plain_train(model, ids, mask, cfg: TrainConfig) -> float:
    """The textbook transformers loop: labels=ids, mean token loss, AdamW, same batches."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    t0 = time.perf_counter()
    for _ in range(cfg.epochs):
        order = torch.randperm(ids.size(0), generator=gen)
        for s in range(0, ids.size(0), cfg.batch_size):
            idx = order[s : s + cfg.batch_size]
            labels = ids[idx].masked_fill(mask[idx] == 0, -100)
            loss = model(input_ids=ids[idx], attention_mask=mask[idx], labels=labels).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
    return time.perf_counter() - t0


@torch.inference_mode()
def plain_generate(model, prompts, dec: DecodingConfig, pad_id, eos_id, batch_size) -> float:
    t0 = time.perf_counter()
    for s in range(0, len(prompts), batch_size):
        ids, mask = pad_left(prompts[s : s + batch_size], pad_id)
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=dec.max_new_tokens, min_new_tokens=dec.max_new_tokens,
                       num_beams=dec.num_beams, repetition_penalty=dec.repetition_penalty, do_sample=False,
                       pad_token_id=pad_id, eos_token_id=eos_id)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--blocks", type=int, default=256)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--tiny-preset", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    texts = builtin_texts("python-docs")
    tok = train_bpe_tokenizer(texts, 2048)
    blocks = make_blocks(texts, tok, 64)[: args.blocks]
    ids, mask = pad_right([b.token_ids for b in blocks], tok.pad_token_id)
    base = build_tiny_opt(tok, TinyOPTConfig())
    cfg = TrainConfig(epochs=1, batch_size=32)
    ntok = int(mask.sum()) * cfg.epochs
    plain_train(clone_model(base), ids[: cfg.batch_size], mask[: cfg.batch_size], cfg)  # warm-up: neither side pays first-call costs
    t_plain = plain_train(clone_model(base), ids, mask, cfg)
    ours = train_lm(clone_model(base), ids, mask, None, cfg)
    print(f"train    plain transformers {ntok / t_plain:9.0f} tok/s | provkit train_lm {ours.tokens / ours.seconds:9.0f} tok/s"
          f" | ratio {t_plain / ours.seconds:.2f}")
    dec = DecodingConfig()
    prompts = [b.token_ids for b in blocks[: args.prompts]]
    gtok = len(prompts) * dec.max_new_tokens
    plain_generate(base, prompts[:4], dec, tok.pad_token_id, tok.eos_token_id, 4)  # warm-up
    t_plain = plain_generate(base, prompts, dec, tok.pad_token_id, tok.eos_token_id, 64)
    t0 = time.perf_counter()
    generate_continuations(base, prompts, dec, pad_id=tok.pad_token_id, eos_id=tok.eos_token_id, batch_size=64)
    t_ours = time.perf_counter() - t0
    print(f"generate plain model.generate  {gtok / t_plain:9.0f} tok/s | provkit generate  {gtok / t_ours:9.0f} tok/s"
          f" | ratio {t_plain / t_ours:.2f}  (5-way beam, repetition_penalty 3.0)")
    if args.tiny_preset:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            run_experiment(load_experiment_config(threads=args.threads), d)
            print(f"tiny preset: prov experiment run total wall time {time.perf_counter() - t0:.0f} s (target <= 600 s)")


if __name__ == "__main__":
    main()
