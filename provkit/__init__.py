"""provkit: training-data provenance and filtering, and the model-collapse experiment.

Subpackages, each with a small public API in its ``__init__``:

* :mod:`provkit.provenance` - the record schema, the dataset store, readers, lineage, export
* :mod:`provkit.filters` - dedup, detector, tail weighting, mixing, the pipeline runner
* :mod:`provkit.train` - tiny/paper models, generation, the recursive experiment, metrics
* :mod:`provkit.engines` - local and Ray Data execution of the filter operators
"""

__version__ = "0.1.0"
