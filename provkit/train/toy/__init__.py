"""The theory's toy loops under the language experiment's mixing conditions.

``gaussian`` (closed forms for every condition), ``gmm`` (a two-component
mixture refitted by EM) and ``vae`` (a small VAE on scikit-learn's digits)::

    results = run_toys(ToyConfig(kind="gaussian", samples=100, generations=200),
                       ["replace", "keep-human=0.1", "accumulate", "accumulate-fixed"])
    write_toy(results, "toy-out"); write_toy_report("toy-out")
    expected_mean_sq_drift(1.0, 100, 50, "keep-human=0.1")   # E (mu_50 - mu)^2
"""

from provkit.train.toy.config import (
    TOY_CONDITIONS,
    TOY_KINDS,
    ToyConfig,
    VaeSettings,
    parse_toy_condition,
)
from provkit.train.toy.gaussian import (
    closed_forms,
    expected_mean_sq_drift,
    expected_sigma,
    expected_variance,
    keep_human_limit,
    run_gaussian,
)
from provkit.train.toy.gmm import run_gmm
from provkit.train.toy.loop import ToyResult
from provkit.train.toy.report import write_toy, write_toy_report
from provkit.train.toy.run import progress_total, run_toy, run_toys
from provkit.train.toy.vae import DigitJudge, VaeResult, run_vae

__all__ = [
    "TOY_CONDITIONS", "TOY_KINDS", "ToyConfig", "VaeSettings", "parse_toy_condition",
    "closed_forms", "expected_mean_sq_drift", "expected_sigma", "expected_variance", "keep_human_limit", "run_gaussian",
    "run_gmm", "ToyResult", "write_toy", "write_toy_report", "progress_total", "run_toy", "run_toys",
    "DigitJudge", "VaeResult", "run_vae",
]
