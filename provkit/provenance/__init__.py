"""Provenance: the record schema, the dataset store, readers, lineage and export."""

from provkit.provenance import builtin
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
from provkit.provenance.export import FORMATS as EXPORT_FORMATS
from provkit.provenance.export import croissant, export_dataset
from provkit.provenance.ingest import IdIndex, Ingest, IngestConfig, IngestSummary, ingest
from provkit.provenance.lineage import LineageNode, dataset_chain, lineage
from provkit.provenance.readers import FieldMap, ReadOptions, Source, parse_hf_uri, resolve_sources
from provkit.provenance.stats import dataset_info, dataset_stats
from provkit.provenance.store import (
    KINDS,
    Activity,
    Dataset,
    DatasetError,
    DatasetWriter,
    new_activity_id,
    sha256_file,
    open_atomic,
    verify,
    publish_dir,
    exchange_paths,
    write_bytes_atomic,
    write_json_atomic,
)

__all__ = [
    "BUILTIN_SOURCES", "BuiltinDoc", "builtin_texts", "iter_builtin",
    "COLUMNS", "EVIDENCES", "GENERATOR_TYPE", "ORIGINS", "SCHEMA", "SCHEMA_VERSION", "Evidence", "Generator",
    "Origin", "check_schema", "conform", "content_hash", "make_batch", "normalize_text",
    "KINDS", "Activity", "Dataset", "DatasetError", "DatasetWriter", "new_activity_id", "sha256_file", "verify",
    "write_bytes_atomic", "write_json_atomic", "open_atomic", "publish_dir", "exchange_paths",
    "EXPORT_FORMATS", "croissant", "export_dataset",
    "IdIndex", "Ingest", "IngestConfig", "IngestSummary", "ingest",
    "LineageNode", "dataset_chain", "lineage",
    "FieldMap", "ReadOptions", "Source", "parse_hf_uri", "resolve_sources",
    "dataset_info", "dataset_stats",
]
