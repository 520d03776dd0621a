"""Core: the plumbing every layer shares, written once.

* :mod:`provkit.core.atomic` - atomic file and directory writes, ``sha256_file``
* :mod:`provkit.core.hashing` - the one ``fmix64`` finaliser and ``seeded_uniform``
* :mod:`provkit.core.text` - the text normaliser and the word tokenisers
* :mod:`provkit.core.config` - dict / TOML -> frozen dataclass, with one-line errors
* :mod:`provkit.core.progress` - the progress protocol the CLI implements
* :mod:`provkit.core.lazy` - ``lazy_import``: heavy third-party modules imported on first use

Nothing here imports another provkit package but :mod:`provkit.errors`.
"""

from provkit.core.atomic import (
    dumps_json,
    exchange_paths,
    fsync_dir,
    fsync_file,
    open_atomic,
    publish_dir,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
)
from provkit.core.config import build_dataclass, coerce, describe, read_toml
from provkit.core.hashing import fmix64, seeded_uniform
from provkit.core.progress import Advance, Progress, quiet_advance, quiet_progress
from provkit.core.text import count_tokens, normalize_text, normalized_words, word_tokens, words

__all__ = [
    "dumps_json", "exchange_paths", "fsync_dir", "fsync_file", "open_atomic", "publish_dir", "sha256_file", "write_bytes_atomic",
    "write_json_atomic", "build_dataclass", "coerce", "describe", "read_toml", "fmix64", "seeded_uniform",
    "Advance", "Progress", "quiet_advance", "quiet_progress",
    "count_tokens", "normalize_text", "normalized_words", "word_tokens", "words",
]
