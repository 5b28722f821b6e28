"""Alignment rules: what a rule costs on top of the GEMMs it needs, and what
an epoch with it costs against a backpropagation epoch.

Run:  python benchmarks/bench_alignment.py [--quick] [--repeats N]
                                          [--clock wall|cpu] [--json PATH]
      python benchmarks/bench_alignment.py --kp-kernel [--repeats N]
                                          [--clock wall|cpu] [--json PATH]
      python benchmarks/bench_alignment.py --accuracy [--seeds N]

1. Per-layer update.  laefast.alignment's kernel for one layer (W n_out x
   n_in, B n_in x n_out, a batch of b inputs) against exactly the GEMMs that
   rule needs, same shapes, same transposes, same BLAS (SciPy's, called
   from the same compiled loop; `gemms_only=True` runs just those calls).
   Each rule runs with B held both ways: "B^T" (B^T in W's layout, as the
   trainer keeps it and as update() takes a Fortran-ordered B) and "B" (B
   itself in C order).
   Both are repeated inside the kernel so per-call Python costs cancel.
   SA needs no GEMM at all: its row compares it with one GEMM of the layer
   (delta^T x, the weight gradient every rule computes anyway).
   Target: update / GEMMs <= 1.3.  For KP the "floor" column bounds from
   below an update that runs the BLAS GEMM and then its tie: the GEMM plus
   one NumPy pass that reads two n_in x n_out matrices and writes a third
   (np.add, a STREAM triad), the memory traffic the tie adds (read W and
   B, write the second gradient).  KP's own kernel (B held transposed, a
   large layer, a small batch) forms delta^T x without BLAS and finishes
   it from registers and L1, and can go below it.
2. Epoch.  One epoch of laefast.alignment's MLP trainer (the compiled
   train_epoch the trainer calls) with each rule, against the BP epoch, on
   the digits-sized network and on a wider one.  Target: rule / BP <= 1.5.
   On the wide network, for BP, AA, WM and IA, it also times one batch's
   GEMMs alone (every GEMM the trainer calls for that rule, same shapes,
   transposes and betas, through the same SciPy BLAS, each call at its
   best) and prints their ratio to BP's and the epoch ratio the rule would
   reach if it added nothing but those GEMMs to the BP epoch.

3. With --kp-kernel (only this): KP's update with B held transposed, G
   from BLAS panels against the same with KP's own kernel allowed (as
   update() allows it with BLAS on one thread: the kernel takes layers
   within KP_KERNEL_MIN_ENTRIES and KP_KERNEL_MAX_B, in
   src/laefast/_alignment.pyx, and BLAS the rest), each as a ratio to
   the one-thread GEMM, over layer sizes, batches and both float types.

4. With --accuracy (no timings): every rule against BP on scikit-learn's
   digits (50 epochs) and breast_cancer (100 epochs: it has a quarter of
   digits' samples, so a quarter of the SGD steps per epoch), over several
   seeds: test accuracy per seed and its mean, final angles (mean and max
   over seeds).  The numbers quoted in docs/alignment.md.

All timings are best-of-N, taken interleaved (every candidate once per
round) in this one run, with BLAS limited to one thread (minibatch GEMMs are
too small for threads).  --clock cpu times each call by the CPU time of the
calling thread instead of the wall clock: all the work runs on that thread
(one BLAS thread, GIL released), so on a machine shared with other jobs it
leaves out the time the thread sat descheduled.  The script is a report: it
always exits 0.
"""

import argparse
import json
import sys
import time

import numpy as np

from laefast import _alignment
from laefast import alignment as al
from laefast._mlp import _Layout
from laefast._parallel import serial_blas
from scipy.linalg import blas as _blas

import laefast_bench as harness  # benchmarks/laefast_bench

RULES = ("sa", "aa", "wm", "ia", "kp")


CLOCK = "wall"


def _best_interleaved(fns, repeats):
    """{name: best seconds} with every function timed once per round."""
    if CLOCK == "wall":
        return harness.interleaved_best(fns, repeats, settle_s=0.0,
                                        warmup=False)[0]
    best = {name: np.inf for name in fns}
    for _ in range(max(1, int(repeats))):
        for name, fn in fns.items():
            t0 = time.thread_time()
            fn()
            best[name] = min(best[name], time.thread_time() - t0)
    return best


def bench_layer(b, n_in, n_out, repeats, bt=True, dtype=np.float64):
    """bt: B held as B^T in W's layout (the trainer's; Fortran order for
    laefast.alignment.update), else B itself in C order."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    shape_b = (n_out, n_in) if bt else (n_in, n_out)
    B = rng.standard_normal(shape_b).astype(dtype)
    x = rng.standard_normal((b, n_in)).astype(dtype)
    delta = (rng.standard_normal((b, n_out)) / b).astype(dtype)
    gB = np.empty(shape_b, dtype)
    gW = np.empty((n_out, n_in), dtype)
    # Enough inner repeats for about 5 ms per timing: short timings, many
    # rounds, so that the best one is free of other jobs on a shared machine.
    flops = 2.0 * b * n_in * n_out
    inner = int(max(2, min(20000, 2e8 / flops)))
    fns = {}
    for name in RULES:
        rule = al.get_rule(name)
        work = np.empty(max(1, _alignment.layer_workspace(
            rule.code, b, n_in, n_out, bt)), dtype)
        args = (rule.code, W, B, x, delta, *rule._kernel_coefficients(), gB,
                gW, work, bt, inner)

        # update() takes KP's own kernel with BLAS on one thread, as here.
        kp_kernel = name == "kp" and bt

        def full(args=args, kp_kernel=kp_kernel):
            _alignment.layer_update(*args, gemms_only=False,
                                    kp_kernel=kp_kernel)

        def gemms(args=args):
            _alignment.layer_update(*args, gemms_only=True)

        fns[(name, "update")] = full
        fns[(name, "gemms")] = gemms
    P, Q, S = (np.empty(n_in * n_out, dtype) for _ in range(3))
    P[:], Q[:] = W.ravel(), B.ravel()

    def triad():
        for _ in range(inner):
            np.add(P, Q, out=S)

    fns["triad"] = triad
    with serial_blas():
        best = _best_interleaved(fns, repeats)
    rows = []
    one_gemm = best[("kp", "gemms")] / inner
    triad_s = best["triad"] / inner
    for name in RULES:
        upd = best[(name, "update")] / inner
        gem = best[(name, "gemms")] / inner
        # GEMMs of b x n_in x n_out the kernel runs (SA: none; AA: three
        # for thin batches, where that beats a pass over an n_in x n_out
        # matrix, else two).
        n_gemms = _alignment.layer_gemm_count(al.get_rule(name).code, b)
        ratio = upd / gem if n_gemms else upd / one_gemm
        # Only KP's tie is a pass of its own (the others fold their decay
        # into what the GEMM accumulates onto).
        floor = (gem + triad_s) / gem if name == "kp" else None
        rows.append({"rule": name, "layout": "B^T" if bt else "B",
                     "b": b, "n_in": n_in, "n_out": n_out,
                     "gemms": n_gemms, "update_s": upd, "gemms_s": gem,
                     "one_gemm_s": one_gemm, "triad_s": triad_s,
                     "ratio": ratio, "floor": floor,
                     "pass": bool(ratio <= 1.3)})
    return rows


KP_KERNEL_CASES = [(32, 128, 64), (32, 256, 128), (32, 256, 256),
                   (32, 512, 512), (64, 512, 512), (128, 512, 512),
                   (256, 512, 512), (32, 1024, 1024)]


def kp_kernel_table(repeats, out=sys.stdout):
    """KP (B held transposed): BLAS panels against its own kernel."""
    code = al.get_rule("kp").code
    coefficients = al.get_rule("kp")._kernel_coefficients()
    print("KP, B held transposed: update / one-thread GEMM, G from BLAS "
          "panels against KP's own kernel where it takes it", file=out)
    print(f"{'dtype':<8} {'b':>4} {'n_in':>5} {'n_out':>5} {'GEMM us':>9} "
          f"{'BLAS':>6} {'kernel':>7}", file=out)
    rows = []
    for dtype in (np.float64, np.float32):
        for b, n_in, n_out in KP_KERNEL_CASES:
            rng = np.random.default_rng(0)
            W, Bt = (rng.standard_normal((n_out, n_in)).astype(dtype)
                     for _ in range(2))
            x = rng.standard_normal((b, n_in)).astype(dtype)
            delta = (rng.standard_normal((b, n_out)) / b).astype(dtype)
            gB, gW = np.empty_like(W), np.empty_like(W)
            work = np.empty(_alignment.layer_workspace(code, b, n_in, n_out,
                                                       True), dtype)
            inner = int(max(2, min(20000, 2e8 / (2.0 * b * n_in * n_out))))
            args = (code, W, Bt, x, delta, *coefficients, gB, gW, work, True,
                    inner)
            fns = {"blas": lambda: _alignment.layer_update(*args),
                   "kernel": lambda: _alignment.layer_update(
                       *args, kp_kernel=True),
                   "gemm": lambda: _alignment.layer_update(
                       *args, gemms_only=True)}
            with serial_blas():
                best = _best_interleaved(fns, repeats)
            g = best["gemm"]
            row = {"dtype": np.dtype(dtype).name, "b": b, "n_in": n_in,
                   "n_out": n_out, "gemm_s": g / inner,
                   "blas": best["blas"] / g, "kernel": best["kernel"] / g}
            rows.append(row)
            print(f"{row['dtype']:<8} {b:4d} {n_in:5d} {n_out:5d} "
                  f"{1e6 * row['gemm_s']:9.1f} {row['blas']:6.2f} "
                  f"{row['kernel']:7.2f}", file=out, flush=True)
    if not _alignment.simd():
        print("(no AVX2+FMA here: the kernel column is the BLAS path)",
              file=out)
    return rows


def bench_epoch(sizes, n, batch, repeats, dtype=np.float64):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], n).astype(np.intp)
    order = rng.permutation(n).astype(np.intp)
    layout = _Layout(sizes)
    theta0 = (0.1 * rng.standard_normal(layout.n_params)).astype(dtype)
    fns = {}
    state = {}
    for name in ("bp",) + ("fa",) + RULES:
        rule = al.get_rule(name)
        theta = theta0.copy()
        vel = np.zeros_like(theta)
        state[name] = (theta, vel)
        args = (rule.code, theta, vel, *layout.args(), X, y, order, batch,
                0.01, 0.9, *rule._kernel_coefficients(),
                getattr(rule, "noise_std", 0.0), 1)

        def epoch(args=args, theta=theta, vel=vel):
            # Each timed epoch starts from the same weights.
            theta[...] = theta0
            vel[...] = 0
            _alignment.train_epoch(*args)

        fns[name] = epoch
    with serial_blas():
        best = _best_interleaved(fns, repeats)
    return [{"rule": name, "sizes": list(sizes), "n": n, "batch": batch,
             "epoch_s": best[name], "ratio_to_bp": best[name] / best["bp"],
             "pass": bool(name == "bp" or best[name] / best["bp"] <= 1.5)}
            for name in best]


def _rm_gemm(ta, tb, A, Bm, C, beta=0.0):
    """Row-major C = op(A) op(B) + beta C through SciPy's BLAS (the library
    the compiled trainer calls), as laefast._blas does: in column-major
    terms C^T = op(B)^T op(A)^T, and a C-ordered array is its own
    transpose in Fortran order."""
    gemm = _blas.dgemm if C.dtype == np.float64 else _blas.sgemm
    gemm(1.0, Bm.T, A.T, beta=beta, c=C.T, trans_a=int(tb), trans_b=int(ta),
         overwrite_c=1)


def _epoch_gemm_calls(name, sizes, b, rng):
    """Every GEMM one training batch of the compiled trainer runs for this
    rule: same shapes, transposes and betas, on random operands (list of
    thunks).  Only the GEMMs: no bias, ReLU, softmax or momentum passes."""
    L = len(sizes) - 1
    f = lambda *shape: rng.standard_normal(shape)
    calls = []
    wm, ia, aa = name == "wm", name == "ia", name == "aa"
    for l in range(L):   # forward: Z = A W^T; WM stacks its noise under A
        n_in, n_out = sizes[l], sizes[l + 1]
        m = 2 * b if wm and l > 0 else b
        A, W, Z = f(m, n_in), f(n_out, n_in), np.empty((m, n_out))
        calls.append(lambda A=A, W=W, Z=Z: _rm_gemm(0, 1, A, W, Z))
        if aa and l > 0:   # AA's T = 2 a x B - b H: x B, B held as B^T
            Bt, T = f(n_out, n_in), np.empty((b, n_out))
            calls.append(lambda A=A, Bt=Bt, T=T: _rm_gemm(0, 1, A, Bt, T))
    for l in range(L - 1, -1, -1):
        n_in, n_out = sizes[l], sizes[l + 1]
        d, A, gW = f(b, n_out), f(b, n_in), np.empty((n_out, n_in))
        calls.append(lambda d=d, A=A, gW=gW: _rm_gemm(1, 0, d, A, gW))
        if l == 0:
            break
        if name == "bp":   # the error through W: d W
            W, dn = f(n_out, n_in), np.empty((b, n_in))
            calls.append(lambda d=d, W=W, dn=dn: _rm_gemm(0, 0, d, W, dn))
        else:              # through B, held as B^T: d B^T (IA: [d; H] B^T)
            m = 2 * b if ia else b
            D, Bt, dn = f(m, n_out), f(n_out, n_in), np.empty((m, n_in))
            calls.append(lambda D=D, Bt=Bt, dn=dn: _rm_gemm(0, 0, D, Bt, dn))
        if name in ("aa", "wm", "ia"):   # B^T's gradient: T^T x onto vel
            X, T, V = f(b, n_in), f(b, n_out), f(n_out, n_in)
            calls.append(lambda X=X, T=T, V=V: _rm_gemm(1, 0, T, X, V, 1.0))
    return calls


def bench_epoch_gemms(sizes, batch, repeats, names=("bp", "aa", "wm", "ia")):
    """{rule: seconds of one batch's GEMMs (see _epoch_gemm_calls)}: each
    call timed on its own (best of the interleaved rounds), then summed --
    the GEMM time an epoch of that rule cannot go below in this trainer."""
    rng = np.random.default_rng(2)
    fns = {}
    for name in names:
        for i, call in enumerate(_epoch_gemm_calls(name, sizes, batch, rng)):

            def run(call=call):
                for _ in range(4):
                    call()

            fns[(name, i)] = run
    with serial_blas():
        best = _best_interleaved(fns, repeats)
    return {name: sum(t for (nm, _), t in best.items() if nm == name) / 4
            for name in names}


def accuracy_table(seeds, out=sys.stdout):
    rows = []
    for dataset, epochs in (("digits", 50), ("breast_cancer", 100)):
        Xtr, ytr, Xte, yte = al.load_dataset(dataset)
        out.write(f"{dataset}: {len(ytr)} train / {len(yte)} test, {epochs} "
                  f"epochs, default hidden (128, 64), seeds 0..{seeds - 1}\n")
        out.write(f"{'rule':<5} {'mean acc':>8} {'vs BP':>6}  "
                  f"{'angle L2 mean/max':>18} {'angle L3 mean/max':>18}  "
                  "per-seed accuracy\n")
        bp = None
        for name in al.RULES:
            sys.stderr.write(f"{dataset} {name}\n")
            accs, angles = [], []
            for seed in range(seeds):
                res = al.train_mlp(Xtr, ytr, name, epochs=epochs,
                                   X_test=Xte, y_test=yte, seed=seed)
                accs.append(100 * res.history["test_accuracy"][-1])
                angles.append(res.history["angles"][-1])
            angles = np.array(angles)
            mean = float(np.mean(accs))
            bp = mean if name == "bp" else bp
            ang = "  ".join(f"{m:8.2f}/{x:<8.2f}" for m, x in
                            zip(angles.mean(axis=0), angles.max(axis=0)))
            out.write(f"{name:<5} {mean:8.2f} {mean - bp:+6.2f}  {ang}  "
                      + " ".join(f"{a:.2f}" for a in accs) + "\n")
            rows.append({"dataset": dataset, "epochs": epochs, "rule": name,
                         "accuracy": accs, "angles": angles.tolist()})
        out.write("\n")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer shapes and repeats")
    parser.add_argument("--repeats", type=int, default=None,
                        help="rounds of interleaved timings (default 7, "
                             "quick 3)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time calls by the wall clock (default) or by "
                             "the calling thread's CPU time")
    parser.add_argument("--json", metavar="PATH", default=None)
    parser.add_argument("--accuracy", action="store_true",
                        help="instead of timings: accuracy and angles of "
                             "every rule on digits and breast_cancer")
    parser.add_argument("--seeds", type=int, default=5,
                        help="seeds for --accuracy (default 5)")
    parser.add_argument("--kp-kernel", action="store_true",
                        help="only KP's update with BLAS panels against "
                             "its own kernel, over sizes")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if args.accuracy:
        rows = accuracy_table(args.seeds)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
        return 0
    repeats = args.repeats or (3 if args.quick else 7)
    global CLOCK
    CLOCK = args.clock
    if args.kp_kernel:
        print(harness.environment_line())
        rows = kp_kernel_table(repeats)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
        return 0
    print(harness.environment_line())
    clock = "wall-clock" if CLOCK == "wall" else "thread CPU"
    print(f"best of {repeats} interleaved rounds, BLAS on one thread, "
          f"float64, {clock} time")
    print()

    shapes = [(32, 128, 64), (32, 512, 512), (256, 512, 512)]
    if args.quick:
        shapes = shapes[:2]
    layer_rows = []
    print("1. per-layer update against the GEMMs it needs "
          "(target: ratio <= 1.3)")
    print(f"{'rule':<5} {'held':>4} {'b':>4} {'n_in':>5} {'n_out':>5} "
          f"{'GEMMs':>5} {'update us':>10} {'GEMMs us':>10} {'ratio':>6} "
          f"{'floor':>6}")
    for b, n_in, n_out in shapes:
        for bt in (True, False):
            sys.stderr.write(f"layer b={b} {n_in}x{n_out} "
                             f"{'B^T' if bt else 'B'}\n")
            for row in bench_layer(b, n_in, n_out, repeats, bt):
                layer_rows.append(row)
                gem = (f"{1e6 * row['gemms_s']:10.2f}" if row["gemms"] else
                       f"{'(1 GEMM ' + format(1e6 * row['one_gemm_s'], '.1f') + ')':>10}")
                floor = "" if row["floor"] is None else f"{row['floor']:.2f}"
                print(f"{row['rule']:<5} {row['layout']:>4} {b:4d} "
                      f"{n_in:5d} {n_out:5d} "
                      f"{row['gemms']:5d} {1e6 * row['update_s']:10.2f} "
                      f"{gem} {row['ratio']:6.2f} {floor:>6} "
                      f"{'PASS' if row['pass'] else 'FAIL'}")
    print("(held: B^T, B kept in W's layout as the trainer keeps it, which\n"
          " update() takes from a Fortran-ordered B; B: B in C order.\n"
          " SA needs no GEMM: its ratio is to one GEMM of the layer)")
    print()

    nets = [((64, 128, 64, 10), 1438, 32), ((256, 512, 512, 10), 4096, 64)]
    if args.quick:
        nets = nets[:1]
    epoch_rows = []
    print("2. one training epoch against the BP epoch (target: ratio <= 1.5)")
    for sizes, n, batch in nets:
        sys.stderr.write(f"epoch {sizes}\n")
        rows = bench_epoch(sizes, n, batch, repeats)
        # Only on the wide network: on the digits network one GEMM takes a
        # few microseconds, as long as the Python call that times it.
        gemms = (bench_epoch_gemms(sizes, batch, repeats)
                 if max(sizes) >= 256 else {})
        n_batches = -(-n // batch)
        bp_s = next(r["epoch_s"] for r in rows if r["rule"] == "bp")
        for row in rows:
            g = gemms.get(row["rule"])
            row["batch_gemms_s"] = g
            row["gemms_ratio_to_bp"] = None if g is None else g / gemms["bp"]
            # The epoch ratio if the rule added nothing but its GEMMs.
            row["gemm_bound"] = (None if g is None else
                                 1 + (g - gemms["bp"]) * n_batches / bp_s)
        epoch_rows += rows
        print(f"network {' -> '.join(map(str, sizes))}, {n} samples, "
              f"batch {batch}")
        if gemms:
            print(f"  {'rule':<4} {'epoch':>12}  {'ratio':>8}       "
                  f"{'GEMMs/batch':>11} {'vs BP':>6} {'bound':>6}")
        for row in rows:
            extra = ""
            if row["batch_gemms_s"] is not None:
                extra = (f"{1e6 * row['batch_gemms_s']:9.0f}us "
                         f"{row['gemms_ratio_to_bp']:5.2f}x "
                         f"{row['gemm_bound']:6.2f}")
            print(f"  {row['rule']:<4} {1e3 * row['epoch_s']:9.2f} ms  "
                  f"{row['ratio_to_bp']:5.2f}x BP "
                  f"{'    ' if row['rule'] == 'bp' else ('PASS' if row['pass'] else 'FAIL')}"
                  f" {extra}")
    if any(row.get("batch_gemms_s") for row in epoch_rows):
        print("(GEMMs/batch: one batch's GEMMs alone, as the trainer calls "
              "them, each at its best;\n bound: the epoch ratio if the rule "
              "added nothing but its GEMMs)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": harness.environment(),
                       "layer": layer_rows, "epoch": epoch_rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
