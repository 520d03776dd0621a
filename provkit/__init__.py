"""provkit: training-data provenance and filtering, and the model-collapse experiment.

One-way layers, each importing only from those below it (``lint-imports``
checks it; see ``docs/ARCHITECTURE.md``):

* :mod:`provkit.core`, :mod:`provkit.errors` - atomic writes, hashing, text, config reader, progress
* :mod:`provkit.provenance` - the record schema, the dataset store, readers, ingest, lineage, export
* :mod:`provkit.lm` - tokenizers, small OPT models, training, perplexity, generation
* :mod:`provkit.filters` - the step protocol and registry, dedup, detector, tail, mix, the pipeline runner
* :mod:`provkit.engines` - local and Ray Data execution of the filter steps
* :mod:`provkit.train` - the recursive-training experiment and the toy models
* :mod:`provkit.cli` - the ``prov`` command line
"""

__version__ = "0.1.0"
