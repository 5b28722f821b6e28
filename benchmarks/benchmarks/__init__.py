"""asv benchmarks for laefast: see benchmarks/asv.conf.json and README.md.

asv builds and installs each commit it measures, but it imports this suite
from the working tree it is run in (``benchmark_dir`` in asv.conf.json),
with ``benchmarks/`` on ``sys.path``.  The problems, timers and peers live
beside it, in ``benchmarks/laefast_bench/``, and are imported the same way:
every commit in asv's history is measured with one harness, so a change to
the harness shows up as a change of the suite, never as laefast getting
faster or slower.  The harness calls laefast's public names only.
"""
