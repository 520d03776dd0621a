"""Provenance: the record schema, the dataset store, readers, lineage and export."""

from provkit.provenance.builtin import BUILTIN_SOURCES, BuiltinDoc, builtin_texts, iter_builtin
from provkit.provenance.schema import (
    COLUMNS,
    EVIDENCES,
    GENERATOR_TYPE,
    ORIGINS,
    SCHEMA,
    SCHEMA_VERSION,
    Evidence,
    Generator,
    Origin,
    check_schema,
    conform,
    content_hash,
    make_batch,
    normalize_text,
)
from provkit.provenance.store import (
    KINDS,
    Activity,
    Dataset,
    DatasetError,
    DatasetWriter,
    new_activity_id,
    sha256_file,
    verify,
    write_bytes_atomic,
    write_json_atomic,
)

__all__ = [
    "BUILTIN_SOURCES", "BuiltinDoc", "builtin_texts", "iter_builtin",
    "COLUMNS", "EVIDENCES", "GENERATOR_TYPE", "ORIGINS", "SCHEMA", "SCHEMA_VERSION", "Evidence", "Generator",
    "Origin", "check_schema", "conform", "content_hash", "make_batch", "normalize_text",
    "KINDS", "Activity", "Dataset", "DatasetError", "DatasetWriter", "new_activity_id", "sha256_file", "verify",
    "write_bytes_atomic", "write_json_atomic",
]
