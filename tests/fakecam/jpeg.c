/* fakecam: the JPEG encoder: baseline, YCbCr 4:2:0, standard Huffman tables; a scene's frame
 * as a JPEG with a restart marker after each MCU row. See fakecam.h. */
#include "fakecam.h"

/* ------------------------------------------------------------------ */
/* JPEG encoder (baseline, YCbCr 4:2:0, standard Huffman tables)       */
/* ------------------------------------------------------------------ */
typedef struct {
    uint16_t code[256];
    uint8_t size[256];
} huff_t;

static const uint8_t dc_l_bits[16] = {0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t dc_c_bits[16] = {0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0};
static const uint8_t dc_vals[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const uint8_t ac_l_bits[16] = {0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d};
static const uint8_t ac_l_vals[162] = {
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa};
static const uint8_t ac_c_bits[16] = {0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77};
static const uint8_t ac_c_vals[162] = {
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa};
/* Annex K quantisation tables, natural (row-major) order */
static const uint8_t std_q[2][64] = {
    {16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99},
    {17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
     24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
     99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
     99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99}};

static huff_t H_dc[2], H_ac[2];
static uint8_t g_zz[64];   /* zigzag position -> natural index */
static uint8_t g_q[2][64]; /* natural order */
static float g_fdiv[2][64];
static float g_ylut[256]; /* limited-range Y -> full-range (JFIF), level shifted */
static pthread_once_t g_jpeg_once = PTHREAD_ONCE_INIT;

static void build_huff(huff_t *h, const uint8_t *bits, const uint8_t *vals)
{
    unsigned code = 0, k = 0, l, i;
    for (l = 1; l <= 16; l++) {
        for (i = 0; i < bits[l - 1]; i++, k++) {
            h->code[vals[k]] = (uint16_t)code++;
            h->size[vals[k]] = (uint8_t)l;
        }
        code <<= 1;
    }
}

static void jpeg_init_tables(void)
{
    static const double aan[8] = {1.0, 1.387039845, 1.306562965, 1.175875602,
                                  1.0, 0.785694958, 0.541196100, 0.275899379};
    int s, k = 0, t, i, scale;
    for (s = 0; s < 15; s++) {
        if (!(s & 1)) {
            for (i = s < 8 ? s : 7; i >= 0 && s - i < 8; i--) g_zz[k++] = (uint8_t)(i * 8 + (s - i));
        } else {
            for (i = s < 8 ? s : 7; i >= 0 && s - i < 8; i--) g_zz[k++] = (uint8_t)((s - i) * 8 + i);
        }
    }
    build_huff(&H_dc[0], dc_l_bits, dc_vals);
    build_huff(&H_dc[1], dc_c_bits, dc_vals);
    build_huff(&H_ac[0], ac_l_bits, ac_l_vals);
    build_huff(&H_ac[1], ac_c_bits, ac_c_vals);
    for (i = 0; i < 256; i++) {
        double y = (i - 16) * 255.0 / 219.0;
        g_ylut[i] = (float)((y < 0 ? 0 : y > 255 ? 255 : y) - 128.0);
    }
    scale = g_quality < 50 ? 5000 / g_quality : 200 - 2 * g_quality;
    for (t = 0; t < 2; t++)
        for (i = 0; i < 64; i++) {
            int q = (std_q[t][i] * scale + 50) / 100;
            q = q < 1 ? 1 : q > 255 ? 255 : q;
            g_q[t][i] = (uint8_t)q;
            g_fdiv[t][i] = (float)(1.0 / (q * aan[i >> 3] * aan[i & 7] * 8.0));
        }
}

typedef struct {
    uint8_t *p;
    uint32_t acc;
    int n;
} bw_t;

static inline void put_bits(bw_t *b, uint32_t bits, int len)
{
    b->acc = (b->acc << len) | (bits & ((1u << len) - 1u));
    b->n += len;
    while (b->n >= 8) {
        uint8_t c = (uint8_t)(b->acc >> (b->n - 8));
        *b->p++ = c;
        if (c == 0xFF) *b->p++ = 0;
        b->n -= 8;
    }
}

static inline void dct1(float *d, int s)
{
    float t0 = d[0] + d[7 * s], t7 = d[0] - d[7 * s], t1 = d[s] + d[6 * s], t6 = d[s] - d[6 * s];
    float t2 = d[2 * s] + d[5 * s], t5 = d[2 * s] - d[5 * s], t3 = d[3 * s] + d[4 * s], t4 = d[3 * s] - d[4 * s];
    float t10 = t0 + t3, t13 = t0 - t3, t11 = t1 + t2, t12 = t1 - t2, z1, z2, z3, z4, z5, z11, z13;
    d[0] = t10 + t11;
    d[4 * s] = t10 - t11;
    z1 = (t12 + t13) * 0.707106781f;
    d[2 * s] = t13 + z1;
    d[6 * s] = t13 - z1;
    t10 = t4 + t5;
    t11 = t5 + t6;
    t12 = t6 + t7;
    z5 = (t10 - t12) * 0.382683433f;
    z2 = 0.541196100f * t10 + z5;
    z4 = 1.306562965f * t12 + z5;
    z3 = t11 * 0.707106781f;
    z11 = t7 + z3;
    z13 = t7 - z3;
    d[5 * s] = z13 + z2;
    d[3 * s] = z13 - z2;
    d[s] = z11 + z4;
    d[7 * s] = z11 - z4;
}

static inline int nbits(int v)
{
    unsigned a = (unsigned)(v < 0 ? -v : v);
    return a ? 32 - __builtin_clz(a) : 0;
}

static void enc_block(bw_t *b, float *blk, int t, int *pred)
{
    int q[64], i, k, run = 0, diff, nb;
    const huff_t *dc = &H_dc[t], *ac = &H_ac[t];
    for (i = 0; i < 64; i += 8) dct1(blk + i, 1);
    for (i = 0; i < 8; i++) dct1(blk + i, 8);
    for (i = 0; i < 64; i++) {
        float v = blk[i] * g_fdiv[t][i];
        q[i] = (int)(v < 0 ? v - 0.5f : v + 0.5f);
    }
    diff = q[0] - *pred;
    *pred = q[0];
    nb = nbits(diff);
    put_bits(b, dc->code[nb], dc->size[nb]);
    if (nb) put_bits(b, (uint32_t)(diff < 0 ? diff - 1 : diff), nb);
    for (k = 1; k < 64; k++) {
        int v = q[g_zz[k]];
        if (!v) {
            run++;
            continue;
        }
        while (run > 15) {
            put_bits(b, ac->code[0xF0], ac->size[0xF0]);
            run -= 16;
        }
        nb = nbits(v);
        put_bits(b, ac->code[(run << 4) | nb], ac->size[(run << 4) | nb]);
        put_bits(b, (uint32_t)(v < 0 ? v - 1 : v), nb);
        run = 0;
    }
    if (run) put_bits(b, ac->code[0], ac->size[0]);
}


static void load_y(const fc_scene_t *s, unsigned x0, unsigned y0, float *blk)
{
    unsigned j, i;
    for (j = 0; j < 8; j++) {
        unsigned y = y0 + j < s->h ? y0 + j : s->h - 1;
        const uint8_t *row = s->Y + (size_t)y * s->w;
        if (x0 + 8 <= s->w)
            for (i = 0; i < 8; i++) blk[j * 8 + i] = g_ylut[row[x0 + i]];
        else
            for (i = 0; i < 8; i++) blk[j * 8 + i] = g_ylut[row[x0 + i < s->w ? x0 + i : s->w - 1]];
    }
}

static void load_c(const fc_scene_t *s, const uint8_t *p, unsigned x0, unsigned y0, float *blk)
{
    unsigned j, i;
    for (j = 0; j < 8; j++) {
        unsigned ya = y0 + 2 * j < s->h ? y0 + 2 * j : s->h - 1, yb = ya + 1 < s->h ? ya + 1 : ya;
        const uint8_t *ra = p + (size_t)ya * s->w, *rb = p + (size_t)yb * s->w;
        for (i = 0; i < 8; i++) {
            unsigned xa = x0 + 2 * i < s->w ? x0 + 2 * i : s->w - 1, xb = xa + 1 < s->w ? xa + 1 : xa;
            float c = ((float)(ra[xa] + ra[xb] + rb[xa] + rb[xb]) * 0.25f - 128.0f) * (255.0f / 224.0f);
            blk[j * 8 + i] = c < -128.0f ? -128.0f : c > 127.0f ? 127.0f : c;
        }
    }
}

/* encode one MCU row (a restart interval) into out; returns its length */
static size_t jpeg_row(const fc_scene_t *s, unsigned my, uint8_t *out)
{
    bw_t b = {out, 0, 0};
    int pred[3] = {0, 0, 0};
    float blk[64];
    unsigned mx;
    for (mx = 0; mx < s->mcux; mx++) {
        unsigned x0 = mx * 16, y0 = my * 16;
        load_y(s, x0, y0, blk);
        enc_block(&b, blk, 0, &pred[0]);
        load_y(s, x0 + 8, y0, blk);
        enc_block(&b, blk, 0, &pred[0]);
        load_y(s, x0, y0 + 8, blk);
        enc_block(&b, blk, 0, &pred[0]);
        load_y(s, x0 + 8, y0 + 8, blk);
        enc_block(&b, blk, 0, &pred[0]);
        load_c(s, s->U, x0, y0, blk);
        enc_block(&b, blk, 1, &pred[1]);
        load_c(s, s->V, x0, y0, blk);
        enc_block(&b, blk, 1, &pred[2]);
    }
    if (b.n > 0) put_bits(&b, 0x7F, 8 - b.n);
    return (size_t)(b.p - out);
}

static uint8_t *put_dht(uint8_t *p, int cls, int id, const uint8_t *bits, const uint8_t *vals, int nvals)
{
    int len = 2 + 1 + 16 + nvals;
    *p++ = 0xFF;
    *p++ = 0xC4;
    *p++ = (uint8_t)(len >> 8);
    *p++ = (uint8_t)len;
    *p++ = (uint8_t)(cls << 4 | id);
    memcpy(p, bits, 16);
    p += 16;
    memcpy(p, vals, (size_t)nvals);
    return p + nvals;
}

int scene_jpeg_prepare(fc_scene_t *s)
{
    uint8_t *p = s->hdr;
    unsigned r;
    int t, k;
    if (s->jpeg_ready) return 0;
    pthread_once(&g_jpeg_once, jpeg_init_tables);
    *p++ = 0xFF; *p++ = 0xDB; *p++ = 0; *p++ = 132;
    for (t = 0; t < 2; t++) {
        *p++ = (uint8_t)t;
        for (k = 0; k < 64; k++) *p++ = g_q[t][g_zz[k]];
    }
    *p++ = 0xFF; *p++ = 0xC0; *p++ = 0; *p++ = 17; *p++ = 8;
    *p++ = (uint8_t)(s->h >> 8); *p++ = (uint8_t)s->h;
    *p++ = (uint8_t)(s->w >> 8); *p++ = (uint8_t)s->w;
    *p++ = 3;
    *p++ = 1; *p++ = 0x22; *p++ = 0;
    *p++ = 2; *p++ = 0x11; *p++ = 1;
    *p++ = 3; *p++ = 0x11; *p++ = 1;
    p = put_dht(p, 0, 0, dc_l_bits, dc_vals, 12);
    p = put_dht(p, 1, 0, ac_l_bits, ac_l_vals, 162);
    p = put_dht(p, 0, 1, dc_c_bits, dc_vals, 12);
    p = put_dht(p, 1, 1, ac_c_bits, ac_c_vals, 162);
    *p++ = 0xFF; *p++ = 0xDD; *p++ = 0; *p++ = 4;
    *p++ = (uint8_t)(s->mcux >> 8); *p++ = (uint8_t)s->mcux;
    *p++ = 0xFF; *p++ = 0xDA; *p++ = 0; *p++ = 12; *p++ = 3;
    *p++ = 1; *p++ = 0x00; *p++ = 2; *p++ = 0x11; *p++ = 3; *p++ = 0x11;
    *p++ = 0; *p++ = 63; *p++ = 0;
    s->hdr_len = (size_t)(p - s->hdr);
    s->jrow = calloc(s->mcuy, sizeof *s->jrow);
    s->jrow_len = calloc(s->mcuy, sizeof *s->jrow_len);
    if (!s->jrow || !s->jrow_len) return -1;
    /* cache the rows that never change (work planes == background there) */
    for (r = 0; r < s->mcuy; r++) {
        size_t n;
        if (s->dyn[r]) continue;
        n = jpeg_row(s, r, s->scratch);
        s->jrow[r] = malloc(n ? n : 1);
        if (!s->jrow[r]) return -1;
        memcpy(s->jrow[r], s->scratch, n);
        s->jrow_len[r] = n;
    }
    s->jpeg_ready = 1;
    return 0;
}

size_t out_jpeg(fc_scene_t *s, uint8_t *dst, size_t cap, const char *com)
{
    size_t n = 0, cl = strlen(com), len;
    unsigned r;
    uint8_t m[4];
#define PUT(src, l)                                \
    do {                                           \
        size_t l_ = (l);                           \
        if (n + l_ + 2 > cap) goto full;           \
        memcpy(dst + n, (src), l_);                \
        n += l_;                                   \
    } while (0)
    m[0] = 0xFF; m[1] = 0xD8; m[2] = 0xFF; m[3] = 0xFE;
    PUT(m, 4);
    m[0] = (uint8_t)((cl + 2) >> 8);
    m[1] = (uint8_t)(cl + 2);
    PUT(m, 2);
    PUT(com, cl);
    PUT(s->hdr, s->hdr_len);
    for (r = 0; r < s->mcuy; r++) {
        if (s->dyn[r]) {
            len = jpeg_row(s, r, s->scratch);
            PUT(s->scratch, len);
        } else {
            PUT(s->jrow[r], s->jrow_len[r]);
        }
        if (r + 1 < s->mcuy) {
            m[0] = 0xFF;
            m[1] = (uint8_t)(0xD0 + (r & 7));
            PUT(m, 2);
        }
    }
#undef PUT
full:
    dst[n++] = 0xFF;
    dst[n++] = 0xD9;
    return n;
}
