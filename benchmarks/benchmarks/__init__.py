"""asv benchmarks for laefast: see benchmarks/asv.conf.json and README.md.

asv builds and installs each commit it measures, but it imports this suite
from the working tree it is run in (``benchmark_dir`` in asv.conf.json,
resolved from that file's folder), never from the measured commit.  The
problems, timers and peers live beside the suite, in
``benchmarks/laefast_bench/`` (``_common.py`` puts ``benchmarks/`` on
``sys.path`` to import it): every commit in asv's history is measured with
one harness, so a change to the harness shows up as a change of the suite,
never as laefast getting faster or slower.  The harness calls laefast's
public names only.
"""
