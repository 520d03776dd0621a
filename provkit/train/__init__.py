"""provkit.train: tokenizers, small OPT models, weighted training, generation,
perplexity, and the recursive-training collapse experiment.

Model API (used by the ``lm`` detector and to generate model text)::

    tok = train_bpe_tokenizer(texts, vocab_size=2048); save_tokenizer(tok, "tok/")
    model = build_tiny_opt(tok, TinyOPTConfig(layers=2))
    blocks = make_blocks(texts, tok, block_size=64)
    ids, mask = pad_right([b.token_ids for b in blocks], tok.pad_token_id)
    train_lm(model, ids, mask, weights, TrainConfig(epochs=1))
    new = generate_continuations(model, prompts, DecodingConfig(), pad_id=..., eos_id=...)
    ppl = sequence_perplexities(model, ids, mask)
    save_model(model, tok, "m/"); model, tok = load_model("m/")
"""

from provkit.train.config import Condition, ExperimentConfig, parse_condition, preset
from provkit.train.config import load_config as load_experiment_config
from provkit.train.corpus import Block, encode_texts, make_blocks, pad_left, pad_right, split_blocks
from provkit.train.generate import DecodingConfig, generate_continuations
from provkit.train.models import (
    TinyOPTConfig,
    TrainConfig,
    TrainStats,
    build_tiny_opt,
    clone_model,
    corpus_perplexity,
    load_model,
    per_sequence_loss,
    save_model,
    sequence_nll,
    sequence_perplexities,
    train_lm,
    weighted_loss,
)
from provkit.train.tokenizer import load_tokenizer, save_tokenizer, train_bpe_tokenizer
from provkit.train.toy import TOY_KINDS, ToyConfig, ToyResult, expected_mean_sq_drift, expected_sigma, run_toy
from provkit.train.loop import ExperimentRun, RunSummary, load_corpus, read_metrics, run_experiment
from provkit.train.report import compare_runs, write_report, write_toy

__all__ = [
    "Block", "encode_texts", "make_blocks", "pad_left", "pad_right", "split_blocks",
    "DecodingConfig", "generate_continuations",
    "TinyOPTConfig", "TrainConfig", "TrainStats", "build_tiny_opt", "clone_model", "corpus_perplexity",
    "load_model", "per_sequence_loss", "save_model", "sequence_nll", "sequence_perplexities", "train_lm",
    "weighted_loss",
    "load_tokenizer", "save_tokenizer", "train_bpe_tokenizer",
    "Condition", "ExperimentConfig", "parse_condition", "preset", "load_experiment_config",
    "TOY_KINDS", "ToyConfig", "ToyResult", "expected_mean_sq_drift", "expected_sigma", "run_toy",
    "ExperimentRun", "RunSummary", "load_corpus", "read_metrics", "run_experiment",
    "compare_runs", "write_report", "write_toy",
]
