"""provkit.train: the recursive-training collapse experiment and the toy models.

``load_experiment_config`` reads a preset + TOML + flags; ``run_experiment``
trains generation after generation for every condition and seed (models and
generation come from :mod:`provkit.lm`, corpora from :mod:`provkit.provenance`,
curation from :mod:`provkit.filters`); ``write_report`` / ``compare_runs``
turn the metrics into plots and a report; ``run_toy`` / ``run_toys`` run the
paper's toy models (Gaussian, GMM, a VAE on digits) under the same mixing
conditions (:mod:`provkit.train.toy`); ``audit`` / ``write_audit`` are ``prov audit`` (the
collapse-risk report of a corpus: it needs the detector and the diversity metrics).
"""

from provkit.train.audit import AuditConfig, AuditResult, audit, write_audit
from provkit.train.config import Condition, ExperimentConfig, parse_condition, preset
from provkit.train.config import load_config as load_experiment_config
from provkit.train.crawl import ARMS as CRAWL_ARMS
from provkit.train.crawl import CrawlConfig, CrawlRun, load_crawl_config, run_crawl
from provkit.train.crawl_report import crawl_statistics, gap_recovered, gap_text, write_crawl_report
from provkit.train.loop import ExperimentRun, RunSummary, load_corpus, read_metrics, run_experiment
from provkit.train.report import compare_runs, write_report
from provkit.train.workers import default_workers
from provkit.train.toy import TOY_KINDS, ToyConfig, ToyResult, expected_mean_sq_drift, expected_sigma, run_toy, write_toy

__all__ = [
    "AuditConfig", "AuditResult", "audit", "write_audit",
    "Condition", "ExperimentConfig", "parse_condition", "preset", "load_experiment_config",
    "TOY_KINDS", "ToyConfig", "ToyResult", "expected_mean_sq_drift", "expected_sigma", "run_toy",
    "ExperimentRun", "RunSummary", "load_corpus", "read_metrics", "run_experiment",
    "compare_runs", "write_report", "write_toy",
    "CRAWL_ARMS", "CrawlConfig", "CrawlRun", "load_crawl_config", "run_crawl", "crawl_statistics", "gap_recovered",
    "gap_text", "write_crawl_report", "default_workers",
]
