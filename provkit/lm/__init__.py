"""provkit.lm: everything that trains or runs a language model.

Used by the detector's LM features, the tail step's LM surprisal and the
recursive-training experiment alike::

    tok = train_bpe_tokenizer(texts, vocab_size=2048); save_tokenizer(tok, "tok/")
    model = build_tiny_opt(tok, TinyOPTConfig(layers=2))
    blocks = make_blocks(texts, tok, block_size=64)
    ids, mask = pad_right([b.token_ids for b in blocks], tok.pad_token_id)
    train_lm(model, ids, mask, weights, TrainConfig(epochs=1))
    new = generate_continuations(model, prompts, DecodingConfig(), pad_id=..., eos_id=...)
    ppl = sequence_perplexities(model, ids, mask)
    save_model(model, tok, "m/"); model, tok = load_model("m/")
    wm = WatermarkConfig(key_file="wm.key")                # [decoding.watermark]: DecodingConfig(watermark=wm)
    z, p = score_watermark(texts, "m/", key_file="wm.key")  # transformers' WatermarkDetector, per text

Modules: :mod:`.tokenizer` (BPE training, loading), :mod:`.models` (tiny OPT,
load/save/clone), :mod:`.blocks` (fixed-length token blocks, padding),
:mod:`.training` (weighted ``train_lm``, perplexities), :mod:`.generate`, :mod:`.watermark`
(green-list watermark config, keys, scoring), :mod:`.watermark_data` (datasets: detect, ingest tagger,
a watermarking share of generators).
"""

from provkit.lm.blocks import Block, encode_texts, make_blocks, pad_left, pad_right, split_blocks
from provkit.lm.generate import DecodingConfig, generate_continuations
from provkit.lm.models import TinyOPTConfig, build_tiny_opt, clone_model, load_model, save_model
from provkit.lm.tokenizer import load_tokenizer, save_tokenizer, train_bpe_tokenizer
from provkit.lm.watermark import (
    WatermarkConfig,
    WatermarkKey,
    WatermarkScorer,
    WatermarkScores,
    load_scorer,
    read_key,
    score_watermark,
)
from provkit.lm.watermark_data import (
    WatermarkSummary,
    WatermarkTagger,
    build_tagger,
    detect_dataset,
    generate_with_share,
    watermark_share,
)
from provkit.lm.training import (
    TrainConfig,
    TrainStats,
    corpus_perplexity,
    per_sequence_loss,
    sequence_nll,
    sequence_perplexities,
    train_lm,
    weighted_loss,
)

__all__ = [
    "Block", "encode_texts", "make_blocks", "pad_left", "pad_right", "split_blocks",
    "DecodingConfig", "generate_continuations",
    "TinyOPTConfig", "build_tiny_opt", "clone_model", "load_model", "save_model",
    "load_tokenizer", "save_tokenizer", "train_bpe_tokenizer",
    "TrainConfig", "TrainStats", "corpus_perplexity", "per_sequence_loss", "sequence_nll", "sequence_perplexities",
    "train_lm", "weighted_loss",
    "WatermarkConfig", "WatermarkKey", "WatermarkScorer", "WatermarkScores", "load_scorer", "read_key", "score_watermark",
    "WatermarkSummary", "WatermarkTagger", "build_tagger", "detect_dataset", "generate_with_share", "watermark_share",
]
