/*
 * The centered product of a block of rows, P += Xc^T (Xc Q), in AVX2 + FMA.
 *
 * Why not two BLAS calls on a centered copy of the block: Q has few
 * columns (block Lanczos on samples uses 2), so both GEMMs are skinny, each
 * packs (copies) the block first, and their cost barely depends on the
 * columns.  This kernel reads each pair of rows from memory once, forms
 * y = xc . Q, and adds xc y^T into P while the rows are still in cache; it
 * costs in proportion to the columns.  One pass over 3000 x 4096 float64,
 * one Zen 4 core: 2 columns 5.8 ms against 12.0 ms for the BLAS path,
 * 4 columns 8.8 against 13.3 ms.
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
#include <immintrin.h>
#define LF_AVX2 __attribute__((target("avx2,fma")))
/* the column count and the flags must be constants in the loops */
#define LF_INLINE inline __attribute__((always_inline))
#endif

#if LAEFAST_SIMD_BUILT

/* Keeps a loaded vector in a register.  Without it GCC folds the load into
 * each FMA that uses the vector, and loads it again for every row: the
 * loop then waits on the load ports, not the FMA units. */
#define LF_REG(v) __asm__("" : "+x"(v))

static LF_AVX2 inline __m256d lf_load4_f64(const double* p)
{
    return _mm256_loadu_pd(p);
}

static LF_AVX2 inline __m256d lf_load4_f32(const float* p)
{
    return _mm256_cvtps_pd(_mm_loadu_ps(p));
}

static LF_AVX2 inline double lf_hsum(__m256d v)
{
    __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
    lo = _mm_add_pd(lo, hi);
    return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

/*
 * Rows go in pairs: a pair's products with Q need the whole rows before they
 * can be added back into P, so each pair is read twice, the second time
 * from L1/L2.  A pair shares every load of Q and P.  Columns go in groups
 * of 4, 2 or 1 (laefast_product_width gives the padded count): fewer
 * columns cost fewer flops, and block Lanczos on data uses 2.
 */

static ptrdiff_t laefast_product_width(ptrdiff_t r)
{
    /* 4-column groups, then a last group of 4 (3 padded), 2 or 1 */
    ptrdiff_t rem = r % 4;
    return r - rem + (rem == 3 ? 4 : rem);
}

/* Phase 1 on rows xa (and xb when TWO):
 * ya[c] (yb[c]) += sum_j xc_j Q[c, j] for c < NC; returns the rows' sum of
 * squares when SQ (else 0).  The loop is unrolled 4 / NC times, so that
 * there are always 4 (or 8) independent sums: fewer would leave it waiting
 * on the FMA latency.  It prefetches the same columns of the next two rows
 * (na, nb) into L2: out of cache, the loop's own loads keep too few misses
 * in flight (one pass over 98 MB took 1.3-2x longer without). */
#define LF_DEFINE_PHASES(SUFFIX, T, LOAD4)                                     \
static LF_AVX2 LF_INLINE double lf_y_##SUFFIX(                                 \
    const T* xa, const T* xb, const int TWO, const int NC, const int SQ,       \
    ptrdiff_t m, const double* mean, const double* Qt, double* ya, double* yb, \
    const T* na, const T* nb)                                                  \
{                                                                              \
    const int U = 4 / NC;                                                      \
    __m256d a[4], b[4], sa2 = _mm256_setzero_pd(), sb2 = sa2;                  \
    ptrdiff_t j, jU = (m / (4 * U)) * (4 * U), j4 = m & ~(ptrdiff_t)3;         \
    double sq;                                                                 \
    int c, u;                                                                  \
    for (c = 0; c < 4; c++)                                                    \
        a[c] = b[c] = _mm256_setzero_pd();                                     \
    for (j = 0; j < j4; j += 4 * U) {                                          \
        /* whole unrolled steps, then single vectors up to j4 */               \
        const int nu = j < jU ? U : 1;                                         \
        for (u = 0; u < U; u++) {                                              \
            const ptrdiff_t ju = j + 4 * u;                                    \
            __m256d mu, va, vb;                                                \
            if (u >= nu)                                                       \
                break;                                                         \
            mu = _mm256_loadu_pd(mean + ju);                                   \
            LF_REG(mu);                                                        \
            if (((ju * (ptrdiff_t)sizeof(T)) & 63) == 0) {                     \
                _mm_prefetch((const char*)(na + ju), _MM_HINT_T1);             \
                _mm_prefetch((const char*)(nb + ju), _MM_HINT_T1);             \
            }                                                                  \
            va = _mm256_sub_pd(LOAD4(xa + ju), mu);                            \
            vb = TWO ? _mm256_sub_pd(LOAD4(xb + ju), mu) : mu;                 \
            for (c = 0; c < NC; c++) {                                         \
                __m256d w = _mm256_loadu_pd(Qt + c * m + ju);                  \
                LF_REG(w);                                                     \
                a[u * NC + c] = _mm256_fmadd_pd(va, w, a[u * NC + c]);         \
                if (TWO)                                                       \
                    b[u * NC + c] = _mm256_fmadd_pd(vb, w, b[u * NC + c]);     \
            }                                                                  \
            if (SQ) {                                                          \
                sa2 = _mm256_fmadd_pd(va, va, sa2);                            \
                if (TWO) sb2 = _mm256_fmadd_pd(vb, vb, sb2);                   \
            }                                                                  \
        }                                                                      \
        if (nu < U)                                                            \
            j -= 4 * (U - 1);      /* advanced by one vector only */           \
    }                                                                          \
    for (u = 1; u < U; u++)                                                    \
        for (c = 0; c < NC; c++) {                                             \
            a[c] = _mm256_add_pd(a[c], a[u * NC + c]);                         \
            b[c] = _mm256_add_pd(b[c], b[u * NC + c]);                         \
        }                                                                      \
    for (c = 0; c < NC; c++) {                                                 \
        ya[c] += lf_hsum(a[c]);                                                \
        if (TWO)                                                               \
            yb[c] += lf_hsum(b[c]);                                            \
    }                                                                          \
    sq = SQ ? lf_hsum(_mm256_add_pd(sa2, sb2)) : 0.0;                          \
    for (j = j4; j < m; j++) {                                                 \
        double sa = (double)xa[j] - mean[j];                                   \
        double sb = TWO ? (double)xb[j] - mean[j] : 0.0;                       \
        if (SQ)                                                                \
            sq += sa * sa + sb * sb;                                           \
        for (c = 0; c < NC; c++) {                                             \
            ya[c] += sa * Qt[c * m + j];                                       \
            if (TWO)                                                           \
                yb[c] += sb * Qt[c * m + j];                                   \
        }                                                                      \
    }                                                                          \
    return sq;                                                                 \
}                                                                              \
                                                                               \
/* Phase 2: P[c, j] += xa_j ya[c] (+ xb_j yb[c]). */                          \
static LF_AVX2 LF_INLINE void lf_p_##SUFFIX(                                   \
    const T* xa, const T* xb, const int TWO, const int NC, ptrdiff_t m,        \
    const double* mean, const double* ya, const double* yb, double* Pt)        \
{                                                                              \
    double *p0 = Pt, *p1 = Pt + m, *p2 = Pt + 2 * m, *p3 = Pt + 3 * m;         \
    __m256d ua[4], ub[4];                                                      \
    ptrdiff_t j, j4 = m & ~(ptrdiff_t)3;                                       \
    int c;                                                                     \
    for (c = 0; c < NC; c++) {                                                 \
        ua[c] = _mm256_set1_pd(ya[c]);                                         \
        ub[c] = _mm256_set1_pd(TWO ? yb[c] : 0.0);                             \
    }                                                                          \
    for (j = 0; j < j4; j += 4) {                                              \
        __m256d mu = _mm256_loadu_pd(mean + j);                                \
        __m256d va, vb, p;                                                     \
        LF_REG(mu);                                                            \
        va = _mm256_sub_pd(LOAD4(xa + j), mu);                                 \
        vb = TWO ? _mm256_sub_pd(LOAD4(xb + j), mu) : mu;                      \
        p = _mm256_fmadd_pd(va, ua[0], _mm256_loadu_pd(p0 + j));               \
        if (TWO) p = _mm256_fmadd_pd(vb, ub[0], p);                            \
        _mm256_storeu_pd(p0 + j, p);                                           \
        if (NC > 1) {                                                          \
            p = _mm256_fmadd_pd(va, ua[1], _mm256_loadu_pd(p1 + j));           \
            if (TWO) p = _mm256_fmadd_pd(vb, ub[1], p);                        \
            _mm256_storeu_pd(p1 + j, p);                                       \
        }                                                                      \
        if (NC > 2) {                                                          \
            p = _mm256_fmadd_pd(va, ua[2], _mm256_loadu_pd(p2 + j));           \
            if (TWO) p = _mm256_fmadd_pd(vb, ub[2], p);                        \
            _mm256_storeu_pd(p2 + j, p);                                       \
            p = _mm256_fmadd_pd(va, ua[3], _mm256_loadu_pd(p3 + j));           \
            if (TWO) p = _mm256_fmadd_pd(vb, ub[3], p);                        \
            _mm256_storeu_pd(p3 + j, p);                                       \
        }                                                                      \
    }                                                                          \
    for (j = j4; j < m; j++) {                                                 \
        double sa = (double)xa[j] - mean[j];                                   \
        double sb = TWO ? (double)xb[j] - mean[j] : 0.0;                       \
        for (c = 0; c < NC; c++)                                               \
            Pt[c * m + j] += sa * ya[c] + (TWO ? sb * yb[c] : 0.0);            \
    }                                                                          \
}                                                                              \
                                                                               \
/* Both phases for rows xa (and xb when TWO) and NC columns; returns the       \
 * rows' sum of squares when SQ. */                                            \
static LF_AVX2 LF_INLINE double lf_rows_##SUFFIX(                              \
    const T* xa, const T* xb, const int TWO, const int NC, const int SQ,       \
    ptrdiff_t m, const double* mean, const double* Qc, double* Pc,             \
    const T* na, const T* nb)                                                  \
{                                                                              \
    double ya[4] = {0.0, 0.0, 0.0, 0.0}, yb[4] = {0.0, 0.0, 0.0, 0.0};         \
    double sq = lf_y_##SUFFIX(xa, xb, TWO, NC, SQ, m, mean, Qc, ya, yb, na,    \
                              nb);                                             \
    lf_p_##SUFFIX(xa, xb, TWO, NC, m, mean, ya, yb, Pc);                       \
    return sq;                                                                 \
}                                                                              \
                                                                               \
/* One column group (NC = 4, 2 or 1) of a pair of rows, or of one row. */      \
static LF_AVX2 inline double lf_group_##SUFFIX(                                \
    const T* xa, const T* xb, const int TWO, int nc, int sq, ptrdiff_t m,      \
    const double* mean, const double* Qc, double* Pc, const T* na,             \
    const T* nb)                                                               \
{                                                                              \
    if (nc == 4)                                                               \
        return sq                                                              \
            ? lf_rows_##SUFFIX(xa, xb, TWO, 4, 1, m, mean, Qc, Pc, na, nb)     \
            : lf_rows_##SUFFIX(xa, xb, TWO, 4, 0, m, mean, Qc, Pc, na, nb);    \
    if (nc == 2)                                                               \
        return sq                                                              \
            ? lf_rows_##SUFFIX(xa, xb, TWO, 2, 1, m, mean, Qc, Pc, na, nb)     \
            : lf_rows_##SUFFIX(xa, xb, TWO, 2, 0, m, mean, Qc, Pc, na, nb);    \
    return sq ? lf_rows_##SUFFIX(xa, xb, TWO, 1, 1, m, mean, Qc, Pc, na, nb)   \
              : lf_rows_##SUFFIX(xa, xb, TWO, 1, 0, m, mean, Qc, Pc, na, nb);  \
}                                                                              \
                                                                               \
/* P += Xc^T (Xc Q) over `rows` rows, two at a time; Q and P are r columns     \
 * wide (r from laefast_product_width).  The `ahead` rows after the block      \
 * (the caller's next block) may be prefetched.  Returns sum ||xc_i||^2 when   \
 * want_sq (else 0). */                                                        \
static LF_AVX2 double laefast_product_block_##SUFFIX(                          \
    const T* X, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t ahead, ptrdiff_t m,   \
    const double* mean, const double* Qt, ptrdiff_t r, double* Pt,             \
    int want_sq)                                                               \
{                                                                              \
    double sq = 0.0;                                                           \
    ptrdiff_t i, c;                                                            \
    int nc;                                                                    \
    for (i = 0; i < rows; i += 2) {                                            \
        const T* xa = X + i * ldx;                                             \
        const int two = i + 1 < rows;                                          \
        /* the next pair, where it exists (else these rows again) */           \
        const T* na = i + 2 < rows + ahead ? xa + 2 * ldx : xa;                \
        const T* nb = i + 3 < rows + ahead ? xa + 3 * ldx : na;                \
        for (c = 0; c < r; c += nc) {                                          \
            int first = c == 0;                                                \
            nc = r - c >= 4 ? 4 : (int)(r - c);                                \
            /* later groups find the rows in cache: prefetch nothing new */    \
            if (two)                                                           \
                sq += lf_group_##SUFFIX(xa, xa + ldx, 1, nc, first && want_sq, \
                                        m, mean, Qt + c * m, Pt + c * m,       \
                                        first ? na : xa, first ? nb : xa);     \
            else                                                               \
                sq += lf_group_##SUFFIX(xa, xa, 0, nc, first && want_sq, m,    \
                                        mean, Qt + c * m, Pt + c * m,          \
                                        first ? na : xa, first ? nb : xa);     \
        }                                                                      \
    }                                                                          \
    return sq;                                                                 \
}

LF_DEFINE_PHASES(f64, double, lf_load4_f64)
LF_DEFINE_PHASES(f32, float, lf_load4_f32)

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
