"""The benchmark harness: problems, timers, peers and the environment report
that the asv suite (``benchmarks/benchmarks/``) and the benchmark scripts
(``benchmarks/bench_*.py``, ``docs/make_figures.py``) share.

Why it lives here and not in the package: asv builds and installs each
commit it measures, but it imports the benchmark suite -- the folder that
``benchmark_dir`` in ``benchmarks/asv.conf.json`` names -- from the working
tree asv is run from, never from the measured commit (asv_runner imports
that package by its path).  So this harness is the same for every
commit in asv's history: a change to a problem, a timer or a settle time is
a change to the suite (rerun the history), not a change in laefast's speed.
It uses only laefast's public names (``solve``, ``fit``, ``step``,
``LAEPCA``, ``reference``, ``metrics``, ...), so it runs against old
commits as long as they have those.

``python -m laefast bench`` runs the same kinds of rows for a user from the
installed package, with the package's own copy of what it needs
(:mod:`laefast.bench`); this harness does not import it (older commits,
which asv also measures, lack it).

The scripts in ``benchmarks/`` import it as ``laefast_bench`` (their own
folder is first on ``sys.path``); the asv suite does too, after putting
``benchmarks/`` on ``sys.path`` (``benchmarks/benchmarks/_common.py``);
``docs/make_figures.py`` and the tests likewise.

Modules:

- :mod:`.timing`: ``time_once``, ``best_of``, ``interleaved_best``,
  ``settle`` and ``error_per_second``: every timer of the suite and the
  scripts;
- :mod:`.environment`: ``environment`` and ``environment_line``;
- :mod:`.problems`: the problems (paper, spiked, digits) and ``METHODS``;
- :mod:`.runs`: laefast, its reference and the peers on a problem, and the
  measurements (``measure_problem`` gives every row of one problem).

Timing traps: NumPy and SciPy bundle separate OpenBLAS builds whose idle
threads spin for a while after a call; before a measurement that switches
from one to the other on a problem large enough for BLAS to use threads, the
harness sleeps briefly (:func:`settle`).
"""

from .environment import environment, environment_line
from .problems import (DEFAULT_PROBLEMS, DIGITS, GD_METHODS, METHODS,
                       PROBLEMS, SPIKED, Problem, get_problem,
                       problem_samples, problem_unavailable,
                       sklearn_available, start_error)
from .runs import (PEERS, Measurement, fit_laefast, fit_laepca,
                   laefast_trajectory, measure_fit, measure_laefast,
                   measure_laepca, measure_peer, measure_problem,
                   measure_reference, peer_function, peer_names,
                   reference_cap, reference_trajectory, run_laefast,
                   run_reference, step_function)
from .timing import (SETTLE_S, best_of, error_per_second, interleaved_best,
                     settle, time_once)

__all__ = [
    "DEFAULT_PROBLEMS", "DIGITS", "GD_METHODS", "METHODS", "PEERS",
    "PROBLEMS", "SETTLE_S", "SPIKED", "Measurement", "Problem", "best_of",
    "environment", "environment_line", "error_per_second", "fit_laefast",
    "fit_laepca", "get_problem", "interleaved_best", "laefast_trajectory",
    "measure_fit", "measure_laefast", "measure_laepca", "measure_peer",
    "measure_problem", "measure_reference", "peer_function", "peer_names",
    "problem_samples", "problem_unavailable", "reference_cap",
    "reference_trajectory", "run_laefast", "run_reference", "settle",
    "sklearn_available", "start_error", "step_function", "time_once",
]
