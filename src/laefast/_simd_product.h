/*
 * The centered product of a block of rows, P += Xc^T (Xc Q), in AVX2 + FMA.
 *
 * Why not two BLAS calls on a centered copy of the block: Q has few
 * columns (block Lanczos on samples uses 2), so both GEMMs are skinny, each
 * packs (copies) the block first, and their cost barely depends on the
 * columns.  This kernel reads each group of rows from memory once, forms
 * y = xc . Q, and adds xc y^T into P while the rows are still in cache; it
 * costs in proportion to the columns.  One pass over 3000 x 4096 float64,
 * one Zen 4 core, with rows in pairs: 2 columns 5.8 ms against 12.0 ms for
 * the BLAS path, 4 columns 8.8 against 13.3 ms.
 *
 * Layout: Q and P are stored transposed, r rows of m (Qt[c*m + j]), r
 * padded by laefast_product_width (the caller zero-fills the padding).
 * X's rows have unit stride; the row stride is ldx (any sign).  The rows are
 * centered on the fly (xc = x - mean) in float64, float32 rows converted
 * exactly, so the result matches the BLAS path's to rounding.
 *
 * The code is compiled for AVX2 + FMA through a function attribute and used
 * only when the CPU has both (laefast_cpu_has_avx2_fma, _cpu.h); elsewhere,
 * and on compilers without the attribute, the caller keeps its BLAS path.
 * The AVX-512 version for 1 or 2 columns (below) is compiled for AVX-512F
 * and used only where the CPU has it (laefast_cpu_has_avx512).
 */
#ifndef LAEFAST_SIMD_PRODUCT_H
#define LAEFAST_SIMD_PRODUCT_H

#include <stddef.h>
#include <stdint.h>

#include "_cpu.h"

#if LAEFAST_SIMD_BUILT
#define LF_AVX2 __attribute__((target("avx2,fma")))
/* the column count and the flags must be constants in the loops */
#define LF_INLINE inline __attribute__((always_inline))
#endif

#if LAEFAST_SIMD_BUILT

/* Keeps a loaded vector in a register.  Without it GCC folds the load into
 * each FMA that uses the vector, and loads it again for every row: the
 * loop then waits on the load ports, not the FMA units. */
#define LF_REG(v) __asm__("" : "+x"(v))

/*
 * Rows go in groups of 4 for 1 or 2 columns (block Lanczos on data uses 2),
 * and in pairs for more: a group's products with Q need its whole rows
 * before they can be added back into P, so each group is read twice, the
 * second time from L1/L2, and a group shares every load of Q, P and the
 * mean.  Groups of 4 rows cut those loads per element by a third against
 * pairs: 2 columns of float64 on one Zen 4 core ran 1.3x faster on 400 x
 * 2048 rows in cache and 1.1x on 6000 x 2048 from memory (1 column 1.25x
 * and 1.15x; float32 rows 1.15-1.3x).  Every group keeps 8 running sums in
 * phase 1, the FMA latency times its two pipes (4 for one row and one
 * column); 4 rows of 4 columns would need 16, all of AVX2's registers.
 * Columns go in groups of 4, 2 or 1
 * (laefast_product_width gives the padded count): fewer columns cost fewer
 * flops.
 */

static ptrdiff_t laefast_product_width(ptrdiff_t r)
{
    /* 4-column groups, then a last group of 4 (3 padded), 2 or 1 */
    ptrdiff_t rem = r % 4;
    return r - rem + (rem == 3 ? 4 : rem);
}

/* Rows per group for a padded width of r columns. */
static int lf_group_rows(ptrdiff_t r)
{
    return r >= 4 ? 2 : 4;
}

/* Phase 1 on the R rows x[0..R-1] (R = 1, 2 or 4):
 * y[k * NC + c] += sum_j xc_kj Q[c, j] for c < NC; returns the rows' sum of
 * squares when SQ (else 0).  The loop is unrolled U times so that there are
 * 8 independent sums (4 for one row and one column): fewer would leave it
 * waiting on the FMA latency.  It prefetches the same columns of the next
 * group's rows (nx) into L2: out of cache, the loop's own loads keep too
 * few misses in flight (one pass over 98 MB took 1.3-2x longer without). */
#define LF_DEFINE_PHASES(SUFFIX, T, LOAD4)                                     \
static LF_AVX2 LF_INLINE double lf_y_##SUFFIX(                                 \
    const T* const* x, const int R, const int NC, const int SQ, ptrdiff_t m,   \
    const double* mean, const double* Qt, double* y, const T* const* nx)       \
{                                                                              \
    const int RN = R * NC, U = RN >= 8 ? 1 : RN >= 4 ? 2 : 4;                  \
    __m256d a[8], s2[2], v[4];                                                 \
    ptrdiff_t j, jU = (m / (4 * U)) * (4 * U), j4 = m & ~(ptrdiff_t)3;         \
    double sq;                                                                 \
    int c, k, u;                                                               \
    for (c = 0; c < 8; c++)                                                    \
        a[c] = _mm256_setzero_pd();                                            \
    s2[0] = s2[1] = _mm256_setzero_pd();                                       \
    for (j = 0; j < j4; j += 4 * U) {                                          \
        /* whole unrolled steps, then single vectors up to j4 */               \
        const int nu = j < jU ? U : 1;                                         \
        for (u = 0; u < U; u++) {                                              \
            const ptrdiff_t ju = j + 4 * u;                                    \
            __m256d mu;                                                        \
            if (u >= nu)                                                       \
                break;                                                         \
            mu = _mm256_loadu_pd(mean + ju);                                   \
            LF_REG(mu);                                                        \
            if (((ju * (ptrdiff_t)sizeof(T)) & 63) == 0)                       \
                for (k = 0; k < R; k++)                                        \
                    _mm_prefetch((const char*)(nx[k] + ju), _MM_HINT_T1);      \
            for (k = 0; k < R; k++)                                            \
                v[k] = _mm256_sub_pd(LOAD4(x[k] + ju), mu);                    \
            for (c = 0; c < NC; c++) {                                         \
                __m256d w = _mm256_loadu_pd(Qt + c * m + ju);                  \
                LF_REG(w);                                                     \
                for (k = 0; k < R; k++)                                        \
                    a[u * RN + k * NC + c] =                                   \
                        _mm256_fmadd_pd(v[k], w, a[u * RN + k * NC + c]);      \
            }                                                                  \
            if (SQ)                                                            \
                for (k = 0; k < R; k++)                                        \
                    s2[k & 1] = _mm256_fmadd_pd(v[k], v[k], s2[k & 1]);        \
        }                                                                      \
        if (nu < U)                                                            \
            j -= 4 * (U - 1);      /* advanced by one vector only */           \
    }                                                                          \
    for (u = 1; u < U; u++)                                                    \
        for (c = 0; c < RN; c++)                                               \
            a[c] = _mm256_add_pd(a[c], a[u * RN + c]);                         \
    for (c = 0; c < RN; c++)                                                   \
        y[c] += laefast_hsum4(a[c]);                                           \
    sq = SQ ? laefast_hsum4(_mm256_add_pd(s2[0], s2[1])) : 0.0;                \
    for (j = j4; j < m; j++)                                                   \
        for (k = 0; k < R; k++) {                                              \
            double d = (double)x[k][j] - mean[j];                              \
            if (SQ)                                                            \
                sq += d * d;                                                   \
            for (c = 0; c < NC; c++)                                           \
                y[k * NC + c] += d * Qt[c * m + j];                            \
        }                                                                      \
    return sq;                                                                 \
}                                                                              \
                                                                               \
/* Phase 2: P[c, j] += sum_k xc_kj y[k * NC + c]. */                          \
static LF_AVX2 LF_INLINE void lf_p_##SUFFIX(                                   \
    const T* const* x, const int R, const int NC, ptrdiff_t m,                 \
    const double* mean, const double* y, double* Pt)                           \
{                                                                              \
    __m256d uy[8], v[4];                                                       \
    ptrdiff_t j, j4 = m & ~(ptrdiff_t)3;                                       \
    int c, k;                                                                  \
    for (c = 0; c < R * NC; c++)                                               \
        uy[c] = _mm256_set1_pd(y[c]);                                          \
    for (j = 0; j < j4; j += 4) {                                              \
        __m256d mu = _mm256_loadu_pd(mean + j);                                \
        LF_REG(mu);                                                            \
        for (k = 0; k < R; k++)                                                \
            v[k] = _mm256_sub_pd(LOAD4(x[k] + j), mu);                         \
        for (c = 0; c < NC; c++) {                                             \
            __m256d p = _mm256_loadu_pd(Pt + c * m + j);                       \
            for (k = 0; k < R; k++)                                            \
                p = _mm256_fmadd_pd(v[k], uy[k * NC + c], p);                  \
            _mm256_storeu_pd(Pt + c * m + j, p);                               \
        }                                                                      \
    }                                                                          \
    for (j = j4; j < m; j++)                                                   \
        for (k = 0; k < R; k++) {                                              \
            double d = (double)x[k][j] - mean[j];                              \
            for (c = 0; c < NC; c++)                                           \
                Pt[c * m + j] += d * y[k * NC + c];                            \
        }                                                                      \
}                                                                              \
                                                                               \
/* Both phases for R rows and NC columns; returns the rows' sum of squares    \
 * when SQ. */                                                                 \
static LF_AVX2 LF_INLINE double lf_rows_##SUFFIX(                              \
    const T* const* x, const int R, const int NC, const int SQ, ptrdiff_t m,   \
    const double* mean, const double* Qc, double* Pc, const T* const* nx)      \
{                                                                              \
    double y[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};                    \
    double sq = lf_y_##SUFFIX(x, R, NC, SQ, m, mean, Qc, y, nx);               \
    lf_p_##SUFFIX(x, R, NC, m, mean, y, Pc);                                   \
    return sq;                                                                 \
}                                                                              \
                                                                               \
/* One column group (NC = 4, 2 or 1) of R rows (R = 4 for NC <= 2, 2 or 1),  \
 * with the counts and the flag as constants. */                              \
static LF_AVX2 inline double lf_group_##SUFFIX(                                \
    const T* const* x, int R, int nc, int sq, ptrdiff_t m,                     \
    const double* mean, const double* Qc, double* Pc, const T* const* nx)      \
{                                                                              \
    if (R == 4)                                                                \
        return nc == 2 ? LF_ROWS_CALL(SUFFIX, 4, 2)                            \
                       : LF_ROWS_CALL(SUFFIX, 4, 1);                           \
    if (R == 2)                                                                \
        return nc == 4 ? LF_ROWS_CALL(SUFFIX, 2, 4)                            \
             : nc == 2 ? LF_ROWS_CALL(SUFFIX, 2, 2)                            \
                       : LF_ROWS_CALL(SUFFIX, 2, 1);                           \
    return nc == 4 ? LF_ROWS_CALL(SUFFIX, 1, 4)                                \
         : nc == 2 ? LF_ROWS_CALL(SUFFIX, 1, 2)                                \
                   : LF_ROWS_CALL(SUFFIX, 1, 1);                               \
}                                                                              \
                                                                               \
/* P += Xc^T (Xc Q) over `rows` rows, in groups of lf_group_rows(r); Q and P   \
 * are r columns wide (r from laefast_product_width).  The `ahead` rows after  \
 * the block (the caller's next block) may be prefetched.  Returns            \
 * sum ||xc_i||^2 when want_sq (else 0). */                                    \
static LF_AVX2 double laefast_product_block_##SUFFIX(                          \
    const T* X, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t ahead, ptrdiff_t m,   \
    const double* mean, const double* Qt, ptrdiff_t r, double* Pt,             \
    int want_sq)                                                               \
{                                                                              \
    const int R = lf_group_rows(r);                                            \
    double sq = 0.0;                                                           \
    ptrdiff_t i, c;                                                            \
    int g, k, nc;                                                              \
    for (i = 0; i < rows; i += g) {                                            \
        const T* x[4];                                                         \
        const T* nx[4];                                                        \
        ptrdiff_t after;                                                       \
        g = rows - i >= R ? R : rows - i >= 2 ? 2 : 1;                         \
        after = rows + ahead - (i + g);                                        \
        for (k = 0; k < 4; k++) {                                              \
            x[k] = X + (i + (k < g ? k : 0)) * ldx;                            \
            /* the next group's rows, where they exist (else these again) */   \
            nx[k] = k < after ? X + (i + g + k) * ldx : x[k];                  \
        }                                                                      \
        for (c = 0; c < r; c += nc) {                                          \
            const int first = c == 0;                                          \
            nc = r - c >= 4 ? 4 : (int)(r - c);                                \
            /* later groups find the rows in cache: prefetch nothing new */    \
            sq += lf_group_##SUFFIX(x, g, nc, first && want_sq, m, mean,       \
                                    Qt + c * m, Pt + c * m, first ? nx : x);   \
        }                                                                      \
    }                                                                          \
    return sq;                                                                 \
}

/* lf_rows with R rows, NC columns and the flag sq as constants (used in
 * lf_group, inside LF_DEFINE_PHASES). */
#define LF_ROWS_CALL(SUFFIX, R, NC)                                            \
    (sq ? lf_rows_##SUFFIX(x, R, NC, 1, m, mean, Qc, Pc, nx)                   \
        : lf_rows_##SUFFIX(x, R, NC, 0, m, mean, Qc, Pc, nx))

LF_DEFINE_PHASES(f64, double, laefast_load4_f64)
LF_DEFINE_PHASES(f32, float, laefast_load4_f32)

/*
 * The same product in AVX-512, for 1 or 2 columns (block Lanczos on
 * samples multiplies by 2), with rows in groups of 8.  What bounds the
 * AVX2 kernel is not its arithmetic but the traffic phase 2 makes: it
 * reads the group's rows again (4 rows of a few thousand features are
 * past L1, so from L2) and loads and stores P once per group.  AVX-512's
 * 32 registers hold 8 rows' 16 running sums, which halves the loads and
 * stores of P, Q and the mean per row; the wider vectors alone do not
 * help (4-row groups in AVX-512 ran as fast as the AVX2 kernel).  One pass
 * over 1500 x 2048 and 3000 x 4096 float64, 2 columns, 2 Zen 4 cores
 * (benchmarks/bench_products.py, two runs): 1.13-1.21x and 1.11-1.24x
 * faster than the AVX2 kernel; 1 column 1.01-1.09x and 1.06-1.12x;
 * float32 rows 1.05x.  It needs its
 * arrays placed as laefast._passes.simd_layout places them: with Q, P and
 * the mean off X's cache-line offset, or P at X's offset modulo 4 KiB, it
 * ran up to 1.2x slower than the AVX2 kernel.  Row tails go in groups of
 * 4, 2 and 1, the first and last features through masked loads and
 * stores.
 */
#define LZ_AVX512 __attribute__((target("avx512f,avx2,fma")))

/* 8 entries as float64 (float32 converted exactly); lanes outside the
 * mask read as 0 (and are not read). */
static LZ_AVX512 LF_INLINE __m512d lz_load8_f64(const double* p, __mmask8 k)
{
    return k == 0xFF ? _mm512_loadu_pd(p) : _mm512_maskz_loadu_pd(k, p);
}

static LZ_AVX512 LF_INLINE __m512d lz_load8_f32(const float* p, __mmask8 k)
{
    /* a masked 16-lane load (AVX-512F has no 8-lane one without VL) only
     * for the tail: in the loop it ran 1.3x slower than a plain load */
    return _mm512_cvtps_pd(k == 0xFF ? _mm256_loadu_ps(p)
                           : _mm512_castps512_ps256(
                                 _mm512_maskz_loadu_ps((__mmask16)k, p)));
}

#define LZ_REG(v) __asm__("" : "+v"(v))

#define LZ_DEFINE_PHASES(SUFFIX, T, LOAD8)                                     \
/* Phase 1, one vector of features j..j+7 (lanes in k): a[k * NC + c] +=    \
 * xc_k Q_c for the R rows; s2 += xc_k^2 when SQ.  Prefetches the same      \
 * features of the next group's rows (nx) into L2, as the AVX2 kernel. */    \
static LZ_AVX512 LF_INLINE void lz_y_step_##SUFFIX(                            \
    const T* const* x, const int R, const int NC, const int SQ, ptrdiff_t j,   \
    __mmask8 k8, int prefetch, ptrdiff_t m, const double* mean,                \
    const double* Qt, __m512d* a, __m512d* s2, const T* const* nx)             \
{                                                                              \
    __m512d mu = lz_load8_f64(mean + j, k8), w[2];                             \
    int c, k;                                                                  \
    LZ_REG(mu);                                                                \
    if (prefetch)                                                              \
        for (k = 0; k < R; k++)                                                \
            _mm_prefetch((const char*)(nx[k] + j), _MM_HINT_T1);              \
    for (c = 0; c < NC; c++) {                                                 \
        w[c] = lz_load8_f64(Qt + c * m + j, k8);                      \
        LZ_REG(w[c]);                                                          \
    }                                                                          \
    for (k = 0; k < R; k++) {                                                  \
        __m512d v = _mm512_sub_pd(LOAD8(x[k] + j, k8), mu);                    \
        for (c = 0; c < NC; c++)                                               \
            a[k * NC + c] = _mm512_fmadd_pd(v, w[c], a[k * NC + c]);           \
        if (SQ)                                                                \
            s2[k & 1] = _mm512_fmadd_pd(v, v, s2[k & 1]);                      \
    }                                                                          \
}                                                                              \
                                                                               \
/* Phase 2, one vector: P[c, j..] += sum_k xc_k y[k * NC + c], in two        \
 * chains of FMAs (one chain of 8 would wait on their latency). */           \
static LZ_AVX512 LF_INLINE void lz_p_step_##SUFFIX(                            \
    const T* const* x, const int R, const int NC, ptrdiff_t j, __mmask8 k8,    \
    ptrdiff_t m, const double* mean, const __m512d* uy, double* Pt)            \
{                                                                              \
    __m512d mu = lz_load8_f64(mean + j, k8), v[8], p, q;              \
    int c, k;                                                                  \
    LZ_REG(mu);                                                                \
    for (k = 0; k < R; k++)                                                    \
        v[k] = _mm512_sub_pd(LOAD8(x[k] + j, k8), mu);                         \
    for (c = 0; c < NC; c++) {                                                 \
        p = lz_load8_f64(Pt + c * m + j, k8);                         \
        q = _mm512_mul_pd(v[0], uy[c]);                                        \
        for (k = 1; k < R; k++) {                                              \
            if (k & 1)                                                         \
                p = _mm512_fmadd_pd(v[k], uy[k * NC + c], p);                  \
            else                                                               \
                q = _mm512_fmadd_pd(v[k], uy[k * NC + c], q);                  \
        }                                                                      \
        _mm512_mask_storeu_pd(Pt + c * m + j, k8, _mm512_add_pd(p, q));        \
    }                                                                          \
}                                                                              \
                                                                               \
/* Both phases for R rows (8, 4, 2 or 1) and NC columns (1 or 2); returns   \
 * the rows' sum of squares when SQ.  The vectors start where the first     \
 * row's loads fall on whole cache lines (64 bytes of float64, 32 of        \
 * float32): a load across two lines costs two, and NumPy's arrays start    \
 * 16 or 32 bytes into a line (1500 x 2048 float64 at 32 bytes in: 1.07x    \
 * slower than the AVX2 kernel, 1.1x faster from a line).  The first j0     \
 * entries and the tail go through masked loads. */                         \
static LZ_AVX512 LF_INLINE double lz_rows_##SUFFIX(                            \
    const T* const* x, const int R, const int NC, const int SQ, ptrdiff_t m,   \
    const double* mean, const double* Qt, double* Pt, const T* const* nx)      \
{                                                                              \
    const uintptr_t vector_bytes = 8 * sizeof(T);                              \
    ptrdiff_t j0 = (ptrdiff_t)((0 - (uintptr_t)x[0]) & (vector_bytes - 1))     \
                   / (ptrdiff_t)sizeof(T);                                     \
    ptrdiff_t mb, j;                                                           \
    __mmask8 head, tail;                                                       \
    __m512d a[16], s2[2], uy[16];                                              \
    int c;                                                                     \
    if (j0 > m)                                                                \
        j0 = m;                                                                \
    mb = j0 + ((m - j0) & ~(ptrdiff_t)7);          /* whole vectors end */     \
    head = (__mmask8)((1u << j0) - 1u);                                        \
    tail = (__mmask8)((1u << (m - mb)) - 1u);                                  \
    for (c = 0; c < R * NC; c++)                                               \
        a[c] = _mm512_setzero_pd();                                            \
    s2[0] = s2[1] = _mm512_setzero_pd();                                       \
    if (head)                                                                  \
        lz_y_step_##SUFFIX(x, R, NC, SQ, 0, head, 1, m, mean, Qt, a, s2, nx);  \
    for (j = j0; j < mb; j += 8)                                               \
        lz_y_step_##SUFFIX(x, R, NC, SQ, j, 0xFF,                              \
                           (((j - j0) * (ptrdiff_t)sizeof(T)) & 63) == 0,      \
                           m, mean, Qt, a, s2, nx);                            \
    if (tail)                                                                  \
        lz_y_step_##SUFFIX(x, R, NC, SQ, mb, tail, 0, m, mean, Qt, a, s2, nx); \
    for (c = 0; c < R * NC; c++)                                               \
        uy[c] = _mm512_set1_pd(_mm512_reduce_add_pd(a[c]));                    \
    if (head)                                                                  \
        lz_p_step_##SUFFIX(x, R, NC, 0, head, m, mean, uy, Pt);                \
    for (j = j0; j < mb; j += 8)                                               \
        lz_p_step_##SUFFIX(x, R, NC, j, 0xFF, m, mean, uy, Pt);                \
    if (tail)                                                                  \
        lz_p_step_##SUFFIX(x, R, NC, mb, tail, m, mean, uy, Pt);               \
    return SQ ? _mm512_reduce_add_pd(_mm512_add_pd(s2[0], s2[1])) : 0.0;       \
}                                                                              \
                                                                               \
/* lz_rows with the row count, the columns and the flag as constants. */      \
static LZ_AVX512 inline double lz_group_##SUFFIX(                              \
    const T* const* x, int R, int nc, int sq, ptrdiff_t m,                     \
    const double* mean, const double* Qt, double* Pt, const T* const* nx)      \
{                                                                              \
    switch (R * 4 + (nc - 1) * 2 + (sq != 0)) {                                \
    case 32: return lz_rows_##SUFFIX(x, 8, 1, 0, m, mean, Qt, Pt, nx);        \
    case 33: return lz_rows_##SUFFIX(x, 8, 1, 1, m, mean, Qt, Pt, nx);        \
    case 34: return lz_rows_##SUFFIX(x, 8, 2, 0, m, mean, Qt, Pt, nx);        \
    case 35: return lz_rows_##SUFFIX(x, 8, 2, 1, m, mean, Qt, Pt, nx);        \
    case 16: return lz_rows_##SUFFIX(x, 4, 1, 0, m, mean, Qt, Pt, nx);        \
    case 17: return lz_rows_##SUFFIX(x, 4, 1, 1, m, mean, Qt, Pt, nx);        \
    case 18: return lz_rows_##SUFFIX(x, 4, 2, 0, m, mean, Qt, Pt, nx);        \
    case 19: return lz_rows_##SUFFIX(x, 4, 2, 1, m, mean, Qt, Pt, nx);        \
    case 8: return lz_rows_##SUFFIX(x, 2, 1, 0, m, mean, Qt, Pt, nx);         \
    case 9: return lz_rows_##SUFFIX(x, 2, 1, 1, m, mean, Qt, Pt, nx);         \
    case 10: return lz_rows_##SUFFIX(x, 2, 2, 0, m, mean, Qt, Pt, nx);        \
    case 11: return lz_rows_##SUFFIX(x, 2, 2, 1, m, mean, Qt, Pt, nx);        \
    case 4: return lz_rows_##SUFFIX(x, 1, 1, 0, m, mean, Qt, Pt, nx);         \
    case 5: return lz_rows_##SUFFIX(x, 1, 1, 1, m, mean, Qt, Pt, nx);         \
    case 6: return lz_rows_##SUFFIX(x, 1, 2, 0, m, mean, Qt, Pt, nx);         \
    default: return lz_rows_##SUFFIX(x, 1, 2, 1, m, mean, Qt, Pt, nx);        \
    }                                                                          \
}                                                                              \
                                                                               \
/* laefast_product_block's contract, for r = 1 or 2 columns (r from         \
 * laefast_product_width), on a CPU with AVX-512F. */                        \
static LZ_AVX512 double laefast_product_block_512_##SUFFIX(                     \
    const T* X, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t ahead, ptrdiff_t m,   \
    const double* mean, const double* Qt, ptrdiff_t r, double* Pt,             \
    int want_sq)                                                               \
{                                                                              \
    double sq = 0.0;                                                           \
    ptrdiff_t i;                                                               \
    int g, k;                                                                  \
    for (i = 0; i < rows; i += g) {                                            \
        const T* x[8];                                                         \
        const T* nx[8];                                                        \
        ptrdiff_t after;                                                       \
        g = rows - i >= 8 ? 8 : rows - i >= 4 ? 4 : rows - i >= 2 ? 2 : 1;     \
        after = rows + ahead - (i + g);                                        \
        for (k = 0; k < 8; k++) {                                              \
            x[k] = X + (i + (k < g ? k : 0)) * ldx;                            \
            nx[k] = k < after ? X + (i + g + k) * ldx : x[k];                  \
        }                                                                      \
        sq += lz_group_##SUFFIX(x, g, (int)r, want_sq, m, mean, Qt, Pt, nx);   \
    }                                                                          \
    return sq;                                                                 \
}

LZ_DEFINE_PHASES(f64, double, lz_load8_f64)
LZ_DEFINE_PHASES(f32, float, lz_load8_f32)

/*
 * The same product for column-major X (X[i, j] at X[i + j * ldc]: a
 * Fortran-ordered array, or the transpose of a C-ordered one), in AVX2 +
 * FMA.  Its rows are not contiguous, so the kernels above cannot read them;
 * the BLAS path gathers each row entry by entry from a different cache
 * line, 5.4x slower than the row kernel on 1500 x 2048 float64.  Here each
 * column (feature) is a contiguous run of the n samples, and the product
 * goes in two passes over X (laefast._passes.columns_centered_product):
 *   Y = Xc Q (n x r):      Y[c][i] += (x_j[i] - mean_j) Q[j, c], column by column;
 *   P = Xc^T Y (m x r):    P[j, c] = sum_i (x_j[i] - mean_j) Y[c][i].
 * Y (r runs of n) is in L1 or L2 for wide data (1500 samples, 2 columns:
 * 24 KB), and 4 columns go together, so that each load and store of Y
 * serves 4 columns.
 */

/* Y[c * n + i] += sum_f (x_f[i] - mu[f]) q[f * r + c] for NF columns and
 * NC columns of Q; returns the columns' sum of squares when SQ. */
#define LC_DEFINE_COLUMNS(SUFFIX, T, LOAD4)                                    \
static LF_AVX2 LF_INLINE double lc_y_##SUFFIX(                                 \
    const T* x, ptrdiff_t ldc, const int NF, const int NC, const int SQ,       \
    ptrdiff_t n, const double* mu, const double* q, ptrdiff_t r, double* Y)    \
{                                                                              \
    __m256d muv[4], qv[8], s2 = _mm256_setzero_pd();                           \
    double sq = 0.0;                                                           \
    ptrdiff_t i, n4 = n & ~(ptrdiff_t)3;                                       \
    int f, c;                                                                  \
    for (f = 0; f < NF; f++) {                                                 \
        muv[f] = _mm256_set1_pd(mu[f]);                                        \
        for (c = 0; c < NC; c++)                                               \
            qv[f * NC + c] = _mm256_set1_pd(q[f * r + c]);                     \
    }                                                                          \
    for (i = 0; i < n4; i += 4) {                                              \
        __m256d d[4];                                                          \
        for (f = 0; f < NF; f++) {                                             \
            d[f] = _mm256_sub_pd(LOAD4(x + f * ldc + i), muv[f]);              \
            if (SQ)                                                            \
                s2 = _mm256_fmadd_pd(d[f], d[f], s2);                          \
        }                                                                      \
        for (c = 0; c < NC; c++) {                                             \
            __m256d y = _mm256_loadu_pd(Y + c * n + i);                        \
            for (f = 0; f < NF; f++)                                           \
                y = _mm256_fmadd_pd(d[f], qv[f * NC + c], y);                  \
            _mm256_storeu_pd(Y + c * n + i, y);                                \
        }                                                                      \
    }                                                                          \
    for (; i < n; i++)                                                         \
        for (f = 0; f < NF; f++) {                                             \
            double v = (double)x[f * ldc + i] - mu[f];                         \
            if (SQ)                                                            \
                sq += v * v;                                                   \
            for (c = 0; c < NC; c++)                                           \
                Y[c * n + i] += v * q[f * r + c];                              \
        }                                                                      \
    return SQ ? sq + laefast_hsum4(s2) : 0.0;                                  \
}                                                                              \
                                                                               \
/* p[f * r + c] = sum_i (x_f[i] - mu[f]) Y[c * n + i]. */                     \
static LF_AVX2 LF_INLINE void lc_p_##SUFFIX(                                   \
    const T* x, ptrdiff_t ldc, const int NF, const int NC, ptrdiff_t n,        \
    const double* mu, const double* Y, double* p, ptrdiff_t r)                 \
{                                                                              \
    __m256d acc[8], muv[4];                                                    \
    ptrdiff_t i, n4 = n & ~(ptrdiff_t)3;                                       \
    int f, c;                                                                  \
    for (f = 0; f < NF; f++) {                                                 \
        muv[f] = _mm256_set1_pd(mu[f]);                                        \
        for (c = 0; c < NC; c++)                                               \
            acc[f * NC + c] = _mm256_setzero_pd();                             \
    }                                                                          \
    for (i = 0; i < n4; i += 4) {                                              \
        __m256d d[4], y[2];                                                    \
        for (c = 0; c < NC; c++)                                               \
            y[c] = _mm256_loadu_pd(Y + c * n + i);                             \
        for (f = 0; f < NF; f++) {                                             \
            d[f] = _mm256_sub_pd(LOAD4(x + f * ldc + i), muv[f]);              \
            for (c = 0; c < NC; c++)                                           \
                acc[f * NC + c] =                                              \
                    _mm256_fmadd_pd(d[f], y[c], acc[f * NC + c]);              \
        }                                                                      \
    }                                                                          \
    for (f = 0; f < NF; f++)                                                   \
        for (c = 0; c < NC; c++) {                                             \
            double s = laefast_hsum4(acc[f * NC + c]);                         \
            for (i = n4; i < n; i++)                                           \
                s += ((double)x[f * ldc + i] - mu[f]) * Y[c * n + i];          \
            p[f * r + c] = s;                                                  \
        }                                                                      \
}                                                                              \
                                                                               \
/* lc_y and lc_p with the column counts and the flag as constants (nf = 4   \
 * or 1, nc = 2 or 1). */                                                     \
static LF_AVX2 inline double lc_y_group_##SUFFIX(                              \
    const T* x, ptrdiff_t ldc, int nf, int nc, int sq, ptrdiff_t n,            \
    const double* mu, const double* q, ptrdiff_t r, double* Y)                 \
{                                                                              \
    switch ((nf == 4) * 4 + (nc == 2) * 2 + (sq != 0)) {                       \
    case 7: return lc_y_##SUFFIX(x, ldc, 4, 2, 1, n, mu, q, r, Y);            \
    case 6: return lc_y_##SUFFIX(x, ldc, 4, 2, 0, n, mu, q, r, Y);            \
    case 5: return lc_y_##SUFFIX(x, ldc, 4, 1, 1, n, mu, q, r, Y);            \
    case 4: return lc_y_##SUFFIX(x, ldc, 4, 1, 0, n, mu, q, r, Y);            \
    case 3: return lc_y_##SUFFIX(x, ldc, 1, 2, 1, n, mu, q, r, Y);            \
    case 2: return lc_y_##SUFFIX(x, ldc, 1, 2, 0, n, mu, q, r, Y);            \
    case 1: return lc_y_##SUFFIX(x, ldc, 1, 1, 1, n, mu, q, r, Y);            \
    default: return lc_y_##SUFFIX(x, ldc, 1, 1, 0, n, mu, q, r, Y);           \
    }                                                                          \
}                                                                              \
                                                                               \
static LF_AVX2 inline void lc_p_group_##SUFFIX(                                \
    const T* x, ptrdiff_t ldc, int nf, int nc, ptrdiff_t n, const double* mu,  \
    const double* Y, double* p, ptrdiff_t r)                                   \
{                                                                              \
    switch ((nf == 4) * 2 + (nc == 2)) {                                       \
    case 3: lc_p_##SUFFIX(x, ldc, 4, 2, n, mu, Y, p, r); break;               \
    case 2: lc_p_##SUFFIX(x, ldc, 4, 1, n, mu, Y, p, r); break;               \
    case 1: lc_p_##SUFFIX(x, ldc, 1, 2, n, mu, Y, p, r); break;               \
    default: lc_p_##SUFFIX(x, ldc, 1, 1, n, mu, Y, p, r); break;              \
    }                                                                          \
}                                                                              \
                                                                               \
/* The first pass over columns [j0, j1): Y (r runs of n) += their part of    \
 * Xc Q (Q row-major, m x r); returns their sum of squares when want_sq.     \
 * Columns go 4 at a time, the last 1 to 3 one by one; Q's columns 2 at a    \
 * time, then 1. */                                                           \
static LF_AVX2 double laefast_columns_y_##SUFFIX(                              \
    const T* X, ptrdiff_t ldc, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t n,        \
    const double* mean, const double* Q, ptrdiff_t r, double* Y, int want_sq)  \
{                                                                              \
    double sq = 0.0;                                                           \
    ptrdiff_t j, c;                                                            \
    int f;                                                                     \
    for (j = j0; j < j1; j += 4) {                                             \
        const int nf = j1 - j >= 4 ? 4 : (int)(j1 - j);                        \
        for (c = 0; c < r; c += 2) {                                           \
            const int nc = r - c >= 2 ? 2 : 1, s = want_sq && c == 0;          \
            if (nf == 4)                                                       \
                sq += lc_y_group_##SUFFIX(X + j * ldc, ldc, 4, nc, s, n,       \
                                          mean + j, Q + j * r + c, r,          \
                                          Y + c * n);                          \
            else                                                               \
                for (f = 0; f < nf; f++)                                       \
                    sq += lc_y_group_##SUFFIX(X + (j + f) * ldc, ldc, 1, nc,   \
                                              s, n, mean + j + f,              \
                                              Q + (j + f) * r + c, r,          \
                                              Y + c * n);                      \
        }                                                                      \
    }                                                                          \
    return sq;                                                                 \
}                                                                              \
                                                                               \
/* The second pass over columns [j0, j1): out[j, c] = sum_i xc_ij Y[c][i]    \
 * (out row-major, m x r), in the first pass's groups. */                    \
static LF_AVX2 void laefast_columns_p_##SUFFIX(                                \
    const T* X, ptrdiff_t ldc, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t n,        \
    const double* mean, const double* Y, ptrdiff_t r, double* out)             \
{                                                                              \
    ptrdiff_t j, c;                                                            \
    int f;                                                                     \
    for (j = j0; j < j1; j += 4) {                                             \
        const int nf = j1 - j >= 4 ? 4 : (int)(j1 - j);                        \
        for (c = 0; c < r; c += 2) {                                           \
            const int nc = r - c >= 2 ? 2 : 1;                                 \
            if (nf == 4)                                                       \
                lc_p_group_##SUFFIX(X + j * ldc, ldc, 4, nc, n, mean + j,      \
                                    Y + c * n, out + j * r + c, r);            \
            else                                                               \
                for (f = 0; f < nf; f++)                                       \
                    lc_p_group_##SUFFIX(X + (j + f) * ldc, ldc, 1, nc, n,      \
                                        mean + j + f, Y + c * n,               \
                                        out + (j + f) * r + c, r);             \
        }                                                                      \
    }                                                                          \
}

LC_DEFINE_COLUMNS(f64, double, laefast_load4_f64)
LC_DEFINE_COLUMNS(f32, float, laefast_load4_f32)

#else  /* no AVX2 build: never called (laefast_cpu_has_avx2_fma is 0) */

static ptrdiff_t laefast_product_width(ptrdiff_t r)
{
    return r;
}

/* Stubs with the AVX2 versions' signatures, so the caller compiles. */
#define LF_DEFINE_STUB(SUFFIX, T)                                              \
static double laefast_product_block_##SUFFIX(                                  \
    const T* X, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t ahead, ptrdiff_t m,   \
    const double* mean, const double* Qt, ptrdiff_t r, double* Pt,             \
    int want_sq)                                                               \
{                                                                              \
    (void)X; (void)ldx; (void)rows; (void)ahead; (void)m; (void)mean;          \
    (void)Qt; (void)r; (void)Pt; (void)want_sq;                                \
    return 0.0;                                                                \
}

LF_DEFINE_STUB(f64, double)
LF_DEFINE_STUB(f32, float)
LF_DEFINE_STUB(512_f64, double)
LF_DEFINE_STUB(512_f32, float)

#define LC_DEFINE_STUB(SUFFIX, T)                                              \
static double laefast_columns_y_##SUFFIX(                                      \
    const T* X, ptrdiff_t ldc, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t n,        \
    const double* mean, const double* Q, ptrdiff_t r, double* Y, int want_sq)  \
{                                                                              \
    (void)X; (void)ldc; (void)j0; (void)j1; (void)n; (void)mean; (void)Q;      \
    (void)r; (void)Y; (void)want_sq;                                           \
    return 0.0;                                                                \
}                                                                              \
static void laefast_columns_p_##SUFFIX(                                        \
    const T* X, ptrdiff_t ldc, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t n,        \
    const double* mean, const double* Y, ptrdiff_t r, double* out)             \
{                                                                              \
    (void)X; (void)ldc; (void)j0; (void)j1; (void)n; (void)mean; (void)Y;      \
    (void)r; (void)out;                                                        \
}

LC_DEFINE_STUB(f64, double)
LC_DEFINE_STUB(f32, float)

#endif  /* LAEFAST_SIMD_BUILT */

#endif  /* LAEFAST_SIMD_PRODUCT_H */
