/*
 * The Gram pass's block update for narrow data, P's upper triangle (+)=
 * B^T B, in AVX-512F: B is a centered block of rows (rows x m, row-major,
 * float64, or float32 below), P is m x m row-major, float64.
 *
 * Why not BLAS's syrk: at small m its packing and its triangular edges
 * cost as much as the arithmetic.  One Zen 4 core, 4096 x m centered
 * rows, useful flops (rows m (m + 1) / 2 multiply-adds): OpenBLAS's dsyrk
 * 8.3, 10.4, 15.1, 19.6 and 22.1 G/s at m = 16, 32, 64, 128 and 256;
 * this kernel, standalone on a buffer aligned to a cache line, 15.5,
 * 20.0, 23.5, 25.8 and 23.5 (36 against 67, 108 against 207, 363 against
 * 563, 1313 against 1819 and 5741 against 6108 us).  A full dgemm of
 * 1024^3 runs at 26.3 here: the kernel's own tiles run near that, and
 * lose only the parts of the diagonal tiles below the diagonal.  Its
 * limit in the Gram pass (GRAM_SIMD_MAX_M) is in _constants.pxd, with
 * the pass's own numbers.
 *
 * The upper triangle goes in tiles of 8 rows by 16 columns: 16 running
 * sums in ZMM registers, each row of the block adding the outer product of
 * its 8 entries i0..i0+7 (broadcast) and its 16 entries j0..j0+15 (two
 * vector loads, masked only in the right-edge tiles).  No packing: both come
 * straight from the block's rows.  The rows go in chunks of
 * LG_CHUNK_ROWS, every tile over one chunk before the next, so that a
 * chunk (at most 512 KiB for m <= 256) stays in L2 for all its tiles.
 *
 * Tiles cut by the diagonal also write their entries below it (rows i >
 * j of the tile): the caller reads P's upper triangle only.  With first
 * set, the tiles are stored rather than added to, below-diagonal entries
 * included, so that no uninitialized entry is read afterwards.
 *
 * Compiled for AVX-512F through a function attribute, used only where the
 * CPU has it (laefast_cpu_has_avx512, _cpu.h); AVX2 versions (below)
 * where the CPU has AVX2 and FMA only; elsewhere, and on
 * compilers without the attributes, the caller keeps syrk.
 */
#ifndef LAEFAST_SIMD_GRAM_H
#define LAEFAST_SIMD_GRAM_H

#include <stddef.h>

#include "_cpu.h"

#if LAEFAST_SIMD_BUILT

#define LG_AVX512 __attribute__((target("avx512f,avx2,fma")))
/* the tile's row count must be a constant in the loops */
#define LG_INLINE inline __attribute__((always_inline))
#define LG_CHUNK_ROWS 256

/* lanes l < w of 8 (an AVX-512 mask) */
static LG_AVX512 LG_INLINE __mmask8 lg_mask8(ptrdiff_t w)
{
    return (__mmask8)(w >= 8 ? 0xFF : w <= 0 ? 0 : (1u << w) - 1);
}

/* Tile rows i0..i0+R-1 by columns j0..j0+w-1 (w <= 16) over `rows` rows
 * of the block B (row stride m). */
static LG_AVX512 LG_INLINE void lg_tile(
    const int R, const int FULL, ptrdiff_t rows, ptrdiff_t m, ptrdiff_t i0,
    ptrdiff_t j0, ptrdiff_t w, const double* B, double* P, int first)
{
    __m512d a0[8], a1[8];
    __mmask8 k0 = lg_mask8(w), k1 = lg_mask8(w - 8);
    const double* x = B;
    ptrdiff_t k;
    int r;
    for (r = 0; r < R; r++) {
        a0[r] = _mm512_setzero_pd();
        a1[r] = _mm512_setzero_pd();
    }
    for (k = 0; k < rows; k++, x += m) {
        __m512d v0 = FULL ? _mm512_loadu_pd(x + j0)
                          : _mm512_maskz_loadu_pd(k0, x + j0);
        __m512d v1 = FULL ? _mm512_loadu_pd(x + j0 + 8)
                          : _mm512_maskz_loadu_pd(k1, x + j0 + 8);
        for (r = 0; r < R; r++) {
            __m512d b = _mm512_set1_pd(x[i0 + r]);
            a0[r] = _mm512_fmadd_pd(b, v0, a0[r]);
            a1[r] = _mm512_fmadd_pd(b, v1, a1[r]);
        }
    }
    for (r = 0; r < R; r++) {
        double* p = P + (i0 + r) * m + j0;
        if (!first) {
            a0[r] = _mm512_add_pd(a0[r], _mm512_maskz_loadu_pd(k0, p));
            a1[r] = _mm512_add_pd(a1[r], _mm512_maskz_loadu_pd(k1, p + 8));
        }
        _mm512_mask_storeu_pd(p, k0, a0[r]);
        _mm512_mask_storeu_pd(p + 8, k1, a1[r]);
    }
}

/* The tile of rows i0.. (8, or the 1 to 7 left above the diagonal's end)
 * over chunk b, columns j0..j0+w-1 (FULL: all lanes, plain loads; a
 * masked load on every row, its mask reloaded from the stack, made the
 * kernel 1.11-1.19x slower): TILE's row count must be a constant. */
#define LG_TILES(TILE, FULL)                                                   \
    switch (j0 + w - i0 < 8 ? (int)(j0 + w - i0) : 8) {                        \
    case 8: TILE(8, FULL, kr, m, i0, j0, w, b, P, f); break;                   \
    case 7: TILE(7, FULL, kr, m, i0, j0, w, b, P, f); break;                   \
    case 6: TILE(6, FULL, kr, m, i0, j0, w, b, P, f); break;                   \
    case 5: TILE(5, FULL, kr, m, i0, j0, w, b, P, f); break;                   \
    case 4: TILE(4, FULL, kr, m, i0, j0, w, b, P, f); break;                   \
    case 3: TILE(3, FULL, kr, m, i0, j0, w, b, P, f); break;                   \
    case 2: TILE(2, FULL, kr, m, i0, j0, w, b, P, f); break;                   \
    default: TILE(1, FULL, kr, m, i0, j0, w, b, P, f); break;                  \
    }

/* One kernel NAME (compiled for ATTR, blocks of T): the rows in chunks of
 * LG_CHUNK_ROWS; in each chunk the columns in tiles of WIDTH and, for
 * each, the tiles of STEP rows i0 < j0 + w (those rows hold entries (i, j
 * >= i) of these columns), their row counts dispatched by TILES. */
#define LG_DEFINE_UPPER(NAME, ATTR, T, WIDTH, STEP, TILES, TILE)               \
static ATTR void NAME(ptrdiff_t rows, ptrdiff_t m, const T* B, double* P,     \
                      int first)                                               \
{                                                                              \
    ptrdiff_t c0 = 0, kr, i0, j0, w;                                           \
    do {                                                                       \
        kr = rows - c0 < LG_CHUNK_ROWS ? rows - c0 : LG_CHUNK_ROWS;            \
        for (j0 = 0; j0 < m; j0 += WIDTH) {                                    \
            w = m - j0 < WIDTH ? m - j0 : WIDTH;                               \
            for (i0 = 0; i0 < j0 + w; i0 += STEP) {                            \
                const T* b = B + c0 * m;                                       \
                int f = first && c0 == 0;                                      \
                if (w == WIDTH) {                                              \
                    TILES(TILE, 1)                                             \
                } else {                                                       \
                    TILES(TILE, 0)                                             \
                }                                                              \
            }                                                                  \
        }                                                                      \
        c0 += LG_CHUNK_ROWS;                                                   \
    } while (c0 < rows);                                                       \
}

LG_DEFINE_UPPER(laefast_gram_upper_512, LG_AVX512, double, 16, 8, LG_TILES,
                lg_tile)

/*
 * float32 blocks: tiles of 8 rows by 32 columns, 16 lanes a vector, the
 * running sums in float32 over one chunk of rows (at most 256 products
 * per sum), then added into P in float64.  BLAS's ssyrk summed a whole
 * block (up to 4096 rows) in float32 before that addition.  One Zen 4
 * core, 4096 rows, standalone, useful multiply-adds: 13.6, 29.6, 38.8
 * and 46.1 G/s at m = 16, 32, 64 and 128, against ssyrk's 9.9, 14.4,
 * 23.0 and 32.4 (41 against 55, 73 against 148, 220 against 371, 734
 * against 1042 us).
 */

/* P[0..7] (+)= the 8 float32 sums in v, in float64 (lanes in k) */
static LG_AVX512 LG_INLINE void lg_add8_f32(double* p, __mmask8 k, __m256 v,
                                            int first)
{
    __m512d q = _mm512_cvtps_pd(v);
    if (!first)
        q = _mm512_add_pd(q, _mm512_maskz_loadu_pd(k, p));
    _mm512_mask_storeu_pd(p, k, q);
}

/* lanes l < w of 16 (an AVX-512 mask) */
static LG_AVX512 LG_INLINE __mmask16 lg_mask16(ptrdiff_t w)
{
    return (__mmask16)(w >= 16 ? 0xFFFF : w <= 0 ? 0 : (1u << w) - 1);
}

static LG_AVX512 LG_INLINE void lg_tile_f32(
    const int R, const int FULL, ptrdiff_t rows, ptrdiff_t m, ptrdiff_t i0,
    ptrdiff_t j0, ptrdiff_t w, const float* B, double* P, int first)
{
    __m512 a0[8], a1[8];
    __mmask16 k0 = lg_mask16(w), k1 = lg_mask16(w - 16);
    /* The sums leave through this buffer: extracting their upper halves
     * from the registers made GCC keep all 16 on the stack, stored on
     * every row (2.4x slower). */
    float t[32] __attribute__((aligned(64)));
    const float* x = B;
    ptrdiff_t k;
    int r;
    for (r = 0; r < R; r++) {
        a0[r] = _mm512_setzero_ps();
        a1[r] = _mm512_setzero_ps();
    }
    for (k = 0; k < rows; k++, x += m) {
        __m512 v0 = FULL ? _mm512_loadu_ps(x + j0)
                         : _mm512_maskz_loadu_ps(k0, x + j0);
        __m512 v1 = FULL ? _mm512_loadu_ps(x + j0 + 16)
                         : _mm512_maskz_loadu_ps(k1, x + j0 + 16);
        for (r = 0; r < R; r++) {
            __m512 b = _mm512_set1_ps(x[i0 + r]);
            a0[r] = _mm512_fmadd_ps(b, v0, a0[r]);
            a1[r] = _mm512_fmadd_ps(b, v1, a1[r]);
        }
    }
    for (r = 0; r < R; r++) {
        double* p = P + (i0 + r) * m + j0;
        _mm512_store_ps(t, a0[r]);
        _mm512_store_ps(t + 16, a1[r]);
        lg_add8_f32(p, (__mmask8)k0, _mm256_load_ps(t), first);
        lg_add8_f32(p + 8, (__mmask8)(k0 >> 8), _mm256_load_ps(t + 8), first);
        lg_add8_f32(p + 16, (__mmask8)k1, _mm256_load_ps(t + 16), first);
        lg_add8_f32(p + 24, (__mmask8)(k1 >> 8), _mm256_load_ps(t + 24),
                    first);
    }
}

LG_DEFINE_UPPER(laefast_gram_upper_512_f32, LG_AVX512, float, 32, 8,
                LG_TILES, lg_tile_f32)

/*
 * Where the CPU has AVX2 and FMA but not AVX-512F: 16 YMM
 * registers hold tiles of 6 rows by 8 columns (12 running sums, 2 loads
 * and a broadcast).  Masked loads only in the right-edge tiles: with a
 * masked load on every row the kernel ran 1.05-1.15x slower.  One Zen 4
 * core, 4096 rows, against OpenBLAS's dsyrk for Haswell (what AVX2-only
 * x86 CPUs get; OPENBLAS_CORETYPE=Haswell): 31 against 81, 104 against
 * 203, 361 against 562, 772 against 1084 and 1334 against 1760 us at m =
 * 16, 32, 64, 96 and 128 (1.3-2.6x; tiles of 4 x 12 took 56, 137, 481,
 * 805 and 1519 us, their 12 columns a poor fit to most widths).
 */
#define LG_AVX2 __attribute__((target("avx2,fma")))

/* lanes l < w of 4 */
static LG_AVX2 LG_INLINE __m256i lg2_mask(ptrdiff_t w)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)w),
                              _mm256_setr_epi64x(0, 1, 2, 3));
}

static LG_AVX2 LG_INLINE __m256d lg2_load(const double* p, __m256i k,
                                          const int full)
{
    return full ? _mm256_loadu_pd(p) : _mm256_maskload_pd(p, k);
}

static LG_AVX2 LG_INLINE void lg2_tile(
    const int R, const int FULL, ptrdiff_t rows, ptrdiff_t m, ptrdiff_t i0,
    ptrdiff_t j0, ptrdiff_t w, const double* B, double* P, int first)
{
    __m256d a0[6], a1[6];
    __m256i k0 = lg2_mask(w), k1 = lg2_mask(w - 4);
    const double* x = B;
    ptrdiff_t k;
    int r;
    for (r = 0; r < R; r++)
        a0[r] = a1[r] = _mm256_setzero_pd();
    for (k = 0; k < rows; k++, x += m) {
        __m256d v0 = lg2_load(x + j0, k0, FULL);
        __m256d v1 = lg2_load(x + j0 + 4, k1, FULL);
        for (r = 0; r < R; r++) {
            __m256d b = _mm256_broadcast_sd(x + i0 + r);
            a0[r] = _mm256_fmadd_pd(b, v0, a0[r]);
            a1[r] = _mm256_fmadd_pd(b, v1, a1[r]);
        }
    }
    for (r = 0; r < R; r++) {
        double* p = P + (i0 + r) * m + j0;
        if (!first) {
            a0[r] = _mm256_add_pd(a0[r], _mm256_maskload_pd(p, k0));
            a1[r] = _mm256_add_pd(a1[r], _mm256_maskload_pd(p + 4, k1));
        }
        _mm256_maskstore_pd(p, k0, a0[r]);
        _mm256_maskstore_pd(p + 4, k1, a1[r]);
    }
}

#define LG2_TILES(TILE, FULL)                                                  \
    switch (j0 + w - i0 < 6 ? (int)(j0 + w - i0) : 6) {                        \
    case 6: TILE(6, FULL, kr, m, i0, j0, w, b, P, f); break;                   \
    case 5: TILE(5, FULL, kr, m, i0, j0, w, b, P, f); break;                   \
    case 4: TILE(4, FULL, kr, m, i0, j0, w, b, P, f); break;                   \
    case 3: TILE(3, FULL, kr, m, i0, j0, w, b, P, f); break;                   \
    case 2: TILE(2, FULL, kr, m, i0, j0, w, b, P, f); break;                   \
    default: TILE(1, FULL, kr, m, i0, j0, w, b, P, f); break;                  \
    }

LG_DEFINE_UPPER(laefast_gram_upper_avx2, LG_AVX2, double, 8, 6, LG2_TILES,
                lg2_tile)

/*
 * float32 blocks in AVX2: tiles of 6 rows by 16 columns (two vectors of 8
 * lanes), the sums in float32 over one chunk of rows as in the AVX-512
 * kernel, then added into P in float64.  Standalone against OpenBLAS's
 * Haswell ssyrk: 18.6 against 65, 58 against 148, 191 against 375, 410
 * against 678 and 690 against 1060 us at m = 16, 32, 64, 96 and 128 (an
 * earlier 4 x 24 tile was no faster than ssyrk: 24 columns fit few
 * widths).
 */

/* lanes l < w of 8 (float32) */
static LG_AVX2 LG_INLINE __m256i lg2_mask8(ptrdiff_t w)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(w < 0 ? 0 : w > 8 ? 8
                                                      : w)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* P[0..3] (+)= the 4 float32 sums in v, in float64 (the first w lanes) */
static LG_AVX2 LG_INLINE void lg2_add4_f32(double* p, ptrdiff_t w, __m128 v,
                                           int first)
{
    __m256d q = _mm256_cvtps_pd(v);
    __m256i k;
    if (w <= 0)
        return;
    k = lg2_mask(w);
    if (!first)
        q = _mm256_add_pd(q, _mm256_maskload_pd(p, k));
    _mm256_maskstore_pd(p, k, q);
}

static LG_AVX2 LG_INLINE void lg2_tile_f32(
    const int R, const int FULL, ptrdiff_t rows, ptrdiff_t m, ptrdiff_t i0,
    ptrdiff_t j0, ptrdiff_t w, const float* B, double* P, int first)
{
    __m256 a0[6], a1[6];
    __m256i k0 = lg2_mask8(w), k1 = lg2_mask8(w - 8);
    /* The sums leave through this buffer, as in lg_tile_f32. */
    float t[16] __attribute__((aligned(32)));
    const float* x = B;
    ptrdiff_t k;
    int r, h;
    for (r = 0; r < R; r++)
        a0[r] = a1[r] = _mm256_setzero_ps();
    for (k = 0; k < rows; k++, x += m) {
        __m256 v0 = FULL ? _mm256_loadu_ps(x + j0)
                         : _mm256_maskload_ps(x + j0, k0);
        __m256 v1 = FULL ? _mm256_loadu_ps(x + j0 + 8)
                         : _mm256_maskload_ps(x + j0 + 8, k1);
        for (r = 0; r < R; r++) {
            __m256 b = _mm256_broadcast_ss(x + i0 + r);
            a0[r] = _mm256_fmadd_ps(b, v0, a0[r]);
            a1[r] = _mm256_fmadd_ps(b, v1, a1[r]);
        }
    }
    for (r = 0; r < R; r++) {
        double* p = P + (i0 + r) * m + j0;
        _mm256_store_ps(t, a0[r]);
        _mm256_store_ps(t + 8, a1[r]);
        for (h = 0; h < 4; h++)
            lg2_add4_f32(p + 4 * h, w - 4 * h, _mm_load_ps(t + 4 * h),
                         first);
    }
}

LG_DEFINE_UPPER(laefast_gram_upper_avx2_f32, LG_AVX2, float, 16, 6,
                LG2_TILES, lg2_tile_f32)

#else  /* no SIMD build: never called (laefast_cpu_has_avx2_fma is 0) */

static void laefast_gram_upper_avx2_f32(
    ptrdiff_t rows, ptrdiff_t m, const float* B, double* P, int first)
{
    (void)rows; (void)m; (void)B; (void)P; (void)first;
}

static void laefast_gram_upper_avx2(
    ptrdiff_t rows, ptrdiff_t m, const double* B, double* P, int first)
{
    (void)rows; (void)m; (void)B; (void)P; (void)first;
}

static void laefast_gram_upper_512(
    ptrdiff_t rows, ptrdiff_t m, const double* B, double* P, int first)
{
    (void)rows; (void)m; (void)B; (void)P; (void)first;
}

static void laefast_gram_upper_512_f32(
    ptrdiff_t rows, ptrdiff_t m, const float* B, double* P, int first)
{
    (void)rows; (void)m; (void)B; (void)P; (void)first;
}

#endif  /* LAEFAST_SIMD_BUILT */

#endif  /* LAEFAST_SIMD_GRAM_H */
