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
 */
#ifndef LAEFAST_SIMD_PRODUCT_H
#define LAEFAST_SIMD_PRODUCT_H

#include <stddef.h>

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

#endif  /* LAEFAST_SIMD_BUILT */

#endif  /* LAEFAST_SIMD_PRODUCT_H */
