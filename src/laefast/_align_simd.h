/* AVX2+FMA versions of laefast._alignment's transposed pass (finish_t),
 * Kolen-Pollack's row pass and WM's noise (uniform_noise), and KP's own
 * kernel for delta^T x (la_kp_*), chosen at run time.
 *
 * The build targets baseline x86-64 (SSE2), where the compiler vectorizes
 * the transposed pass's strided reads only partly.  Here each small tile of
 * the panel (4 rows by 2 columns for float64, 8 by 4 for float32) is loaded
 * a row at a time and transposed in registers, so every access to the
 * n_in x n_out matrices is a full 256-bit vector.
 *
 * Every tile loads P for all its result rows before it stores
 * any: with result rows 4 KiB apart (n_out = 512 float64) a load that
 * follows a store at the same address modulo 4 KiB waits for that store
 * (the CPU matches loads against earlier stores on the low address bits),
 * and storing a row before loading the next one slowed the pass by half.
 *
 * la_tie_d / la_tie_f: columns j0 .. j0 + r - 1 of the n_in x n_out matrix
 * s buf^T + d P, where buf holds r rows of n_in entries, ldb apart, into
 * out.  la_rows_d / la_rows_f: r rows of
 * g + d q.  The same arithmetic as finish_t and finish, with fused
 * multiply-adds (so equal up to rounding).
 *
 * la_simd_ok(): whether to call them -- only where the compiler can build
 * them (GCC or Clang on x86), the CPU (and OS) supports AVX2 and FMA, and
 * la_simd_wanted has not been cleared (_alignment.simd(False): tests force
 * the portable loops that way).  Elsewhere (MSVC, ARM, or a build with
 * LAEFAST_NO_SIMD defined) la_simd_ok() is 0 and the stubs at the end are
 * never called.
 */
#ifndef LAEFAST_ALIGN_SIMD_H
#define LAEFAST_ALIGN_SIMD_H

#include <stddef.h>
#include <stdint.h>

#include "_cpu.h"

/* Set once at import (la_simd_init), then only read; la_simd_wanted is the
 * tests' switch. */
static int la_simd_have = 0;
static int la_simd_wanted = 1;

static void la_simd_init(void)
{
    la_simd_have = laefast_cpu_has_avx2_fma();
}

/* Kolen-Pollack's G = delta^T x without BLAS (la_kp_pack_*, la_kp_rows_*):
 * at b = 32 on a 512 x 512 layer OpenBLAS spends a good part of its GEMM
 * packing (K = b is short), and a tile of G finished straight from
 * registers never goes to memory.  x is packed once per call into blocks
 * of LA_KP_COLS columns and delta into blocks of 4 columns (rows of G),
 * both zero-padded, so the kernel's loads are contiguous; a 4-row tile
 * keeps 8 vector sums (FMA latency times its two pipes).  Entries of the
 * packed copies, for either type: */
#define LA_KP_COLS 16     /* float32: 2 x 8 lanes (float64 uses 8) */
static inline ptrdiff_t la_kp_pack_size(ptrdiff_t b, ptrdiff_t n_in,
                                        ptrdiff_t n_out)
{
    return b * ((n_in + LA_KP_COLS - 1) / LA_KP_COLS * LA_KP_COLS
                + (n_out + 3) / 4 * 4);
}

#if LAEFAST_SIMD_BUILT
#include <immintrin.h>

#define LA_TARGET __attribute__((target("avx2,fma")))

/* One output element, scalar (tile edges). */
#define LA_TIE_ONE(T, FMA)                                                   \
    do {                                                                     \
        T g_ = buf[j * ldb + i];                                             \
        ptrdiff_t k_ = i * n_out + j0 + j;                                   \
        out[k_] = FMA(s, g_, d * P[k_]);                                     \
    } while (0)

static inline LA_TARGET double la_fma_d(double a, double b, double c)
{
    return __builtin_fma(a, b, c);
}

static inline LA_TARGET float la_fma_f(float a, float b, float c)
{
    return __builtin_fmaf(a, b, c);
}

static LA_TARGET void la_tie_d(ptrdiff_t n_in, ptrdiff_t n_out, ptrdiff_t j0,
                               ptrdiff_t r, double s, const double* buf,
                               ptrdiff_t ldb, double d, const double* P,
                               double* out)
{
    const __m256d vs = _mm256_set1_pd(s), vd = _mm256_set1_pd(d);
    ptrdiff_t i, j, i2 = n_in & ~(ptrdiff_t) 1, r4 = r & ~(ptrdiff_t) 3;
    /* Two rows of the result at a time (four rows at once -- four more
     * streams to and from memory -- measured slower at 512 x 512): a 4 x 2
     * tile of buf, transposed in registers, gives four entries of each. */
    for (i = 0; i < i2; i += 2) {
        const double* q0 = P + i * n_out + j0;
        const double* q1 = q0 + n_out;
        for (j = 0; j < r4; j += 4) {
            const double* g = buf + j * ldb + i;
            __m256d a = _mm256_insertf128_pd(
                _mm256_castpd128_pd256(_mm_loadu_pd(g)),
                _mm_loadu_pd(g + 2 * ldb), 1);
            __m256d b = _mm256_insertf128_pd(
                _mm256_castpd128_pd256(_mm_loadu_pd(g + ldb)),
                _mm_loadu_pd(g + 3 * ldb), 1);
            /* Loads before stores (see the top of this file). */
            __m256d p0 = _mm256_loadu_pd(q0 + j);
            __m256d p1 = _mm256_loadu_pd(q1 + j);
            __m256d g0 = _mm256_fmadd_pd(vs, _mm256_unpacklo_pd(a, b),
                                         _mm256_mul_pd(vd, p0));
            __m256d g1 = _mm256_fmadd_pd(vs, _mm256_unpackhi_pd(a, b),
                                         _mm256_mul_pd(vd, p1));
            ptrdiff_t k = i * n_out + j0 + j;
            _mm256_storeu_pd(out + k, g0);
            _mm256_storeu_pd(out + k + n_out, g1);
        }
        for (; j < r; j++) {
            LA_TIE_ONE(double, la_fma_d);
            i++;
            LA_TIE_ONE(double, la_fma_d);
            i--;
        }
    }
    for (; i < n_in; i++)
        for (j = 0; j < r; j++)
            LA_TIE_ONE(double, la_fma_d);
}

static LA_TARGET void la_tie_f(ptrdiff_t n_in, ptrdiff_t n_out, ptrdiff_t j0,
                               ptrdiff_t r, float s, const float* buf,
                               ptrdiff_t ldb, float d, const float* P,
                               float* out)
{
    const __m256 vs = _mm256_set1_ps(s), vd = _mm256_set1_ps(d);
    ptrdiff_t i, j, i4 = n_in & ~(ptrdiff_t) 3, r8 = r & ~(ptrdiff_t) 7;
    int c;
    /* Four rows of the result at a time: an 8 x 4 tile of buf (rows c and
     * c + 4 in the two halves of one register), transposed in registers,
     * gives eight entries of each. */
    for (i = 0; i < i4; i += 4) {
        for (j = 0; j < r8; j += 8) {
            const float* g = buf + j * ldb + i;
            __m256 a[4], t[4], col[4], p[4];
            ptrdiff_t k = i * n_out + j0 + j;
            for (c = 0; c < 4; c++)
                a[c] = _mm256_insertf128_ps(
                    _mm256_castps128_ps256(_mm_loadu_ps(g + c * ldb)),
                    _mm_loadu_ps(g + (c + 4) * ldb), 1);
            t[0] = _mm256_unpacklo_ps(a[0], a[1]);
            t[1] = _mm256_unpackhi_ps(a[0], a[1]);
            t[2] = _mm256_unpacklo_ps(a[2], a[3]);
            t[3] = _mm256_unpackhi_ps(a[2], a[3]);
            col[0] = _mm256_shuffle_ps(t[0], t[2], 0x44);
            col[1] = _mm256_shuffle_ps(t[0], t[2], 0xEE);
            col[2] = _mm256_shuffle_ps(t[1], t[3], 0x44);
            col[3] = _mm256_shuffle_ps(t[1], t[3], 0xEE);
            /* Loads before stores (see the top of this file). */
            for (c = 0; c < 4; c++)
                p[c] = _mm256_loadu_ps(P + k + c * n_out);
            for (c = 0; c < 4; c++)
                col[c] = _mm256_fmadd_ps(vs, col[c], _mm256_mul_ps(vd, p[c]));
            for (c = 0; c < 4; c++)
                _mm256_storeu_ps(out + k + c * n_out, col[c]);
        }
        for (; j < r; j++) {
            ptrdiff_t i0 = i;
            for (i = i0; i < i0 + 4; i++)
                LA_TIE_ONE(float, la_fma_f);
            i = i0;
        }
    }
    for (; i < n_in; i++)
        for (j = 0; j < r; j++)
            LA_TIE_ONE(float, la_fma_f);
}

/* qout = g + d q for r rows of n entries (g rows ldg apart, q and qout
 * rows ldq apart): KP's gW = G + d W. */
#define LA_DEFINE_ROWS(NAME, T, FMA)                                         \
static LA_TARGET void NAME(ptrdiff_t r, ptrdiff_t n, const T* g,             \
                           ptrdiff_t ldg, T d, const T* q, T* qout,          \
                           ptrdiff_t ldq)                                    \
{                                                                            \
    ptrdiff_t j, k;                                                          \
    for (j = 0; j < r; j++, g += ldg, q += ldq, qout += ldq)                 \
        for (k = 0; k < n; k++)                                              \
            qout[k] = FMA(d, q[k], g[k]);                                    \
}

LA_DEFINE_ROWS(la_rows_d, double, la_fma_d)
LA_DEFINE_ROWS(la_rows_f, float, la_fma_f)

/* WM's noise: n draws of splitmix64 from *state (draw k mixes
 * *state + k gamma), each mapped to a (2 u - 1), u = (z >> 11) 2^-53, as
 * uniform_noise does; *state advances by n gamma.  Four draws at a time:
 * AVX2 has no 64-bit multiply or int64 -> double conversion, so the
 * multiplies are built from 32-bit ones and z >> 11 (53 bits) converts
 * as its high 21 and low 32 bits, each exact.  Every step is exact up to
 * the final product with a (t - 1 and the scalings are exact), so the
 * draws equal the portable loop's bit for bit. */
static inline LA_TARGET __m256i la_mul64(__m256i x, __m256i c_lo,
                                         __m256i c_hi)
{
    __m256i lo = _mm256_mul_epu32(x, c_lo);
    __m256i cross = _mm256_add_epi64(
        _mm256_mul_epu32(_mm256_srli_epi64(x, 32), c_lo),
        _mm256_mul_epu32(x, c_hi));
    return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}

static inline LA_TARGET __m256d la_noise4(__m256i z, __m256d va)
{
    const __m256i m1_lo = _mm256_set1_epi64x(0x1CE4E5B9LL);
    const __m256i m1_hi = _mm256_set1_epi64x(0xBF58476DLL);
    const __m256i m2_lo = _mm256_set1_epi64x(0x133111EBLL);
    const __m256i m2_hi = _mm256_set1_epi64x(0x94D049BBLL);
    __m256i v, hi, lo;
    __m256d d;
    z = la_mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), m1_lo, m1_hi);
    z = la_mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), m2_lo, m2_hi);
    z = _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
    v = _mm256_srli_epi64(z, 11);
    /* 2^84 + hi 2^32 and 2^52 + lo as doubles, less their offsets. */
    hi = _mm256_or_si256(_mm256_srli_epi64(v, 32),
                         _mm256_set1_epi64x(0x4530000000000000LL));
    lo = _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi64x(0xFFFFFFFFLL)),
                         _mm256_set1_epi64x(0x4330000000000000LL));
    d = _mm256_add_pd(
        _mm256_sub_pd(_mm256_castsi256_pd(hi),
                      _mm256_set1_pd(19342813113834066795298816.0)), /* 2^84 */
        _mm256_sub_pd(_mm256_castsi256_pd(lo),
                      _mm256_set1_pd(4503599627370496.0)));          /* 2^52 */
    /* a (2 (v 2^-53) - 1) = a (v 2^-52 - 1). */
    d = _mm256_sub_pd(
        _mm256_mul_pd(d, _mm256_set1_pd(1.0 / 4503599627370496.0)),
        _mm256_set1_pd(1.0));
    return _mm256_mul_pd(va, d);
}

#define LA_GAMMA UINT64_C(0x9E3779B97F4A7C15)

static inline double la_noise1(uint64_t* s, double a)
{
    uint64_t z = (*s += LA_GAMMA);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return a * (2.0 * ((double) (int64_t) (z >> 11)
                       * (1.0 / 9007199254740992.0)) - 1.0);
}

/* la_noise_d / la_noise_f: n draws into out, four at a time. */
#define LA_DEFINE_NOISE(NAME, T, STORE4)                                     \
static LA_TARGET void NAME(ptrdiff_t n, double a, uint64_t* state, T* out)   \
{                                                                            \
    uint64_t s = *state;                                                     \
    const __m256d va = _mm256_set1_pd(a);                                    \
    const __m256i step = _mm256_set1_epi64x((long long) (4 * LA_GAMMA));     \
    __m256i z = _mm256_set_epi64x((long long) (s + 4 * LA_GAMMA),            \
                                  (long long) (s + 3 * LA_GAMMA),            \
                                  (long long) (s + 2 * LA_GAMMA),            \
                                  (long long) (s + LA_GAMMA));               \
    ptrdiff_t i;                                                             \
    for (i = 0; i + 4 <= n; i += 4) {                                        \
        STORE4(out + i, la_noise4(z, va));                                   \
        z = _mm256_add_epi64(z, step);                                       \
    }                                                                        \
    s += (uint64_t) i * LA_GAMMA;                                            \
    for (; i < n; i++)                                                       \
        out[i] = (T) la_noise1(&s, a);                                       \
    *state = s;                                                              \
}

#define LA_STORE4_D(p, v) _mm256_storeu_pd((p), (v))
#define LA_STORE4_F(p, v) _mm_storeu_ps((p), _mm256_cvtpd_ps(v))
LA_DEFINE_NOISE(la_noise_d, double, LA_STORE4_D)
LA_DEFINE_NOISE(la_noise_f, float, LA_STORE4_F)

/* xp: x's columns in blocks of V (V = 2 NV lanes), each block b rows of V,
 * the last one zero-padded; dp: delta's columns (G's rows) in blocks of 4,
 * likewise.  Then la_kp_rows_* forms h <= 4 rows of G from one block of dp
 * into g (rows ld apart). */
#define LA_DEFINE_KP(SUF, T, V, NV, VT, LOADU, STOREU, ZERO, BCAST, FMADD)   \
static LA_TARGET void la_kp_pack_##SUF(ptrdiff_t b, ptrdiff_t n_in,          \
                                       ptrdiff_t n_out, const T* x,          \
                                       const T* delta, T* xp, T* dp)         \
{                                                                            \
    ptrdiff_t c, i, j, k, w;                                                 \
    for (c = 0; c < n_in; c += V) {                                          \
        w = n_in - c < V ? n_in - c : V;                                     \
        for (k = 0; k < b; k++, xp += V) {                                   \
            for (i = 0; i < w; i++)                                          \
                xp[i] = x[k * n_in + c + i];                                 \
            for (; i < V; i++)                                               \
                xp[i] = 0;                                                   \
        }                                                                    \
    }                                                                        \
    for (j = 0; j < n_out; j += 4) {                                         \
        w = n_out - j < 4 ? n_out - j : 4;                                   \
        for (k = 0; k < b; k++, dp += 4) {                                   \
            for (i = 0; i < w; i++)                                          \
                dp[i] = delta[k * n_out + j + i];                            \
            for (; i < 4; i++)                                               \
                dp[i] = 0;                                                   \
        }                                                                    \
    }                                                                        \
}                                                                            \
                                                                             \
static LA_TARGET void la_kp_rows_##SUF(ptrdiff_t b, ptrdiff_t n_in,          \
                                       ptrdiff_t h, const T* xp,             \
                                       const T* dpj, T* g, ptrdiff_t ld)     \
{                                                                            \
    ptrdiff_t c, i, k;                                                       \
    int r;                                                                   \
    for (c = 0; c < n_in; c += V, xp += b * V) {                             \
        VT a[8];                                                             \
        const T* d = dpj;                                                    \
        for (r = 0; r < 8; r++)                                              \
            a[r] = ZERO();                                                   \
        for (k = 0; k < b; k++, d += 4) {                                    \
            const VT x0 = LOADU(xp + k * V), x1 = LOADU(xp + k * V + NV);    \
            for (r = 0; r < 4; r++) {                                        \
                const VT dv = BCAST(d + r);                                  \
                a[2 * r] = FMADD(dv, x0, a[2 * r]);                          \
                a[2 * r + 1] = FMADD(dv, x1, a[2 * r + 1]);                  \
            }                                                                \
        }                                                                    \
        if (h == 4 && c + V <= n_in) {                                       \
            for (r = 0; r < 4; r++) {                                        \
                STOREU(g + r * ld + c, a[2 * r]);                            \
                STOREU(g + r * ld + c + NV, a[2 * r + 1]);                   \
            }                                                                \
        } else {                  /* the edges: through a small tile */      \
            T t[4 * V];                                                      \
            const ptrdiff_t w = n_in - c < V ? n_in - c : V;                 \
            for (r = 0; r < 4; r++) {                                        \
                STOREU(t + r * V, a[2 * r]);                                 \
                STOREU(t + r * V + NV, a[2 * r + 1]);                        \
            }                                                                \
            for (r = 0; r < h; r++)                                          \
                for (i = 0; i < w; i++)                                      \
                    g[r * ld + c + i] = t[r * V + i];                        \
        }                                                                    \
    }                                                                        \
}

LA_DEFINE_KP(d, double, 8, 4, __m256d, _mm256_loadu_pd, _mm256_storeu_pd,
             _mm256_setzero_pd, _mm256_broadcast_sd, _mm256_fmadd_pd)
LA_DEFINE_KP(f, float, 16, 8, __m256, _mm256_loadu_ps, _mm256_storeu_ps,
             _mm256_setzero_ps, _mm256_broadcast_ss, _mm256_fmadd_ps)

#else   /* no AVX2 build: la_simd_ok() stays 0 and these are never called */

static void la_tie_d(ptrdiff_t n_in, ptrdiff_t n_out, ptrdiff_t j0,
                     ptrdiff_t r, double s, const double* buf, ptrdiff_t ldb,
                     double d, const double* P, double* out)
{
    (void) n_in; (void) n_out; (void) j0; (void) r; (void) s; (void) buf;
    (void) ldb; (void) d; (void) P; (void) out;
}

static void la_tie_f(ptrdiff_t n_in, ptrdiff_t n_out, ptrdiff_t j0,
                     ptrdiff_t r, float s, const float* buf, ptrdiff_t ldb,
                     float d, const float* P, float* out)
{
    (void) n_in; (void) n_out; (void) j0; (void) r; (void) s; (void) buf;
    (void) ldb; (void) d; (void) P; (void) out;
}
static void la_rows_d(ptrdiff_t r, ptrdiff_t n, const double* g,
                      ptrdiff_t ldg, double d, const double* q, double* qout,
                      ptrdiff_t ldq)
{
    (void) r; (void) n; (void) g; (void) ldg; (void) d; (void) q;
    (void) qout; (void) ldq;
}

static void la_rows_f(ptrdiff_t r, ptrdiff_t n, const float* g,
                      ptrdiff_t ldg, float d, const float* q, float* qout,
                      ptrdiff_t ldq)
{
    (void) r; (void) n; (void) g; (void) ldg; (void) d; (void) q;
    (void) qout; (void) ldq;
}

static void la_noise_d(ptrdiff_t n, double a, uint64_t* state,
                       double* out)
{
    (void) n; (void) a; (void) state; (void) out;
}

static void la_noise_f(ptrdiff_t n, double a, uint64_t* state,
                       float* out)
{
    (void) n; (void) a; (void) state; (void) out;
}
#define LA_DEFINE_KP_STUB(SUF, T)                                            \
static void la_kp_pack_##SUF(ptrdiff_t b, ptrdiff_t n_in, ptrdiff_t n_out,   \
                             const T* x, const T* delta, T* xp, T* dp)       \
{                                                                            \
    (void) b; (void) n_in; (void) n_out; (void) x; (void) delta; (void) xp;  \
    (void) dp;                                                               \
}                                                                            \
static void la_kp_rows_##SUF(ptrdiff_t b, ptrdiff_t n_in, ptrdiff_t h,       \
                             const T* xp, const T* dpj, T* g, ptrdiff_t ld)  \
{                                                                            \
    (void) b; (void) n_in; (void) h; (void) xp; (void) dpj; (void) g;        \
    (void) ld;                                                               \
}
LA_DEFINE_KP_STUB(d, double)
LA_DEFINE_KP_STUB(f, float)
#endif

static inline int la_simd_ok(void)
{
    return la_simd_have && la_simd_wanted;
}

#endif
