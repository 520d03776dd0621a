"""Provenance: the record schema, the dataset store, readers, ingest, lineage, export and stats.

* :mod:`.schema` - the one Arrow record schema
* :mod:`.manifest`, :mod:`.reader`, :mod:`.writer` - the dataset store (manifest and PROV documents,
  reading and verifying, atomic writing)
* :mod:`.readers` - one module per source format, one suffix table
* :mod:`.ingest`, :mod:`.merge`, :mod:`.lineage`, :mod:`.export`, :mod:`.stats`, :mod:`.builtin`
"""

from provkit.core.atomic import publish_dir, sha256_file
from provkit.errors import DatasetError
from provkit.provenance import builtin
from provkit.provenance.builtin import BUILTIN_SOURCES, builtin_texts, iter_builtin
from provkit.provenance.export import FORMATS as EXPORT_FORMATS
from provkit.provenance.export import export_dataset
from provkit.provenance.ingest import (
    IdIndex,
    Ingest,
    IngestConfig,
    IngestSummary,
    ingest,
)
from provkit.provenance.lineage import lineage
from provkit.provenance.manifest import KINDS, Activity
from provkit.provenance.merge import MergeSummary, merge_datasets
from provkit.provenance.reader import Dataset, verify
from provkit.provenance.readers import FieldMap, ReadOptions, Source, resolve_sources
from provkit.provenance.schema import (
    COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    Evidence,
    Generator,
    Origin,
    check_schema,
    content_hash,
    make_batch,
)
from provkit.provenance.stats import dataset_info, dataset_stats
from provkit.provenance.writer import DatasetWriter

__all__ = [
    "BUILTIN_SOURCES",
    "COLUMNS",
    "EXPORT_FORMATS",
    "KINDS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Activity",
    "Dataset",
    "DatasetError",
    "DatasetWriter",
    "Evidence",
    "FieldMap",
    "Generator",
    "IdIndex",
    "Ingest",
    "IngestConfig",
    "IngestSummary",
    "Origin",
    "ReadOptions",
    "Source",
    "builtin",
    "builtin_texts",
    "check_schema",
    "content_hash",
    "dataset_info",
    "dataset_stats",
    "export_dataset",
    "ingest",
    "iter_builtin",
    "lineage",
    "merge_datasets",
    "MergeSummary",
    "make_batch",
    "publish_dir",
    "resolve_sources",
    "sha256_file",
    "verify",
]
