"""Alignment learning rules: per-layer backward-weight updates and a small MLP.

One layer has forward weights W (n_out x n_in), backward weights B
(n_in x n_out) and an input batch x (b x n_in), all row-major.  The forward
projection is H = x W^T (b x n_out); BP would send an output error delta
(b x n_out) back as delta W, an alignment rule sends delta B^T instead.
The kernels take B as it is or, with `bt`, held transposed: B^T laid out
as W is (see times_b), which is how the trainer keeps every B.

``layer_update`` computes one rule's gradient of its layer-local regularizer
R(W, B) with respect to B (the descent direction: B <- B - lr * grad_B), and
for Kolen-Pollack the tied pair.  Batch means: every data term of R is an
average over the b samples, so with Cb = x^T x / b

    SA   2 a B - b W^T
    AA   Cb (2 a B - b W^T)              = x^T (x M) / b,  M = 2 a B - b W^T
                                         = x^T (2 a x B - b H) / b
    WM   2 a B - b Cb W^T                = 2 a B - x^T H / b  (x: noise)
    IA   -a Cb W^T + 2 b B W Cb W^T + 2 g B
                                         = (2 b H B^T - a x)^T H / b + 2 g B
    KP   grad_W = delta^T x + 2 a W,  grad_B = (delta^T x)^T + 2 a B

(a, b, g here are the rule's coefficients alpha, beta, gamma.)  Each rule is
one fused pass over the batch: its GEMMs plus O(n_in n_out + b n) work, the
decay terms folded into what the GEMM accumulates onto, KP's tie finished
from cache one row panel at a time.

``train_epoch`` runs one epoch of minibatch SGD with momentum on a ReLU MLP
with a softmax cross-entropy output, entirely with the GIL released: forward
GEMMs, the backward pass through B (or W for BP), the rule's B-gradient and
the momentum step.  Each B takes its momentum step in the backward pass, as
soon as the error has gone through it, fused with its gradient; products a
rule shares with the passes are formed once (AA, IA: H from the forward
GEMM; IA: H B^T in the GEMM that sends the error through B^T; WM: the
noise's H in the forward GEMM, the noise stacked under the layer's input).
The loss is the batch mean of the per-sample
cross-entropy, so the output error is delta_L = (softmax(z) - onehot(y)) / b
and a layer's weight gradient is delta^T x with no further 1/b.

Parameters live in one flat vector: every layer's W then its bias, in layer
order, then the B of every layer after the first (the first layer's B would
carry the error into the input, which nothing reads, so it does not exist),
each held transposed: B_l^T, n_out x n_in, laid out as W_l is.  Gradients
(batch_gradient) and velocities use the same layout.  laefast.alignment
builds the offsets and keeps views into the vector.
"""

import numpy as np

from cython cimport floating
from libc.math cimport exp, log, sqrt, isfinite
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

from laefast._blas cimport NO_TRANS, TRANS, gemm

cdef extern from "laefast/_align_simd.h" nogil:
    # AVX2+FMA versions of finish_t, KP's row pass and uniform_noise, used
    # where the CPU has them (see the header); la_simd_wanted = 0 forces
    # the portable loops below.
    int la_simd_wanted
    void la_simd_init()
    bint la_simd_ok()
    void la_tie_d(Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t j0,
                  Py_ssize_t r, double s, const double* buf, Py_ssize_t ldb,
                  double d, const double* P, double* out)
    void la_tie_f(Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t j0,
                  Py_ssize_t r, float s, const float* buf, Py_ssize_t ldb,
                  float d, const float* P, float* out)
    void la_rows_d(Py_ssize_t r, Py_ssize_t n, const double* g,
                   Py_ssize_t ldg, double d, const double* q, double* qout,
                   Py_ssize_t ldq)
    void la_rows_f(Py_ssize_t r, Py_ssize_t n, const float* g,
                   Py_ssize_t ldg, float d, const float* q, float* qout,
                   Py_ssize_t ldq)
    void la_noise_d(Py_ssize_t n, double a, uint64_t* state, double* out)
    void la_noise_f(Py_ssize_t n, double a, uint64_t* state, float* out)
    Py_ssize_t la_kp_pack_size(Py_ssize_t b, Py_ssize_t n_in,
                               Py_ssize_t n_out)
    void la_kp_pack_d(Py_ssize_t b, Py_ssize_t n_in, Py_ssize_t n_out,
                      const double* x, const double* delta, double* xp,
                      double* dp)
    void la_kp_pack_f(Py_ssize_t b, Py_ssize_t n_in, Py_ssize_t n_out,
                      const float* x, const float* delta, float* xp,
                      float* dp)
    void la_kp_rows_d(Py_ssize_t b, Py_ssize_t n_in, Py_ssize_t h,
                      const double* xp, const double* dpj, double* g,
                      Py_ssize_t ld)
    void la_kp_rows_f(Py_ssize_t b, Py_ssize_t n_in, Py_ssize_t h,
                      const float* xp, const float* dpj, float* g,
                      Py_ssize_t ld)

la_simd_init()


cdef enum RuleCode:
    R_BP, R_FA, R_SA, R_AA, R_WM, R_IA, R_KP

BP, FA, SA, AA, WM, IA, KP = R_BP, R_FA, R_SA, R_AA, R_WM, R_IA, R_KP


# ---------------------------------------------------------------------------
# Per-layer rule kernels
#
# Every rule's B-gradient is a GEMM whose output is n_in x n_out (or, for
# KP, n_out x n_in) plus a term in B (and W) that needs one pass over
# n_in x n_out matrices.  With B held as itself, SA's and KP's terms read
# W^T or G^T, a transposed pass; with B held transposed (bt) they are
# elementwise.  Written out whole, KP's G goes to memory and its pass
# reads it back; so KP's GEMM runs in panels of about 256 KiB, each
# finished (both gradients, or the trainer's momentum step) while it is
# still in cache.  A panel that is read transposed (B held as itself) gets
# its rows padded: rows 4 KiB apart (512 float64) all fall in one L1 set,
# and reading a column of them would evict itself.  The other rules fold
# their term in B into what their GEMM accumulates onto (gemm_t_finish).
#
# Where the CPU has AVX2 and FMA, the transposed pass (finish_t) and KP's
# row pass take the versions in _align_simd.h (register-tiled transposes;
# the SSE2 baseline build vectorizes the strided reads only partly).

cdef enum:
    PANEL_ENTRIES = 32768   # entries of one panel: 256 KiB of float64
    PANEL_PAD = 16          # extra entries per row of a panel read transposed
    # Columns of one tile of a panel read transposed (KP's G, SA's W).  The
    # transposed pass writes each of a tile's columns as a run of the
    # result's row as long as the tile has rows; whole rows of 512 columns
    # (56-row panels) left those runs 7 cache lines long, too short for the
    # prefetchers.  256 columns give 120-row tiles and measured best of
    # 64 .. 512 for SA and for KP at b = 32 (512 x 512).  KP scales its
    # tiles with the batch (kp_scale).
    TILE_COLS = 256
    # KP's own kernel for G (kp_layer_bt) from this many entries of G, up to
    # this batch.  Update / one-thread GEMM, 1 Zen 4 core, BLAS panels
    # against the kernel (forced everywhere), float64 at b = 32: 128 x 64
    # 1.28 / 1.40, 256 x 128 1.28 / 1.27, 256 x 256 1.31 / 1.26, 512 x 512
    # 1.34 / 1.11, 1024 x 1024 1.57 / 1.34; at 512 x 512, b = 64 1.17 /
    # 1.13, b = 128 1.11 / 1.12, b = 256 1.05 / 1.17.  The limits sit at
    # ties (256 x 128; b = 128).  On smaller layers OpenBLAS's tuned kernel
    # wins, its G held in L2; on larger ones at small batches its G goes out
    # to L3 or memory and back, and its packing of a short inner dimension
    # (b) costs a good part of the GEMM.
    KP_KERNEL_MIN_ENTRIES = 65536
    KP_KERNEL_MAX_B = 128


cdef inline Py_ssize_t panel_rows(Py_ssize_t rows,
                                  Py_ssize_t row_len) noexcept nogil:
    # A multiple of 8 rows: whole cache lines of the transposed output.
    return min(rows, max(8, PANEL_ENTRIES // (row_len + PANEL_PAD) // 8 * 8))


cdef inline Py_ssize_t panel_size(Py_ssize_t rows,
                                  Py_ssize_t row_len) noexcept nogil:
    return panel_rows(rows, row_len) * (row_len + PANEL_PAD)


cdef void finish(Py_ssize_t n, floating s, const floating* g, floating d,
                 floating* P, floating* out, floating* vel, floating lr,
                 floating mu) noexcept nogil:
    """n entries of s g + d P: into out, or, with vel set,
    the momentum step vel = mu vel + (s g + d P), P -= lr vel (out
    unused)."""
    cdef Py_ssize_t k
    cdef floating v
    if vel == NULL:
        for k in range(n):
            out[k] = s * g[k] + d * P[k]
    else:
        for k in range(n):
            v = mu * vel[k] + (s * g[k] + d * P[k])
            vel[k] = v
            P[k] = P[k] - lr * v


cdef void finish_t(Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t j0,
                   Py_ssize_t j1, floating s, const floating* buf,
                   Py_ssize_t ldb, floating d, const floating* P,
                   floating* out) noexcept nogil:
    """Columns j0:j1 of the n_in x n_out matrix s buf^T + d P, where buf
    holds rows j0..j1-1 of the transposed operand (n_in entries each, ldb
    apart), into out.  Two rows
    of the result at a time: each pair of buf entries is one 16-byte load.
    Each step loads before it stores: rows of P and out 4 KiB apart (512
    float64) share their low address bits, and a load issued after a store
    that matches them in those bits waits for it."""
    cdef Py_ssize_t i, j, k, k1, r = j1 - j0
    cdef const floating* g
    cdef floating p, p1
    if la_simd_ok():
        if floating is double:
            la_tie_d(n_in, n_out, j0, r, s, buf, ldb, d, P, out)
        else:
            la_tie_f(n_in, n_out, j0, r, s, buf, ldb, d, P, out)
        return
    i = 0
    while i < n_in:
        k = i * n_out + j0
        if i + 1 < n_in:
            k1 = k + n_out
            for j in range(r):
                g = buf + j * ldb + i
                p = P[k + j]
                p1 = P[k1 + j]
                out[k + j] = s * g[0] + d * p
                out[k1 + j] = s * g[1] + d * p1
            i += 2
        else:
            for j in range(r):
                out[k + j] = s * buf[j * ldb + i] + d * P[k + j]
            i += 1


cdef enum StepPhase:
    # How a momentum step on B meets the steps of the batches around it
    # (see gemm_t_finish).
    PRE_DONE = 1    # vel already holds mu vel + d P
    PRE_NEXT = 2    # leave mu vel + d P in vel for the next batch


cdef void gemm_t_finish(Py_ssize_t b, Py_ssize_t n_in, Py_ssize_t n_out,
                        floating alpha, const floating* A, const floating* H,
                        floating d, floating* P, floating* out, floating* vel,
                        floating lr, floating mu, int phase) noexcept nogil:
    """alpha A^T H + d P (n_in x n_out; A is b x n_in, H b x n_out) into
    out, or the momentum step on P with it.

    The GEMM is not cut into panels: it would repack A or H once per panel,
    which costs more than the pass it saves.  Instead d P is folded into
    what the GEMM accumulates onto (beta = 1): out = d P, or, stepping,
    vel = mu vel + d P, then vel += alpha A^T H and P -= lr vel.  A trainer
    that steps every batch folds the first of those passes into the last
    one of the batch before (phase: PRE_DONE and PRE_NEXT), which gives the
    same numbers with one pass over vel and P per batch instead of two.
    """
    cdef Py_ssize_t k, n = n_in * n_out
    cdef floating* C = out if vel == NULL else vel
    cdef floating v, p
    if vel == NULL:
        if d == 0:
            gemm(TRANS, NO_TRANS, n_in, n_out, b, alpha, A, n_in, H, n_out, 0,
                 out, n_out)
            return
        for k in range(n):
            out[k] = d * P[k]
    elif not (phase & PRE_DONE):
        for k in range(n):
            vel[k] = mu * vel[k] + d * P[k]
    gemm(TRANS, NO_TRANS, n_in, n_out, b, alpha, A, n_in, H, n_out, 1, C,
         n_out)
    if vel == NULL:
        return
    if phase & PRE_NEXT:
        for k in range(n):
            v = vel[k]
            p = P[k] - lr * v
            P[k] = p
            vel[k] = mu * v + d * p
    else:
        for k in range(n):
            P[k] = P[k] - lr * vel[k]


# B in either layout.  A caller holds B as itself (n_in x n_out) or, with
# bt set, as B^T in W's layout (n_out x n_in), which is how the trainer
# keeps it: there the error goes back through B with the GEMM BP uses to
# send it through W (d B^T in the other layout is a transposed operand,
# which OpenBLAS ran about 17% slower at 64 x 512 x 512), and SA's and
# KP's terms in W^T become elementwise, with no transposed pass at all.

cdef inline void times_b(bint bt, Py_ssize_t rows, Py_ssize_t n_in,
                         Py_ssize_t n_out, floating alpha, const floating* x,
                         const floating* B, floating* out) noexcept nogil:
    """out = alpha x B (rows x n_out), x rows x n_in."""
    if bt:
        gemm(NO_TRANS, TRANS, rows, n_out, n_in, alpha, x, n_in, B, n_in, 0,
             out, n_out)
    else:
        gemm(NO_TRANS, NO_TRANS, rows, n_out, n_in, alpha, x, n_in, B, n_out,
             0, out, n_out)


cdef inline void times_b_t(bint bt, Py_ssize_t rows, Py_ssize_t n_in,
                           Py_ssize_t n_out, floating alpha, const floating* e,
                           const floating* B, floating beta,
                           floating* out) noexcept nogil:
    """out = alpha e B^T + beta out (rows x n_in), e rows x n_out."""
    if bt:
        gemm(NO_TRANS, NO_TRANS, rows, n_in, n_out, alpha, e, n_out, B, n_in,
             beta, out, n_in)
    else:
        gemm(NO_TRANS, TRANS, rows, n_in, n_out, alpha, e, n_out, B, n_out,
             beta, out, n_in)


cdef inline void b_grad_finish(bint bt, Py_ssize_t b, Py_ssize_t n_in,
                               Py_ssize_t n_out, floating alpha,
                               const floating* A, const floating* H,
                               floating d, floating* B, floating* out,
                               floating* vel, floating lr, floating mu,
                               int phase) noexcept nogil:
    """gemm_t_finish of the B-gradient alpha A^T H + d B (A b x n_in, H
    b x n_out), in B's layout."""
    if bt:
        gemm_t_finish(b, n_out, n_in, alpha, H, A, d, B, out, vel, lr, mu,
                      phase)
    else:
        gemm_t_finish(b, n_in, n_out, alpha, A, H, d, B, out, vel, lr, mu,
                      phase)


cdef inline Py_ssize_t tile_cols(Py_ssize_t n_in) noexcept nogil:
    """Columns of one tile of sa_layer's or kp_layer's panels."""
    return min(n_in, TILE_COLS)


cdef void sa_layer(Py_ssize_t n_in, Py_ssize_t n_out, floating a,
                   floating c, const floating* W, const floating* B,
                   floating* out, floating* panel) noexcept nogil:
    """a B - c W^T into out, B held as itself: tiles of W (up to
    TILE_COLS columns) are copied into a padded panel, then read
    transposed from it."""
    cdef Py_ssize_t C = tile_cols(n_in), ldb = C + PANEL_PAD
    cdef Py_ssize_t R = panel_rows(n_out, C)
    cdef Py_ssize_t j0 = 0, i0, j, r, k
    while j0 < n_out:
        r = min(R, n_out - j0)
        i0 = 0
        while i0 < n_in:
            k = min(C, n_in - i0)
            for j in range(r):
                memcpy(panel + j * ldb, W + (j0 + j) * n_in + i0,
                       sizeof(floating) * k)
            finish_t(k, n_out, j0, j0 + r, -c, panel, ldb, a, B + i0 * n_out,
                     out + i0 * n_out)
            i0 += k
        j0 += r


cdef inline Py_ssize_t kp_scale(Py_ssize_t b) noexcept nogil:
    """How many times TILE_COLS and PANEL_ENTRIES one of KP's tiles of G
    spans.  Every tile's GEMM packs its own slices of delta and x, so the
    tiles repack the batch about (1/rows + 1/cols) n_in n_out / (n_in +
    n_out) times over, which costs in proportion to b, while what a tile
    in cache saves (G not going to memory and back) does not grow with b.
    Measured at 512 x 512 (update / its GEMM; 256 columns and 256 KiB
    against twice as many and twice as large): b = 32 1.35 vs 1.42, b = 64
    1.39 vs 1.26, b = 128 1.42 vs 1.24; at b = 256 a 2 MiB panel of whole
    rows 1.12, 256 KiB tiles 1.23."""
    return min(8, max(1, b // 32))


cdef inline Py_ssize_t kp_tile_cols(Py_ssize_t b,
                                    Py_ssize_t n_in) noexcept nogil:
    return min(n_in, TILE_COLS * kp_scale(b))


cdef inline Py_ssize_t kp_tile_rows(Py_ssize_t b, Py_ssize_t n_in,
                                    Py_ssize_t n_out) noexcept nogil:
    # A multiple of 8 rows, as in panel_rows.
    return min(n_out, max(8, PANEL_ENTRIES * kp_scale(b)
                          // (kp_tile_cols(b, n_in) + PANEL_PAD) // 8 * 8))


cdef void kp_layer(Py_ssize_t b, Py_ssize_t n_in, Py_ssize_t n_out,
                   floating d, const floating* W, const floating* B,
                   const floating* x, const floating* delta, floating* gW,
                   floating* gB, floating* panel) noexcept nogil:
    """Kolen-Pollack with B held as itself: with G = delta^T x (n_out x
    n_in), gW = G + d W and gB = G^T + d B.  G is formed one padded tile
    (see kp_scale) at a time and used for both while in cache."""
    cdef Py_ssize_t C = kp_tile_cols(b, n_in), ldb = C + PANEL_PAD
    cdef Py_ssize_t R = kp_tile_rows(b, n_in, n_out)
    cdef Py_ssize_t j0 = 0, i0, j, r, c
    while j0 < n_out:
        r = min(R, n_out - j0)
        i0 = 0
        while i0 < n_in:
            c = min(C, n_in - i0)
            gemm(TRANS, NO_TRANS, r, c, b, 1, delta + j0, n_out, x + i0, n_in,
                 0, panel, ldb)
            finish_t(c, n_out, j0, j0 + r, 1, panel, ldb, d, B + i0 * n_out,
                     gB + i0 * n_out)
            if la_simd_ok():
                if floating is double:
                    la_rows_d(r, c, panel, ldb, d, W + j0 * n_in + i0,
                              gW + j0 * n_in + i0, n_in)
                else:
                    la_rows_f(r, c, panel, ldb, d, W + j0 * n_in + i0,
                              gW + j0 * n_in + i0, n_in)
            else:
                for j in range(r):
                    finish(c, 1, panel + j * ldb, d,
                           <floating*> W + (j0 + j) * n_in + i0,
                           gW + (j0 + j) * n_in + i0, NULL, 0, 0)
            i0 += c
        j0 += r


cdef void axpy(Py_ssize_t n, floating a, const floating* x,
               floating* y) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = y[i] + a * x[i]


cdef void scaled_copy(Py_ssize_t n, floating a, const floating* src,
                      floating* dst) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = a * src[i]


cdef inline bint aa_via_h(Py_ssize_t b) noexcept nogil:
    # Below about 64 samples a GEMM of the batch costs less than a pass
    # over an n_in x n_out matrix that reads W transposed.
    return b <= 64


cdef void aa_t(bint bt, Py_ssize_t b, Py_ssize_t n_in, Py_ssize_t n_out,
               double c0, double c1, const floating* x, const floating* B,
               const floating* H, floating* T) noexcept nogil:
    """AA's T = 2 a x B - b H (b x n_out): its B-gradient is x^T T / b."""
    times_b(bt, b, n_in, n_out, <floating> (2 * c0), x, B, T)
    axpy(b * n_out, <floating> (-c1), H, T)


cdef Py_ssize_t rule_scratch(int rule, Py_ssize_t b, Py_ssize_t n_in,
                             Py_ssize_t n_out) noexcept nogil:
    """Entries rule_b needs before its panel (with H not supplied)."""
    if rule == R_AA:
        return max(n_in * n_out + b * n_out, 2 * b * n_out)
    if rule == R_WM or rule == R_IA:
        return b * n_out + b * n_in
    if rule == R_KP:
        return la_kp_pack_size(b, n_in, n_out)
    return 0


cdef Py_ssize_t rule_panel(int rule, bint bt, Py_ssize_t b, Py_ssize_t n_in,
                           Py_ssize_t n_out) noexcept nogil:
    """Entries of the panel rule_b (or kp_layer, batches of up to b) needs:
    none with B held transposed (bt)."""
    if bt:
        return 0
    if rule == R_KP:
        return (kp_tile_rows(b, n_in, n_out)
                * (kp_tile_cols(b, n_in) + PANEL_PAD))
    if rule == R_SA or rule == R_AA:
        return panel_size(n_out, tile_cols(n_in))
    return 0


cdef Py_ssize_t rule_workspace(int rule, bint bt, Py_ssize_t b,
                               Py_ssize_t n_in,
                               Py_ssize_t n_out) noexcept nogil:
    """Entries of workspace layer_grad needs."""
    return (rule_scratch(rule, b, n_in, n_out)
            + rule_panel(rule, bt, b, n_in, n_out))


cdef void rule_b(int rule, bint bt, Py_ssize_t b, Py_ssize_t n_in,
                 Py_ssize_t n_out, const floating* W, floating* B,
                 const floating* x, const floating* H, const floating* T,
                 double c0, double c1, double c2, floating* gB,
                 floating* vel, floating lr, floating mu, int phase,
                 floating* work, floating* panel) noexcept nogil:
    """dR/dB of SA, AA, WM or IA for the batch x (b x n_in), into gB, or
    (vel set) the momentum step on B with it.

    bt: B (and gB, vel) held transposed, see times_b.  vel is only for bt
    (the trainer's layout): SA with B held as itself writes gB and ignores
    it.  phase: see gemm_t_finish (0 unless a trainer steps).
    H = x W^T (b x n_out) for WM and IA, or NULL to form it in work.  T,
    if the caller has it, else NULL: for AA its T (see aa_t), for IA
    H B^T (b x n_in).  panel: see rule_panel (NULL will do with bt).
    """
    cdef Py_ssize_t i
    cdef floating inv_b = <floating> (1.0 / b)
    cdef floating* M
    cdef floating* E
    cdef floating* S
    if rule == R_SA:
        if bt:
            finish(n_in * n_out, <floating> (-c1), W, <floating> (2 * c0), B,
                   gB, vel, lr, mu)
        else:
            sa_layer(n_in, n_out, <floating> (2 * c0), <floating> c1, W, B,
                     gB, panel)
    elif rule == R_AA:
        if T == NULL and (H != NULL or aa_via_h(b)):
            # Cb (2 a B - b W^T) = x^T (2 a x B - b H) / b: one GEMM more
            # than the form below but no n_in x n_out pass, cheaper for
            # thin batches (and free of the extra GEMM when the caller has
            # H from its forward pass).
            S = work
            if H == NULL:
                gemm(NO_TRANS, TRANS, b, n_out, n_in, 1, x, n_in, W, n_in, 0,
                     S, n_out)
                H = S
                S = work + b * n_out
            aa_t(bt, b, n_in, n_out, c0, c1, x, B, H, S)
            T = S
        elif T == NULL:
            # T = x M with M = 2 a B - b W^T.
            M = work
            S = work + n_in * n_out
            if bt:
                finish(n_in * n_out, <floating> (-c1), W, <floating> (2 * c0),
                       B, M, NULL, 0, 0)
            else:
                sa_layer(n_in, n_out, <floating> (2 * c0), <floating> c1, W,
                         B, M, panel)
            times_b(bt, b, n_in, n_out, 1, x, M, S)
            T = S
        b_grad_finish(bt, b, n_in, n_out, inv_b, x, T, 0, B, gB, vel, lr, mu,
                      phase)
    elif rule == R_WM or rule == R_IA:
        if H == NULL:
            gemm(NO_TRANS, TRANS, b, n_out, n_in, 1, x, n_in, W, n_in, 0,
                 work, n_out)
            H = work
        if rule == R_WM:
            b_grad_finish(bt, b, n_in, n_out, <floating> (-c1 / b), x, H,
                          <floating> (2 * c0), B, gB, vel, lr, mu, phase)
        else:
            # E = 2 beta H B^T - alpha x: the reconstruction error of the
            # autoencoder x -> H -> H B^T, weighted as IA weighs it.  The
            # trainer passes H B^T as T (it comes out of the GEMM that sends
            # the error back through B).
            E = work + b * n_out
            if T == NULL:
                scaled_copy(b * n_in, <floating> (-c0), x, E)
                times_b_t(bt, b, n_in, n_out, <floating> (2 * c1), H, B, 1, E)
            else:
                for i in range(b * n_in):
                    E[i] = <floating> (2 * c1) * T[i] - <floating> c0 * x[i]
            b_grad_finish(bt, b, n_in, n_out, inv_b, E, H, <floating> (2 * c2),
                          B, gB, vel, lr, mu, phase)


cdef inline Py_ssize_t kp_panel_rows(Py_ssize_t b, Py_ssize_t n_in,
                                     Py_ssize_t n_out) noexcept nogil:
    # Whole rows of G, as many entries as a tile of kp_layer's: G is read
    # row-wise, so it needs no padding.  (Panels of 1/2 to 4 times that
    # size measured the same within run-to-run noise at 512 x 512.)
    return min(n_out, max(8, PANEL_ENTRIES * kp_scale(b) // n_in))


cdef void kp_tie_bt(Py_ssize_t n, floating d, const floating* W,
                    floating* Bt, floating* gW, floating* gB, floating* vel,
                    floating lr, floating mu) noexcept nogil:
    """n entries of KP's tie with B held transposed, G in gW: gB = G + d Bt
    (or the momentum step on Bt with it) and gW = G + d W, in one pass.
    finish() computes either half; called once per gradient it reads G
    twice, and measured 1.38 and 1.43 times the GEMM at b = 32 (128 x 64
    and 512 x 512) against this pass's 1.25 and 1.32."""
    cdef Py_ssize_t k
    cdef floating g, v
    if vel == NULL:
        for k in range(n):
            g = gW[k]
            gB[k] = g + d * Bt[k]
            gW[k] = g + d * W[k]
    else:
        for k in range(n):
            g = gW[k]
            v = mu * vel[k] + (g + d * Bt[k])
            vel[k] = v
            Bt[k] = Bt[k] - lr * v
            gW[k] = g + d * W[k]


cdef inline bint kp_kernel_fits(Py_ssize_t b, Py_ssize_t n_in,
                                Py_ssize_t n_out) noexcept nogil:
    """KP's own kernel for G = delta^T x: AVX2, a large G, a small batch."""
    return (la_simd_ok() and b <= KP_KERNEL_MAX_B
            and n_in * n_out >= KP_KERNEL_MIN_ENTRIES)


cdef void kp_layer_bt(Py_ssize_t b, Py_ssize_t n_in, Py_ssize_t n_out,
                      floating d, const floating* W, floating* Bt,
                      const floating* x, const floating* delta, floating* gW,
                      floating* gB, floating* vel, floating lr,
                      floating mu, floating* pack) noexcept nogil:
    """kp_layer with B held transposed (Bt, W's layout), where the tie needs
    no transpose: G = delta^T x goes into gW a few whole rows at a time,
    and while they are in cache gB = G + d Bt (or the momentum step on Bt)
    and gW = G + d W are finished from them.

    With pack (la_kp_pack_size entries; callers whose BLAS runs on one
    thread) and AVX2, a large G at a small batch (KP_KERNEL_MIN_ENTRIES) is
    formed 4 rows at a time by _align_simd.h's kernel, and finished from
    L1.  Otherwise G comes from BLAS in panels of whole rows."""
    cdef Py_ssize_t R, j0 = 0, r, o
    cdef floating* dp = NULL
    cdef bint fused = pack != NULL and kp_kernel_fits(b, n_in, n_out)
    if fused:
        R = 4
        dp = pack + b * ((n_in + 15) // 16 * 16)
        if floating is double:
            la_kp_pack_d(b, n_in, n_out, x, delta, pack, dp)
        else:
            la_kp_pack_f(b, n_in, n_out, x, delta, pack, dp)
    else:
        R = kp_panel_rows(b, n_in, n_out)
    while j0 < n_out:
        r = min(R, n_out - j0)
        o = j0 * n_in
        if fused:
            if floating is double:
                la_kp_rows_d(b, n_in, r, pack, dp + j0 * b, gW + o, n_in)
            else:
                la_kp_rows_f(b, n_in, r, pack, dp + j0 * b, gW + o, n_in)
        else:
            gemm(TRANS, NO_TRANS, r, n_in, b, 1, delta + j0, n_out, x, n_in,
                 0, gW + o, n_in)
        kp_tie_bt(r * n_in, d, W + o, Bt + o, gW + o,
                  gB + o if gB != NULL else NULL,
                  vel + o if vel != NULL else NULL, lr, mu)
        j0 += r


cdef void layer_grad(int rule, bint bt, Py_ssize_t b, Py_ssize_t n_in,
                     Py_ssize_t n_out, const floating* W, const floating* B,
                     const floating* x, const floating* delta, double c0,
                     double c1, double c2, floating* gB, floating* gW,
                     floating* work, bint kp_kernel) noexcept nogil:
    """kp_kernel: KP's G by _align_simd.h's kernel (see kp_layer_bt)."""
    cdef Py_ssize_t i
    cdef floating* panel = work + rule_scratch(rule, b, n_in, n_out)
    # B is only read: with vel NULL the kernels write gB, never B.
    if rule == R_KP and bt:
        kp_layer_bt(b, n_in, n_out, <floating> (2 * c0), W, <floating*> B, x,
                    delta, gW, gB, NULL, 0, 0, work if kp_kernel else NULL)
    elif rule == R_KP:
        kp_layer(b, n_in, n_out, <floating> (2 * c0), W, B, x, delta, gW, gB,
                 panel)
    elif rule == R_BP or rule == R_FA:
        for i in range(n_in * n_out):
            gB[i] = 0
    else:
        rule_b(rule, bt, b, n_in, n_out, W, <floating*> B, x, NULL, NULL, c0,
               c1, c2, gB, NULL, 0, 0, 0, work, panel)


def simd(enabled=None):
    """Whether the kernels take their AVX2 paths (WM's noise, and, for B
    held as itself, the transposed passes of KP's tie and SA's and AA's
    W^T and KP's row pass: the trainer holds B transposed and uses only
    the first); enabled=False forces the portable loops, True restores the
    AVX2 paths where the CPU has them (tests compare the two)."""
    global la_simd_wanted
    if enabled is not None:
        la_simd_wanted = 1 if enabled else 0
    return bool(la_simd_ok())


def kp_kernel_applies(Py_ssize_t b, Py_ssize_t n_in, Py_ssize_t n_out):
    """Whether KP with B held transposed would form G by its own kernel
    (kp_kernel=True) at this batch and layer on this CPU."""
    return bool(kp_kernel_fits(b, n_in, n_out))


def layer_workspace(int rule, Py_ssize_t b, Py_ssize_t n_in, Py_ssize_t n_out,
                    bint bt=False):
    return rule_workspace(rule, bt, b, n_in, n_out)


def layer_gemm_count(int rule, Py_ssize_t b):
    """GEMMs of b x n_in x n_out that layer_update runs for this rule."""
    if rule == R_AA:
        return 3 if aa_via_h(b) else 2
    return {R_WM: 2, R_IA: 3, R_KP: 1}.get(rule, 0)

def layer_update(int rule, const floating[:, ::1] W, const floating[:, ::1] B,
                 const floating[:, ::1] x, const floating[:, ::1] delta,
                 double c0, double c1, double c2, floating[:, ::1] gB,
                 floating[:, ::1] gW, floating[::1] work, bint bt=False,
                 Py_ssize_t repeats=1, bint gemms_only=False,
                 bint kp_kernel=False):
    """One rule's gradient for one layer into gB (and gW for KP).

    bt: B and gB are B^T and its gradient (n_out x n_in, W's layout).
    kp_kernel: with bt, KP forms delta^T x by its own one-thread kernel
    instead of BLAS (for a caller whose BLAS runs on one thread).
    Shapes are checked by laefast.alignment.  `repeats` and `gemms_only`
    serve the benchmark: the same call `repeats` times inside the kernel,
    or only the GEMMs the rule needs, on the same shapes and buffers.
    """
    cdef Py_ssize_t b = x.shape[0], n_in = W.shape[1], n_out = W.shape[0]
    cdef Py_ssize_t r
    cdef floating* ws = &work[0] if work.shape[0] > 0 else NULL
    cdef const floating* dp = &delta[0, 0] if delta.shape[0] > 0 else NULL
    with nogil:
        for r in range(repeats):
            if gemms_only:
                layer_gemms(rule, bt, b, n_in, n_out, &W[0, 0], &B[0, 0],
                            &x[0, 0], dp, &gB[0, 0], &gW[0, 0], ws)
            else:
                layer_grad(rule, bt, b, n_in, n_out, &W[0, 0], &B[0, 0],
                           &x[0, 0], dp, c0, c1, c2, &gB[0, 0], &gW[0, 0], ws,
                           kp_kernel)


cdef void layer_gemms(int rule, bint bt, Py_ssize_t b, Py_ssize_t n_in,
                      Py_ssize_t n_out, const floating* W, const floating* B,
                      const floating* x, const floating* delta, floating* gB,
                      floating* gW, floating* work) noexcept nogil:
    """Only the GEMMs of layer_grad, same shapes: the benchmark's floor."""
    cdef floating* T = work
    if rule == R_KP:
        gemm(TRANS, NO_TRANS, n_out, n_in, b, 1, delta, n_out, x, n_in, 0, gW, n_in)
    elif rule == R_AA:
        T = work + n_in * n_out
        if aa_via_h(b):
            T = work + b * n_out
            gemm(NO_TRANS, TRANS, b, n_out, n_in, 1, x, n_in, W, n_in, 0, work,
                 n_out)
        times_b(bt, b, n_in, n_out, 1, x, B, T)
        b_grad_finish(bt, b, n_in, n_out, 1, x, T, 0, NULL, gB, NULL, 0, 0, 0)
    elif rule == R_WM or rule == R_IA:
        gemm(NO_TRANS, TRANS, b, n_out, n_in, 1, x, n_in, W, n_in, 0, T, n_out)
        if rule == R_IA:
            times_b_t(bt, b, n_in, n_out, 1, T, B, 0, work + b * n_out)
            b_grad_finish(bt, b, n_in, n_out, 1, work + b * n_out, T, 0, NULL,
                          gB, NULL, 0, 0, 0)
        else:
            b_grad_finish(bt, b, n_in, n_out, 1, x, T, 0, NULL, gB, NULL, 0,
                          0, 0)


# ---------------------------------------------------------------------------
# The MLP

cdef struct Net:
    int rule
    Py_ssize_t L                 # number of layers (weight matrices)
    const Py_ssize_t* sizes      # L + 1 widths, input first
    const Py_ssize_t* offW       # L offsets of W_l in the flat vector
    const Py_ssize_t* offc       # L offsets of the biases
    const Py_ssize_t* offB       # L offsets of B_l, -1 for the first layer
    Py_ssize_t n_wc              # entries of all W and biases (B follow)
    Py_ssize_t n_params
    double c0, c1, c2, noise_std


cdef enum:
    # The increment of splitmix64's state per draw.
    GOLDEN_GAMMA = 0x9E3779B97F4A7C15


cdef inline uint64_t splitmix64(uint64_t* state) noexcept nogil:
    cdef uint64_t z
    state[0] += <uint64_t> GOLDEN_GAMMA
    z = state[0]
    z = (z ^ (z >> 30)) * <uint64_t> 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t> 0x94D049BB133111EB
    return z ^ (z >> 31)


cdef void uniform_noise(Py_ssize_t n, double std, uint64_t* state,
                        floating* out) noexcept nogil:
    """n draws from U(-a, a), a = sqrt(3) std (variance std^2)."""
    cdef Py_ssize_t i
    cdef double a = sqrt(3.0) * std
    if la_simd_ok():
        # Four draws at a time, the same numbers bit for bit.
        if floating is double:
            la_noise_d(n, a, state, out)
        else:
            la_noise_f(n, a, state, out)
        return
    # z >> 11 < 2^53 converts exactly through int64, which, unlike uint64,
    # has one x86-64 instruction for it.
    for i in range(n):
        out[i] = <floating> (a * (2.0 * (<int64_t> (splitmix64(state) >> 11)
                                         * (1.0 / 9007199254740992.0)) - 1.0))


cdef Py_ssize_t acts_size(const Net* net, Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t l, s = 0
    for l in range(net.L + 1):
        s += b * net.sizes[l]
    return s


cdef Py_ssize_t max_width(const Net* net) noexcept nogil:
    cdef Py_ssize_t l, s = 0
    for l in range(net.L + 1):
        s = max(s, net.sizes[l])
    return s


cdef bint keeps_h(const Net* net) noexcept nogil:
    """Whether the forward pass keeps each layer's H (IA), T (AA) or H of
    the noise (WM)."""
    return net.rule == R_IA or net.rule == R_AA or net.rule == R_WM


cdef inline Py_ssize_t act_rows(const Net* net, Py_ssize_t b) noexcept nogil:
    """Rows of each activation block: in training, WM keeps a layer's noise
    under its input, so that one GEMM sends both through W^T (and packs W
    once)."""
    return 2 * b if net.rule == R_WM else b


cdef Py_ssize_t slots_size(const Net* net, Py_ssize_t b) noexcept nogil:
    """The b x n_out slot of every layer with a B, for keeps_h rules."""
    cdef Py_ssize_t l, s = 0
    if keeps_h(net):
        for l in range(1, net.L):
            s += b * net.sizes[l + 1]
    return s


cdef inline Py_ssize_t err_rows(const Net* net, Py_ssize_t b) noexcept nogil:
    """Rows of each error buffer: IA stacks H under the error, so that one
    GEMM sends both through B^T (and packs B once)."""
    return 2 * b if net.rule == R_IA else b


cdef Py_ssize_t net_workspace(const Net* net, Py_ssize_t b) noexcept nogil:
    """Activations, two error buffers, the rule's scratch, noise and the
    forward pass's slots (B is held transposed: no rule needs a panel)."""
    cdef Py_ssize_t l, w = 0, n = max_width(net)
    for l in range(1, net.L):
        w = max(w, rule_scratch(net.rule, b, net.sizes[l], net.sizes[l + 1]))
    return (acts_size(net, act_rows(net, b)) + 2 * err_rows(net, b) * n + w
            + slots_size(net, b))


cdef void forward(const Net* net, const floating* theta, Py_ssize_t b,
                  floating* acts, floating* slots,
                  uint64_t* rng) noexcept nogil:
    """acts: A_0 (filled by the caller), then A_1 .. A_L are written; A_L
    holds the output logits.  With slots set and rule IA or AA, every layer
    with a B leaves there what its B-gradient needs from H = x W^T before
    the bias is added (IA: H; AA: T = 2 a x B - b H), which saves the
    backward pass the GEMM that would form H again.

    With slots set and rule WM, each activation block has 2b rows (see
    act_rows): the layer's noise is drawn into the lower b, the GEMM with
    W^T forms [Z; H of the noise], and that H goes to the slot.  The noise
    is the stream the backward pass used to draw, layer L-1 first: layer l
    starts at its own offset in it (splitmix64 jumps ahead by adding to
    its state), and rng advances past all of it."""
    cdef Py_ssize_t l, i, j, n_in, n_out, m, rows = b
    cdef Py_ssize_t left = 0
    cdef uint64_t state
    cdef bint wm = slots != NULL and net.rule == R_WM
    cdef floating* a_in = acts
    if wm:
        rows = act_rows(net, b)
        for l in range(1, net.L):
            left += b * net.sizes[l]
    cdef floating* Z
    cdef const floating* W
    cdef const floating* c
    cdef floating v
    for l in range(net.L):
        n_in = net.sizes[l]
        n_out = net.sizes[l + 1]
        W = theta + net.offW[l]
        c = theta + net.offc[l]
        Z = a_in + rows * n_in
        m = b
        if wm and net.offB[l] >= 0:
            left -= b * n_in
            state = rng[0] + <uint64_t> left * <uint64_t> GOLDEN_GAMMA
            uniform_noise(b * n_in, net.noise_std, &state, a_in + b * n_in)
            m = 2 * b
        gemm(NO_TRANS, TRANS, m, n_out, n_in, 1, a_in, n_in, W, n_in, 0, Z,
             n_out)
        if slots != NULL and keeps_h(net) and net.offB[l] >= 0:
            if net.rule == R_IA:
                memcpy(slots, Z, sizeof(floating) * b * n_out)
            elif net.rule == R_WM:
                memcpy(slots, Z + b * n_out, sizeof(floating) * b * n_out)
            else:
                aa_t(True, b, n_in, n_out, net.c0, net.c1, a_in,
                     theta + net.offB[l], Z, slots)
            slots += b * n_out
        if l < net.L - 1:
            for i in range(b):
                for j in range(n_out):
                    v = Z[i * n_out + j] + c[j]
                    Z[i * n_out + j] = v if v > 0 else 0
        else:
            for i in range(b):
                for j in range(n_out):
                    Z[i * n_out + j] += c[j]
        a_in = Z
    if wm:
        for l in range(1, net.L):
            left += b * net.sizes[l]
        rng[0] += <uint64_t> left * <uint64_t> GOLDEN_GAMMA


cdef double softmax_xent(Py_ssize_t b, Py_ssize_t K, floating* Z,
                         const Py_ssize_t* labels, Py_ssize_t* correct,
                         floating* delta) noexcept nogil:
    """Summed cross-entropy of the logits Z (b x K); delta = (p - y) / b."""
    cdef Py_ssize_t i, j, arg
    cdef double mx, s, loss = 0.0
    cdef floating* z
    for i in range(b):
        z = Z + i * K
        mx = z[0]
        arg = 0
        for j in range(1, K):
            if z[j] > mx:
                mx = z[j]
                arg = j
        if arg == labels[i]:
            correct[0] += 1
        s = 0.0
        for j in range(K):
            s += exp(<double> z[j] - mx)
        loss += log(s) + mx - z[labels[i]]
        if delta != NULL:
            for j in range(K):
                delta[i * K + j] = <floating> (exp(<double> z[j] - mx) / s / b)
            delta[i * K + labels[i]] -= <floating> (1.0 / b)
    return loss


cdef double batch_grad(const Net* net, floating* theta, floating* grad,
                       Py_ssize_t b, const Py_ssize_t* labels, floating* ws,
                       uint64_t* rng, Py_ssize_t* correct, floating* vel,
                       floating lr, floating mu, int phase) noexcept nogil:
    """Gradient of the batch-mean loss (W, biases) into grad, for the batch
    already in ws's A_0, and the rule's B-gradient: into grad too, or, with
    vel set, applied at once as the momentum step on every B (B_l is not
    read again in this batch once its layer's error has gone through it;
    phase: see gemm_t_finish).  Returns the summed loss."""
    cdef Py_ssize_t L = net.L, l, i, j, n_in, n_out, n_max = max_width(net)
    cdef floating* acts = ws
    cdef Py_ssize_t rows = act_rows(net, b)
    cdef floating* d = acts + acts_size(net, rows)
    cdef floating* dn = d + err_rows(net, b) * n_max
    cdef floating* work = dn + err_rows(net, b) * n_max
    cdef floating* slots = work
    cdef floating* slot
    cdef floating* A_prev
    cdef floating* tmp
    cdef floating* gW
    cdef floating* gc
    cdef floating* gB
    cdef floating* vB
    cdef const floating* W
    cdef floating* B
    cdef Py_ssize_t aoff = acts_size(net, rows) - rows * net.sizes[L]
    cdef double loss
    for l in range(1, L):
        i = rule_scratch(net.rule, b, net.sizes[l], net.sizes[l + 1])
        if work + i > slots:
            slots = work + i
    slot = slots + slots_size(net, b)
    forward(net, theta, b, acts, slots, rng)
    loss = softmax_xent(b, net.sizes[L], acts + aoff, labels, correct, d)
    for l in range(L - 1, -1, -1):
        n_in = net.sizes[l]
        n_out = net.sizes[l + 1]
        aoff -= rows * n_in
        A_prev = acts + aoff
        W = theta + net.offW[l]
        gW = grad + net.offW[l]
        gc = grad + net.offc[l]
        if not (net.rule == R_KP and l > 0):
            gemm(TRANS, NO_TRANS, n_out, n_in, b, 1, d, n_out, A_prev, n_in, 0,
                 gW, n_in)
        for j in range(n_out):
            gc[j] = 0
        for i in range(b):
            for j in range(n_out):
                gc[j] += d[i * n_out + j]
        if l == 0:
            break
        B = theta + net.offB[l]
        gB = grad + net.offB[l] if vel == NULL else NULL
        vB = vel + net.offB[l] if vel != NULL else NULL
        if keeps_h(net):
            slot -= b * n_out
        if net.rule == R_BP:
            gemm(NO_TRANS, NO_TRANS, b, n_in, n_out, 1, d, n_out, W, n_in, 0, dn, n_in)
        elif net.rule == R_IA:
            # [d; H] B^T: the error for the layer below and IA's H B^T.
            memcpy(d + b * n_out, slot, sizeof(floating) * b * n_out)
            times_b_t(True, 2 * b, n_in, n_out, 1, d, B, 0, dn)
        else:
            times_b_t(True, b, n_in, n_out, 1, d, B, 0, dn)
        if net.rule == R_KP:
            # After the error has gone through B: the step may change it.
            # KP's own kernel where it fits: train_mlp holds BLAS to one
            # thread, where the kernel beats the GEMM; a caller of
            # train_epoch or batch_gradient gets it whatever BLAS's threads.
            kp_layer_bt(b, n_in, n_out, <floating> (2 * net.c0), W, B, A_prev,
                        d, gW, gB, vB, lr, mu, work)
        # The ReLU's derivative as a select, not a branch: half the
        # activations are zero, in no pattern the branch predictor could
        # learn, and the branch cost about 10 cycles an entry.
        for i in range(b * n_in):
            dn[i] = dn[i] if A_prev[i] > 0 else 0
        if net.rule == R_SA:
            rule_b(R_SA, True, b, n_in, n_out, W, B, A_prev, NULL, NULL,
                   net.c0, net.c1, net.c2, gB, vB, lr, mu, phase, work, NULL)
        elif net.rule == R_AA:
            rule_b(R_AA, True, b, n_in, n_out, W, B, A_prev, NULL, slot,
                   net.c0, net.c1, net.c2, gB, vB, lr, mu, phase, work, NULL)
        elif net.rule == R_IA:
            rule_b(R_IA, True, b, n_in, n_out, W, B, A_prev, slot,
                   dn + b * n_in, net.c0, net.c1, net.c2, gB, vB, lr, mu,
                   phase, work, NULL)
        elif net.rule == R_WM:
            # The noise under A_prev, its H in the slot (see forward).
            rule_b(R_WM, True, b, n_in, n_out, W, B, A_prev + b * n_in,
                   slot, NULL, net.c0, net.c1, net.c2, gB, vB, lr, mu, phase,
                   work, NULL)
        tmp = d
        d = dn
        dn = tmp
    return loss


cdef void momentum_step(Py_ssize_t n, floating* theta, floating* vel,
                        const floating* grad, floating lr,
                        floating mu) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        vel[i] = mu * vel[i] + grad[i]
        theta[i] = theta[i] - lr * vel[i]


cdef int make_net(Net* net, int rule, const Py_ssize_t[::1] sizes,
                  const Py_ssize_t[::1] offW, const Py_ssize_t[::1] offc,
                  const Py_ssize_t[::1] offB, Py_ssize_t n_wc,
                  Py_ssize_t n_params, double c0, double c1, double c2,
                  double noise_std) except -1:
    if (sizes.shape[0] < 2 or offW.shape[0] != sizes.shape[0] - 1
            or offc.shape[0] != offW.shape[0] or offB.shape[0] != offW.shape[0]):
        raise ValueError("inconsistent layer layout")
    net.rule = rule
    net.L = offW.shape[0]
    net.sizes = &sizes[0]
    net.offW = &offW[0]
    net.offc = &offc[0]
    net.offB = &offB[0]
    net.n_wc = n_wc
    net.n_params = n_params
    net.c0, net.c1, net.c2, net.noise_std = c0, c1, c2, noise_std
    return 0


def train_epoch(int rule, floating[::1] theta, floating[::1] velocity,
                const Py_ssize_t[::1] sizes, const Py_ssize_t[::1] offW,
                const Py_ssize_t[::1] offc, const Py_ssize_t[::1] offB,
                Py_ssize_t n_wc, const floating[:, ::1] X,
                const Py_ssize_t[::1] y, const Py_ssize_t[::1] order,
                Py_ssize_t batch, double lr, double momentum, double c0,
                double c1, double c2, double noise_std, uint64_t seed):
    """One epoch over X[order] in minibatches; returns (mean loss, accuracy,
    next seed).  theta and velocity are updated in place."""
    cdef Net net
    memset(&net, 0, sizeof(Net))   # make_net fills it or raises
    make_net(&net, rule, sizes, offW, offc, offB, n_wc, theta.shape[0], c0,
             c1, c2, noise_std)
    cdef Py_ssize_t n = order.shape[0], m = X.shape[1], start, b, i, P
    cdef Py_ssize_t correct = 0
    cdef double loss = 0.0
    cdef uint64_t state = seed
    cdef Py_ssize_t n_ws = net_workspace(&net, batch)
    cdef floating* ws = <floating*> malloc(sizeof(floating) * (n_ws + theta.shape[0]))
    cdef Py_ssize_t* labels = <Py_ssize_t*> malloc(sizeof(Py_ssize_t) * batch)
    if ws == NULL or labels == NULL:
        free(ws)
        free(labels)
        raise MemoryError()
    cdef floating* grad = ws + n_ws
    # The momentum step on every B is taken inside batch_grad (BP reads W,
    # FA keeps B, the others train it); this one is for the W and biases.
    P = n_wc
    cdef floating* vel_b = (NULL if rule == R_BP or rule == R_FA
                            else &velocity[0])
    try:
        with nogil:
            start = 0
            while start < n:
                b = min(batch, n - start)
                for i in range(b):
                    memcpy(ws + i * m, &X[order[start + i], 0],
                           sizeof(floating) * m)
                    labels[i] = y[order[start + i]]
                loss += batch_grad(&net, &theta[0], grad, b, labels, ws,
                                   &state, &correct, vel_b, <floating> lr,
                                   <floating> momentum,
                                   (PRE_DONE if start > 0 else 0)
                                   | (PRE_NEXT if start + b < n else 0))
                momentum_step(P, &theta[0], &velocity[0], grad,
                              <floating> lr, <floating> momentum)
                start += b
    finally:
        free(ws)
        free(labels)
    return loss / n, correct / <double> n, state


def batch_gradient(int rule, const floating[::1] theta,
                   const Py_ssize_t[::1] sizes, const Py_ssize_t[::1] offW,
                   const Py_ssize_t[::1] offc, const Py_ssize_t[::1] offB,
                   Py_ssize_t n_wc, const floating[:, ::1] X,
                   const Py_ssize_t[::1] y, double c0, double c1, double c2,
                   double noise_std, uint64_t seed, floating[::1] grad):
    """The gradient one training step would apply, for the batch (X, y)
    taken whole; returns the batch-mean loss."""
    cdef Net net
    memset(&net, 0, sizeof(Net))   # make_net fills it or raises
    make_net(&net, rule, sizes, offW, offc, offB, n_wc, theta.shape[0], c0,
             c1, c2, noise_std)
    cdef Py_ssize_t b = X.shape[0], m = X.shape[1], correct = 0, i
    cdef uint64_t state = seed
    cdef Py_ssize_t n_ws = net_workspace(&net, b)
    cdef floating* ws = <floating*> malloc(sizeof(floating) * n_ws)
    cdef double loss
    if ws == NULL:
        raise MemoryError()
    try:
        with nogil:
            memcpy(ws, &X[0, 0], sizeof(floating) * b * m)
            for i in range(theta.shape[0]):
                grad[i] = 0
            loss = batch_grad(&net, <floating*> &theta[0], &grad[0], b, &y[0],
                              ws, &state, &correct, NULL, 0, 0, 0)
    finally:
        free(ws)
    return loss / b


def predict_logits(const floating[::1] theta, const Py_ssize_t[::1] sizes,
                   const Py_ssize_t[::1] offW, const Py_ssize_t[::1] offc,
                   const Py_ssize_t[::1] offB, Py_ssize_t n_wc,
                   const floating[:, ::1] X, floating[:, ::1] out,
                   Py_ssize_t batch=256):
    """Output logits of the network for every row of X, into out."""
    cdef Net net
    memset(&net, 0, sizeof(Net))   # make_net fills it or raises
    make_net(&net, R_BP, sizes, offW, offc, offB, n_wc, theta.shape[0], 0, 0,
             0, 0)
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1], K = out.shape[1]
    cdef Py_ssize_t start, b, aoff
    cdef Py_ssize_t n_ws = acts_size(&net, batch)
    cdef floating* ws = <floating*> malloc(sizeof(floating) * n_ws)
    if ws == NULL:
        raise MemoryError()
    try:
        with nogil:
            start = 0
            while start < n:
                b = min(batch, n - start)
                memcpy(ws, &X[start, 0], sizeof(floating) * b * m)
                forward(&net, &theta[0], b, ws, NULL, NULL)
                aoff = acts_size(&net, b) - b * K
                memcpy(&out[start, 0], ws + aoff, sizeof(floating) * b * K)
                start += b
    finally:
        free(ws)
