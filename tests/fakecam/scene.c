/* fakecam: the scene: what the camera "sees" (colour bars, a moving block, the frame number)
 * and the frame as YUYV. See fakecam.h. */
#include "fakecam.h"

/* ------------------------------------------------------------------ */
/* scene: what the camera "sees"                                       */
/* ------------------------------------------------------------------ */
static const uint8_t font5x7[10][7] = {
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}};

static uint8_t clamp8(double v)
{
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrint(v));
}

static void rgb2yuv(double r, double g, double b, uint8_t *y, uint8_t *u, uint8_t *v)
{
    *y = clamp8(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0);
    *u = clamp8(128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0);
    *v = clamp8(128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0);
}

static void scene_free(fc_scene_t *s)
{
    unsigned r;
    if (!s) return;
    free(s->bgY);
    free(s->Y);
    free(s->dyn);
    free(s->yuyv_bg);
    free(s->scratch);
    if (s->jrow)
        for (r = 0; r < s->mcuy; r++) free(s->jrow[r]);
    free(s->jrow);
    free(s->jrow_len);
    free(s);
}

static void fill(fc_scene_t *s, long x0, long y0, long x1, long y1, uint8_t Y, uint8_t U, uint8_t V)
{
    long y;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > (long)s->w) x1 = s->w;
    if (y1 > (long)s->h) y1 = s->h;
    if (x0 >= x1 || y0 >= y1) return;
    for (y = y0; y < y1; y++) {
        size_t o = (size_t)y * s->w + (size_t)x0, n = (size_t)(x1 - x0);
        memset(s->Y + o, Y, n);
        memset(s->U + o, U, n);
        memset(s->V + o, V, n);
    }
}

static void mark_dyn(fc_scene_t *s, unsigned y0, unsigned y1)
{
    unsigned r;
    if (y1 > s->h) y1 = s->h;
    for (r = y0 / 16; r < s->mcuy && r * 16 < y1; r++) s->dyn[r] = 1;
}

static fc_scene_t *scene_new(unsigned w, unsigned h)
{
    static const double bars[8][3] = {{235, 235, 235}, {235, 235, 16}, {16, 235, 235}, {16, 235, 16},
                                      {235, 16, 235},  {235, 16, 16},  {16, 16, 235},  {128, 128, 128}};
    fc_scene_t *s = calloc(1, sizeof *s);
    size_t n = (size_t)w * h;
    unsigned x, y, barw = w / 8 ? w / 8 : 1;
    if (!s) return NULL;
    s->w = w;
    s->h = h;
    s->mcux = (w + 15) / 16;
    s->mcuy = (h + 15) / 16;
    s->bgY = malloc(n * 3);
    s->Y = malloc(n * 3);
    s->dyn = calloc(s->mcuy, 1);
    s->scratch = malloc((size_t)s->mcux * 6 * 512 + 64);
    if (!s->bgY || !s->Y || !s->dyn || !s->scratch) {
        scene_free(s);
        return NULL;
    }
    s->bgU = s->bgY + n;
    s->bgV = s->bgY + 2 * n;
    s->U = s->Y + n;
    s->V = s->Y + 2 * n;
    for (y = 0; y < h; y++) {
        double g = 0.40 + 0.60 * y / (h > 1 ? h - 1 : 1);
        for (x = 0; x < w; x++) {
            unsigned b = x / barw > 7 ? 7 : x / barw;
            double ramp = 0.85 + 0.15 * (double)(x % barw) / barw;
            size_t o = (size_t)y * w + x;
            rgb2yuv(bars[b][0] * g * ramp, bars[b][1] * g * ramp, bars[b][2] * g * ramp, &s->bgY[o], &s->bgU[o],
                    &s->bgV[o]);
        }
    }
    memcpy(s->Y, s->bgY, n * 3);
    /* geometry of the moving parts */
    s->cw = w / 32;
    s->ds = h / 60 > 2 ? h / 60 : 2;
    s->box_y0 = 36;
    s->dx = 8;
    s->dy = s->box_y0 + s->ds;
    s->box_y1 = s->dy + 8 * s->ds;
    s->bs = (h / 6 > 8 ? h / 6 : 8) & ~1u;
    if (s->bs > w / 2) s->bs = (w / 2) & ~1u;
    s->by = h / 2 > s->bs / 2 ? h / 2 - s->bs / 2 : 0;
    if (s->by < s->box_y1 + 4) s->by = s->box_y1 + 4;
    if (s->by + s->bs > h) s->by = h > s->bs ? h - s->bs : 0;
    s->step = w / 64 > 2 ? w / 64 : 2;
    mark_dyn(s, 0, 32);
    mark_dyn(s, s->box_y0, s->box_y1);
    mark_dyn(s, s->by, s->by + s->bs);
    return s;
}

void scene_draw(fc_scene_t *s, uint32_t fno)
{
    unsigned r, i, y, nd;
    char txt[16];
    uint8_t oy, ou, ov;
    for (r = 0; r < s->mcuy; r++) {
        size_t o, n;
        unsigned y1;
        if (!s->dyn[r]) continue;
        y1 = r * 16 + 16 > s->h ? s->h : r * 16 + 16;
        o = (size_t)r * 16 * s->w;
        n = (size_t)(y1 - r * 16) * s->w;
        memcpy(s->Y + o, s->bgY + o, n);
        memcpy(s->U + o, s->bgU + o, n);
        memcpy(s->V + o, s->bgV + o, n);
    }
    /* exact bits: rows 0..7, x = bit index */
    for (i = 0; i < 32; i++) {
        uint8_t Y = (fno >> i) & 1 ? 235 : 16;
        fill(s, i, 0, i + 1, 8, Y, 128, 128);
    }
    /* robust bits: rows 16..31, cells of w/32 */
    if (s->cw)
        for (i = 0; i < 32; i++) {
            uint8_t Y = (fno >> i) & 1 ? 235 : 16;
            fill(s, (long)(i * s->cw), 16, (long)((i + 1) * s->cw), 32, Y, 128, 128);
        }
    /* the frame number in big digits */
    nd = (unsigned)snprintf(txt, sizeof txt, "%u", fno);
    fill(s, (long)s->dx - (long)s->ds, s->box_y0, (long)(s->dx + nd * 6 * s->ds + s->ds), s->box_y1, 16, 128,
         128);
    for (i = 0; i < nd; i++) {
        const uint8_t *g = font5x7[txt[i] - '0'];
        for (y = 0; y < 7; y++) {
            unsigned c;
            for (c = 0; c < 5; c++)
                if (g[y] & (0x10 >> c)) {
                    long px = (long)(s->dx + (i * 6 + c) * s->ds), py = (long)(s->dy + y * s->ds);
                    fill(s, px, py, px + (long)s->ds, py + (long)s->ds, 235, 128, 128);
                }
        }
    }
    /* moving block */
    rgb2yuv(255, 140, 0, &oy, &ou, &ov);
    {
        unsigned span = s->w - s->bs + 1;
        long bx = (long)(((uint64_t)fno * s->step) % span);
        fill(s, bx, s->by, bx + (long)s->bs, s->by + s->bs, oy, ou, ov);
    }
}
void out_yuyv(fc_scene_t *s, uint8_t *dst)
{
    unsigned r, y, x;
    size_t stride = (size_t)s->w * 2;
    if (!s->yuyv_bg) {
        s->yuyv_bg = malloc(stride * s->h);
        if (s->yuyv_bg) {
            for (y = 0; y < s->h; y++) {
                const uint8_t *Y = s->bgY + (size_t)y * s->w, *U = s->bgU + (size_t)y * s->w,
                              *V = s->bgV + (size_t)y * s->w;
                uint8_t *o = s->yuyv_bg + y * stride;
                for (x = 0; x < s->w; x += 2, o += 4) {
                    o[0] = Y[x];
                    o[1] = (uint8_t)((U[x] + U[x + 1] + 1) >> 1);
                    o[2] = Y[x + 1];
                    o[3] = (uint8_t)((V[x] + V[x + 1] + 1) >> 1);
                }
            }
        }
    }
    for (r = 0; r < s->mcuy; r++) {
        unsigned y0 = r * 16, y1 = y0 + 16 > s->h ? s->h : y0 + 16;
        if (!s->dyn[r] && s->yuyv_bg) {
            memcpy(dst + y0 * stride, s->yuyv_bg + y0 * stride, (y1 - y0) * stride);
            continue;
        }
        for (y = y0; y < y1; y++) {
            const uint8_t *Y = s->Y + (size_t)y * s->w, *U = s->U + (size_t)y * s->w, *V = s->V + (size_t)y * s->w;
            uint8_t *o = dst + y * stride;
            for (x = 0; x < s->w; x += 2, o += 4) {
                o[0] = Y[x];
                o[1] = (uint8_t)((U[x] + U[x + 1] + 1) >> 1);
                o[2] = Y[x + 1];
                o[3] = (uint8_t)((V[x] + V[x + 1] + 1) >> 1);
            }
        }
    }
}

fc_scene_t *dev_scene(fc_dev_t *d, unsigned w, unsigned h)
{
    if (d->scene && d->scene->w == w && d->scene->h == h) return d->scene;
    scene_free(d->scene);
    d->scene = scene_new(w, h);
    return d->scene;
}
