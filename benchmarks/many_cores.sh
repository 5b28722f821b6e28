#!/usr/bin/env bash
# Every multi-core performance check in one command, for a machine with many
# cores: LAEPCA against scikit-learn's solvers, the samples-path product, the
# Gram pass's and SGD's scaling curve, and the small-call overheads.
#
#   bash benchmarks/many_cores.sh [THREADS] [OUTDIR]
#
# THREADS defaults to every CPU this process may use; OUTDIR (default
# many_cores_out) receives one log and one JSON file per script, so that a
# run cut short still leaves what it measured.  Each script is limited to
# its own time budget (seconds, below) and the run goes on past one that
# fails or times out; the budgets add up to 9 minutes, under a 10-minute
# slot on a borrowed machine.  BUDGET_PCT=85 scales every budget to 85%
# (to leave room for a build in the same slot).  PYTHON names the
# interpreter (default: python), for machines where the one with NumPy is
# not first on PATH; call it by its own path (a symbolic link to a virtual
# environment's python loses the environment).  Run it from the
# repository root against an editable install, or from a copy of
# benchmarks/ outside it against an installed laefast (the source folder
# laefast/ has no compiled modules and would shadow the installed one).
# CONTENTION=1 adds bench_contention.py (laefast right after a threaded
# BLAS call, and with OPENBLAS_THREAD_TIMEOUT=20) with a budget of 60 s more.
set -u
py=${PYTHON:-python}
threads=${1:-$("$py" -c "import os; print(len(os.sched_getaffinity(0)))")}
out=${2:-many_cores_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

curve=""
for t in 2 4 8 16 32 64; do
    [ "$t" -lt "$threads" ] && curve="$curve $t"
done
curve="$curve $threads"
quick=${QUICK:+--quick}   # QUICK=1: the scripts' small sizes, for a trial

pct=${BUDGET_PCT:-100}

step() {   # step NAME SECONDS COMMAND...
    local name=$1 budget=$(( $2 * pct / 100 ))
    shift 2
    echo "== $name (at most ${budget} s): $*"
    timeout "$budget" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    tail -n 60 "$out/$name.log"
    [ $rc -eq 0 ] || echo "== $name ended with status $rc (124: out of time)"
}

"$py" -c "import laefast; print('laefast', laefast.__version__, \
'OpenMP:', laefast.openmp_enabled())" || exit 1
# shellcheck disable=SC2086  # $quick and $curve are lists of words
step peers 240 "$py" benchmarks/bench_peers.py --threads "$threads" $quick \
    --json "$out/peers.json"
step products 60 "$py" benchmarks/bench_products.py --threads "$threads" \
    $quick
step stream 180 "$py" benchmarks/bench_stream.py --threads $curve $quick \
    --json "$out/stream.json"
step foundation 60 "$py" benchmarks/bench_foundation.py $quick \
    --json "$out/foundation.json"
if [ -n "${CONTENTION:-}" ]; then
    step contention 60 "$py" benchmarks/bench_contention.py \
        --threads "$threads" --repeats 2 --thread-timeout 20
fi
