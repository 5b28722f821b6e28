"""asv benchmarks for laefast: see benchmarks/asv.conf.json and README.md.

The measurements themselves live in :mod:`laefast._bench` (shared with
``python -m laefast bench``), so asv measures the installed package.
"""
