/* fakecam: V4L2 emulation: the ioctls a capture device answers. See fakecam.h. */
#include "fakecam.h"

/* ------------------------------------------------------------------ */
/* V4L2 emulation                                                      */
/* ------------------------------------------------------------------ */
/* The controls, modelled on a UVC webcam (a Logitech C920's set), sorted by id for NEXT_CTRL.
 * `auto_of`: the index of the control that, while it holds `auto_on`, makes this one INACTIVE
 * (and refuses writes with EACCES, as uvcvideo does); -1 for none.  `busy`: refused with EBUSY
 * while the device streams.  Menus list their entries; NULL entries are gaps that QUERYMENU
 * answers with EINVAL (auto_exposure has only 1 and 3, like UVC cameras). */
static const struct {
    uint32_t id, type;
    const char *name;
    int32_t min, max, step, def;
    int auto_of, auto_on, busy;
    const char *menu[4];
} g_ctrls[FC_NCTRL] = {
    {V4L2_CID_BRIGHTNESS, V4L2_CTRL_TYPE_INTEGER, "Brightness", -64, 64, 1, 0, -1, 0, 0, {0}},
    {V4L2_CID_CONTRAST, V4L2_CTRL_TYPE_INTEGER, "Contrast", 0, 64, 1, 32, -1, 0, 0, {0}},
    {V4L2_CID_AUTO_WHITE_BALANCE, V4L2_CTRL_TYPE_BOOLEAN, "White Balance, Automatic", 0, 1, 1, 1, -1, 0, 0, {0}},
    {V4L2_CID_POWER_LINE_FREQUENCY, V4L2_CTRL_TYPE_MENU, "Power Line Frequency", 0, 2, 1, 1, -1, 0, 0,
     {"Disabled", "50 Hz", "60 Hz", 0}},
    {V4L2_CID_WHITE_BALANCE_TEMPERATURE, V4L2_CTRL_TYPE_INTEGER, "White Balance Temperature", 2800, 6500, 10,
     4600, 2, 1, 0, {0}},
    {V4L2_CID_EXPOSURE_AUTO, V4L2_CTRL_TYPE_MENU, "Auto Exposure", 0, 3, 1, 3, -1, 0, 0,
     {0, "Manual Mode", 0, "Aperture Priority Mode"}},
    {V4L2_CID_EXPOSURE_ABSOLUTE, V4L2_CTRL_TYPE_INTEGER, "Exposure Time, Absolute", 3, 2047, 1, 250, 5, 3, 0, {0}},
    {V4L2_CID_EXPOSURE_AUTO_PRIORITY, V4L2_CTRL_TYPE_BOOLEAN, "Exposure, Dynamic Framerate", 0, 1, 1, 0, -1, 0, 1,
     {0}},
    {V4L2_CID_FOCUS_ABSOLUTE, V4L2_CTRL_TYPE_INTEGER, "Focus, Absolute", 0, 250, 5, 0, 9, 1, 0, {0}},
    {V4L2_CID_FOCUS_AUTO, V4L2_CTRL_TYPE_BOOLEAN, "Focus, Automatic Continuous", 0, 1, 1, 1, -1, 0, 0, {0}},
};

/* power-on values (also after a replug: a real camera forgets its settings) */
void fc_ctrl_reset(fc_dev_t *d)
{
    int i;
    for (i = 0; i < FC_NCTRL; i++) d->ctrl[i] = g_ctrls[i].def;
}

static int ctrl_inactive(const fc_dev_t *d, int i)
{
    int a = g_ctrls[i].auto_of;
    return a >= 0 && d->ctrl[a] == g_ctrls[i].auto_on;
}

static uint32_t ctrl_flags(const fc_dev_t *d, int i)
{
    return ctrl_inactive(d, i) ? V4L2_CTRL_FLAG_INACTIVE : 0;
}

/* What a write of `v` to control i stores in *out: clamped to the range and rounded to the
 * step, as the kernel's control framework does.  Returns 0 or -errno. */
static int ctrl_write(const fc_dev_t *d, int i, int32_t v, int32_t *out)
{
    int64_t x = v, min = g_ctrls[i].min, max = g_ctrls[i].max, step = g_ctrls[i].step;
    if (ctrl_inactive(d, i)) return -EACCES;
    if (g_ctrls[i].busy && d->owner && d->owner->streaming) return -EBUSY;
    x = x < min ? min : x > max ? max : x;
    x = min + (x - min + step / 2) / step * step;
    if (x > max) x -= step;
    if (g_ctrls[i].type == V4L2_CTRL_TYPE_MENU && !g_ctrls[i].menu[x]) return -EINVAL;
    *out = (int32_t)x;
    return 0;
}

static size_t fmt_sizeimage(const fc_fmt_t *f) { return (size_t)f->w * f->h * 2; }

static void fill_pix(struct v4l2_pix_format *p, const fc_fmt_t *f)
{
    memset(p, 0, sizeof *p);
    p->width = f->w;
    p->height = f->h;
    p->pixelformat = f->fourcc;
    p->field = V4L2_FIELD_NONE;
    p->bytesperline = f->fourcc == V4L2_PIX_FMT_YUYV ? f->w * 2 : 0;
    p->sizeimage = (uint32_t)fmt_sizeimage(f);
    p->colorspace = V4L2_COLORSPACE_SRGB;
    p->priv = V4L2_PIX_FMT_PRIV_MAGIC;
}

static int find_fmt(uint32_t fourcc, unsigned w, unsigned h)
{
    int i;
    for (i = 0; i < g_nfmt; i++)
        if (g_fmt[i].fourcc == fourcc && g_fmt[i].w == w && g_fmt[i].h == h) return i;
    return -1;
}

static int best_fmt(uint32_t fourcc, unsigned w, unsigned h)
{
    int i, best = -1;
    unsigned long bd = ~0ul;
    if (find_fmt(fourcc, w, h) >= 0) return find_fmt(fourcc, w, h);
    for (i = 0; i < g_nfmt; i++)
        if (g_fmt[i].fourcc == fourcc) break;
    if (i == g_nfmt) fourcc = g_fmt[0].fourcc;
    for (i = 0; i < g_nfmt; i++) {
        unsigned long dd;
        if (g_fmt[i].fourcc != fourcc) continue;
        dd = (unsigned long)labs((long)g_fmt[i].w - (long)w) + (unsigned long)labs((long)g_fmt[i].h - (long)h);
        if (dd < bd) {
            bd = dd;
            best = i;
        }
    }
    return best;
}

static int has_fps(const fc_fmt_t *f, unsigned fps)
{
    unsigned i;
    for (i = 0; i < f->nfps; i++)
        if (f->fps[i] == fps) return 1;
    return 0;
}

static uint32_t buf_flags(const fc_ofile_t *of, unsigned i)
{
    uint32_t fl = V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC | V4L2_BUF_FLAG_TSTAMP_SRC_SOE;
    if (of->buf[i].mapped) fl |= V4L2_BUF_FLAG_MAPPED;
    if (of->buf[i].queued) fl |= V4L2_BUF_FLAG_QUEUED;
    return fl;
}

static void fill_buf(const fc_ofile_t *of, unsigned i, struct v4l2_buffer *b)
{
    memset(b, 0, sizeof *b);
    b->index = i;
    b->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    b->bytesused = of->buf[i].bytesused;
    b->flags = buf_flags(of, i);
    b->field = V4L2_FIELD_NONE;
    b->memory = V4L2_MEMORY_MMAP;
    b->m.offset = (uint32_t)(i * of->stride);
    b->length = (uint32_t)of->sizeimage;
}

static int ctrl_index(uint32_t id)
{
    int i;
    for (i = 0; i < FC_NCTRL; i++)
        if (g_ctrls[i].id == id) return i;
    return -1;
}

static int ctrl_query_index(uint32_t id)
{
    int i;
    if (id & V4L2_CTRL_FLAG_NEXT_CTRL) {
        id &= ~(V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND);
        for (i = 0; i < FC_NCTRL; i++)
            if (g_ctrls[i].id > id) return i;
        return -1;
    }
    if (id & V4L2_CTRL_FLAG_NEXT_COMPOUND) return -1;
    return ctrl_index(id);
}

static int do_reqbufs(fc_ofile_t *of, struct v4l2_requestbuffers *r)
{
    fc_dev_t *d = of->dev;
    const fc_fmt_t *f = &g_fmt[d->cur_fmt];
    unsigned count = r->count, i;
    long pg = sysconf(_SC_PAGESIZE);
    if (d->meta || r->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return -EINVAL;
    if (r->memory != V4L2_MEMORY_MMAP) return -EINVAL;
    if (d->owner && d->owner != of) return -EBUSY;
    if (of->streaming) return -EBUSY;
    release_buffers_locked(of);
    memset(r->reserved, 0, sizeof r->reserved);
    r->capabilities = V4L2_BUF_CAP_SUPPORTS_MMAP | V4L2_BUF_CAP_SUPPORTS_ORPHANED_BUFS;
    r->flags = 0;
    if (count == 0) {
        d->owner = NULL;
        return 0;
    }
    if (count < 2) count = 2;
    if (count > FC_MAXBUF) count = FC_MAXBUF;
    if (pg <= 0) pg = 4096;
    of->fourcc = f->fourcc;
    of->w = f->w;
    of->h = f->h;
    of->sizeimage = fmt_sizeimage(f);
    of->stride = (of->sizeimage + (size_t)pg - 1) / (size_t)pg * (size_t)pg;
    of->memfd = memfd_create("fakecam-buffers", MFD_CLOEXEC);
    if (of->memfd < 0) return -ENOMEM;
    if (ftruncate(of->memfd, (off_t)(of->stride * count)) < 0) {
        r_close(of->memfd);
        of->memfd = -1;
        return -ENOMEM;
    }
    of->map = r_mmap(NULL, of->stride * count, PROT_READ | PROT_WRITE, MAP_SHARED, of->memfd, 0);
    if (of->map == MAP_FAILED) {
        of->map = NULL;
        r_close(of->memfd);
        of->memfd = -1;
        return -ENOMEM;
    }
    of->nbufs = count;
    for (i = 0; i < count; i++) of->buf[i].bytesused = 0;
    d->owner = of;
    r->count = count;
    return 0;
}

static int check_buf(const fc_ofile_t *of, const struct v4l2_buffer *b, int check_memory)
{
    if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || (check_memory && b->memory != V4L2_MEMORY_MMAP)) return -EINVAL;
    if (b->index >= of->nbufs) return -EINVAL;
    return 0;
}

/* try to dequeue a frame; -EAGAIN: nothing yet, *why: 1 = no buffer queued */
static int try_dqbuf_locked(fc_ofile_t *of, struct v4l2_buffer *b, int *why)
{
    fc_dev_t *d = of->dev;
    fc_scene_t *s;
    struct pollfd p;
    uint64_t ticks, tick_ns;
    struct itimerspec cur;
    unsigned idx;
    uint32_t fno;
    uint8_t *dst;
    size_t used;
    *why = 0;
    if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return -EINVAL;
    if (!of->streaming) return -EINVAL;
    if (of->eio) return -EIO;
    if (!of->qcount) {
        *why = 1;
        return -EAGAIN;
    }
    if (of->stalled) return -EAGAIN;
    p.fd = of->tfd;
    p.events = POLLIN;
    p.revents = 0;
    if (r_poll(&p, 1, 0) != 1 || !(p.revents & POLLIN)) return -EAGAIN;
    if (r_read(of->tfd, &ticks, sizeof ticks) != (ssize_t)sizeof ticks) return -EAGAIN;
    s = dev_scene(d, of->w, of->h);
    if (!s || (of->fourcc == V4L2_PIX_FMT_MJPEG && scene_jpeg_prepare(s) < 0)) return -ENOMEM;
    idx = (unsigned)of->q[of->qhead];
    of->qhead = (of->qhead + 1) % FC_MAXBUF;
    of->qcount--;
    of->buf[idx].queued = 0;
    fno = ++d->frame_no;
    scene_draw(s, fno);
    dst = of->map + idx * of->stride;
    if (of->fourcc == V4L2_PIX_FMT_MJPEG) {
        char com[400];
        snprintf(com, sizeof com, "fakecam frame=%u seq=%u dev=%s %ux%u", fno, of->sequence, d->path, of->w, of->h);
        used = out_jpeg(s, dst, of->sizeimage, com);
        if (used < of->buf[idx].last) memset(dst + used, 0, of->buf[idx].last - used);
        of->buf[idx].last = used;
    } else {
        out_yuyv(s, dst);
        used = of->sizeimage;
    }
    of->buf[idx].bytesused = (uint32_t)used;
    fill_buf(of, idx, b);
    /* timestamp = the tick that produced the frame (regular, like a start-of-frame stamp) */
    tick_ns = now_ns();
    if (timerfd_gettime(of->tfd, &cur) == 0) {
        uint64_t rem = (uint64_t)cur.it_value.tv_sec * 1000000000ull + (uint64_t)cur.it_value.tv_nsec;
        uint64_t iv = (uint64_t)cur.it_interval.tv_sec * 1000000000ull + (uint64_t)cur.it_interval.tv_nsec;
        if (iv && rem <= iv && tick_ns + rem > iv) tick_ns = tick_ns + rem - iv;
    }
    b->timestamp.tv_sec = (time_t)(tick_ns / 1000000000ull);
    b->timestamp.tv_usec = (suseconds_t)(tick_ns % 1000000000ull / 1000);
    b->sequence = of->sequence++;
    of->delivered++;
    d->plug_frames++;
    if (ticks > 1) dbg("%s: %llu frame(s) dropped (client too slow)", d->path, (unsigned long long)(ticks - 1));
    /* faults */
    if (d->eio_after > 0 && of->delivered >= (uint64_t)d->eio_after && !of->eio) {
        of->eio = 1;
        timer_fire_now(of);
        dbg("%s: EIO from now on (after %llu frames on this fd)", d->path, (unsigned long long)of->delivered);
    }
    if (d->stall_after > 0 && !of->eio &&
        (d->stall_persist ? d->plug_frames : of->delivered) >= (uint64_t)d->stall_after) {
        if (d->stall_persist) d->stalled = 1;
        of->stalled = 1;
        timer_stop(of);
        dbg("%s: stalled", d->path);
    }
    if (d->unplug_after > 0 && !d->unplug_done && d->plug_frames >= (uint64_t)d->unplug_after)
        dev_unplug_locked(d);
    return 0;
}

static const char *ioctl_name(unsigned long req)
{
    switch (req) {
#define N(x) \
    case x:  \
        return #x;
        N(VIDIOC_QUERYCAP) N(VIDIOC_ENUM_FMT) N(VIDIOC_ENUM_FRAMESIZES) N(VIDIOC_ENUM_FRAMEINTERVALS)
        N(VIDIOC_G_FMT) N(VIDIOC_S_FMT) N(VIDIOC_TRY_FMT) N(VIDIOC_G_PARM) N(VIDIOC_S_PARM)
        N(VIDIOC_REQBUFS) N(VIDIOC_QUERYBUF) N(VIDIOC_QBUF) N(VIDIOC_DQBUF) N(VIDIOC_STREAMON)
        N(VIDIOC_STREAMOFF) N(VIDIOC_ENUMINPUT) N(VIDIOC_G_INPUT) N(VIDIOC_S_INPUT) N(VIDIOC_QUERYCTRL)
        N(VIDIOC_QUERY_EXT_CTRL) N(VIDIOC_G_CTRL) N(VIDIOC_S_CTRL) N(VIDIOC_G_EXT_CTRLS)
        N(VIDIOC_S_EXT_CTRLS) N(VIDIOC_TRY_EXT_CTRLS) N(VIDIOC_QUERYMENU) N(VIDIOC_G_STD)
        N(VIDIOC_ENUMSTD) N(VIDIOC_G_SELECTION) N(VIDIOC_CROPCAP) N(VIDIOC_G_PRIORITY)
        N(VIDIOC_SUBSCRIBE_EVENT) N(VIDIOC_CREATE_BUFS) N(VIDIOC_EXPBUF) N(VIDIOC_S_PRIORITY)
#undef N
    default:
        return "?";
    }
}

static int max_prio(const fc_dev_t *d)
{
    const fc_ofile_t *o;
    int m = V4L2_PRIORITY_UNSET;
    for (o = g_ofiles; o; o = o->next)
        if (o->dev == d && !o->dead && o->prio > m) m = o->prio;
    return m;
}

/* every ioctl except DQBUF; called with the lock held; returns 0 or -errno */
static int v4l2_ioctl_locked(fc_ofile_t *of, unsigned long req, void *arg)
{
    fc_dev_t *d = of->dev;
    const fc_fmt_t *cf = &g_fmt[d->cur_fmt];
    int i;
    if (of->dead) return -ENODEV;
    if (!arg && req != VIDIOC_LOG_STATUS) {
        /* every ioctl handled below takes an argument */
        switch (req) {
        case VIDIOC_QUERYCAP: case VIDIOC_ENUM_FMT: case VIDIOC_ENUM_FRAMESIZES:
        case VIDIOC_ENUM_FRAMEINTERVALS: case VIDIOC_G_FMT: case VIDIOC_S_FMT: case VIDIOC_TRY_FMT:
        case VIDIOC_G_PARM: case VIDIOC_S_PARM: case VIDIOC_REQBUFS: case VIDIOC_QUERYBUF:
        case VIDIOC_QBUF: case VIDIOC_STREAMON: case VIDIOC_STREAMOFF: case VIDIOC_ENUMINPUT:
        case VIDIOC_G_INPUT: case VIDIOC_S_INPUT: case VIDIOC_QUERYCTRL: case VIDIOC_QUERY_EXT_CTRL:
        case VIDIOC_QUERYMENU:
        case VIDIOC_G_CTRL: case VIDIOC_S_CTRL: case VIDIOC_G_EXT_CTRLS: case VIDIOC_S_EXT_CTRLS:
        case VIDIOC_TRY_EXT_CTRLS: case VIDIOC_G_PRIORITY: case VIDIOC_S_PRIORITY:
            return -EFAULT;
        default:
            return -ENOTTY;
        }
    }
    switch (req) {
    /* ioctls refused while another file handle holds a higher priority */
    case VIDIOC_S_FMT: case VIDIOC_S_PARM: case VIDIOC_REQBUFS: case VIDIOC_STREAMON:
    case VIDIOC_STREAMOFF: case VIDIOC_S_INPUT: case VIDIOC_S_CTRL: case VIDIOC_S_EXT_CTRLS:
    case VIDIOC_S_PRIORITY:
        if (of->prio < max_prio(d)) return -EBUSY;
        break;
    default:
        break;
    }
    switch (req) {
    case VIDIOC_G_PRIORITY:
        *(uint32_t *)arg = (uint32_t)max_prio(d);
        return 0;
    case VIDIOC_S_PRIORITY: {
        uint32_t p = *(uint32_t *)arg;
        if (p == V4L2_PRIORITY_UNSET) p = V4L2_PRIORITY_DEFAULT;
        if (p > V4L2_PRIORITY_RECORD) return -EINVAL;
        of->prio = (int)p;
        return 0;
    }
    case VIDIOC_QUERYCAP: {
        struct v4l2_capability *c = arg;
        memset(c, 0, sizeof *c);
        snprintf((char *)c->driver, sizeof c->driver, "fakecam");
        snprintf((char *)c->card, sizeof c->card, "%.31s", g_name);
        snprintf((char *)c->bus_info, sizeof c->bus_info, "platform:fakecam-%d", d->num);
        c->version = (6u << 16) | (1u << 8);
        c->device_caps = d->meta ? V4L2_CAP_META_CAPTURE | V4L2_CAP_STREAMING
                                 : V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING | V4L2_CAP_EXT_PIX_FORMAT;
        c->capabilities = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING | V4L2_CAP_EXT_PIX_FORMAT |
                          V4L2_CAP_DEVICE_CAPS | (g_any_meta ? V4L2_CAP_META_CAPTURE : 0);
        return 0;
    }
    case VIDIOC_ENUM_FMT: {
        struct v4l2_fmtdesc *f = arg;
        uint32_t idx = f->index, type = f->type, seen = 0;
        if (d->meta) {
            if (type != V4L2_BUF_TYPE_META_CAPTURE || idx != 0) return -EINVAL;
            memset(f, 0, sizeof *f);
            f->type = type;
            f->pixelformat = V4L2_META_FMT_UVC;
            snprintf((char *)f->description, sizeof f->description, "UVC Payload Header Metadata");
            return 0;
        }
        if (type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return -EINVAL;
        for (i = 0; i < g_nfmt; i++) {
            int j, first = 1;
            for (j = 0; j < i; j++)
                if (g_fmt[j].fourcc == g_fmt[i].fourcc) first = 0;
            if (!first) continue;
            if (seen++ == idx) {
                memset(f, 0, sizeof *f);
                f->index = idx;
                f->type = type;
                f->pixelformat = g_fmt[i].fourcc;
                if (g_fmt[i].fourcc == V4L2_PIX_FMT_MJPEG) {
                    f->flags = V4L2_FMT_FLAG_COMPRESSED;
                    snprintf((char *)f->description, sizeof f->description, "Motion-JPEG");
                } else {
                    snprintf((char *)f->description, sizeof f->description, "YUYV 4:2:2");
                }
                return 0;
            }
        }
        return -EINVAL;
    }
    case VIDIOC_ENUM_FRAMESIZES: {
        struct v4l2_frmsizeenum *f = arg;
        uint32_t seen = 0;
        if (d->meta) return -ENOTTY;
        for (i = 0; i < g_nfmt; i++) {
            if (g_fmt[i].fourcc != f->pixel_format) continue;
            if (seen++ == f->index) {
                f->type = V4L2_FRMSIZE_TYPE_DISCRETE;
                memset(&f->stepwise, 0, sizeof f->stepwise);
                f->discrete.width = g_fmt[i].w;
                f->discrete.height = g_fmt[i].h;
                memset(f->reserved, 0, sizeof f->reserved);
                return 0;
            }
        }
        return -EINVAL;
    }
    case VIDIOC_ENUM_FRAMEINTERVALS: {
        struct v4l2_frmivalenum *f = arg;
        int k;
        if (d->meta) return -ENOTTY;
        k = find_fmt(f->pixel_format, f->width, f->height);
        if (k < 0 || f->index >= g_fmt[k].nfps) return -EINVAL;
        f->type = V4L2_FRMIVAL_TYPE_DISCRETE;
        memset(&f->stepwise, 0, sizeof f->stepwise);
        f->discrete.numerator = 1;
        f->discrete.denominator = g_fmt[k].fps[f->index];
        memset(f->reserved, 0, sizeof f->reserved);
        return 0;
    }
    case VIDIOC_G_FMT:
    case VIDIOC_S_FMT:
    case VIDIOC_TRY_FMT: {
        struct v4l2_format *f = arg;
        if (d->meta) {
            if (f->type != V4L2_BUF_TYPE_META_CAPTURE) return -EINVAL;
            memset(&f->fmt, 0, sizeof f->fmt);
            f->fmt.meta.dataformat = V4L2_META_FMT_UVC;
            f->fmt.meta.buffersize = 10240;
            return 0;
        }
        if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return -EINVAL;
        if (req == VIDIOC_G_FMT) {
            fill_pix(&f->fmt.pix, cf);
            return 0;
        }
        i = best_fmt(f->fmt.pix.pixelformat, f->fmt.pix.width, f->fmt.pix.height);
        if (i < 0) return -EINVAL;
        if (req == VIDIOC_S_FMT) {
            if (d->owner) return -EBUSY;
            d->cur_fmt = i;
            if (!has_fps(&g_fmt[i], d->cur_fps)) d->cur_fps = g_fmt[i].fps[0];
        }
        fill_pix(&f->fmt.pix, &g_fmt[i]);
        return 0;
    }
    case VIDIOC_G_PARM:
    case VIDIOC_S_PARM: {
        struct v4l2_streamparm *p = arg;
        if (d->meta) return -ENOTTY;
        if (p->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return -EINVAL;
        if (req == VIDIOC_S_PARM) {
            struct v4l2_fract t = p->parm.capture.timeperframe;
            if (d->owner && d->owner->streaming) return -EBUSY;
            if (t.numerator && t.denominator) {
                double want = (double)t.denominator / t.numerator, bd = 1e30;
                unsigned k, best = d->cur_fps;
                for (k = 0; k < cf->nfps; k++)
                    if (fabs(cf->fps[k] - want) < bd) {
                        bd = fabs(cf->fps[k] - want);
                        best = cf->fps[k];
                    }
                d->cur_fps = best;
            }
        }
        memset(&p->parm, 0, sizeof p->parm);
        p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
        p->parm.capture.timeperframe.numerator = 1;
        p->parm.capture.timeperframe.denominator = d->cur_fps;
        return 0;
    }
    case VIDIOC_REQBUFS:
        return do_reqbufs(of, arg);
    case VIDIOC_QUERYBUF: {
        struct v4l2_buffer *b = arg;
        int r;
        if (d->meta) return -EINVAL;
        if ((r = check_buf(of, b, 0))) return r;
        fill_buf(of, b->index, b);
        return 0;
    }
    case VIDIOC_QBUF: {
        struct v4l2_buffer *b = arg;
        int r;
        if (d->meta) return -EINVAL;
        if ((r = check_buf(of, b, 1))) return r;
        if (b->flags & V4L2_BUF_FLAG_REQUEST_FD) return -EBADR; /* no request API */
        if (of->eio) return -EIO;
        if (of->buf[b->index].queued) return -EINVAL;
        of->buf[b->index].queued = 1;
        of->q[(of->qhead + of->qcount) % FC_MAXBUF] = (int)b->index;
        of->qcount++;
        b->flags = buf_flags(of, b->index);
        b->length = (uint32_t)of->sizeimage;
        b->m.offset = (uint32_t)(b->index * of->stride);
        return 0;
    }
    case VIDIOC_STREAMON:
    case VIDIOC_STREAMOFF: {
        if (d->meta || *(int *)arg != V4L2_BUF_TYPE_VIDEO_CAPTURE) return -EINVAL;
        if (req == VIDIOC_STREAMON) {
            if (!of->nbufs) return -EINVAL;
            if (of->streaming) return 0;
            if (!dev_scene(d, of->w, of->h)) return -ENOMEM;
            of->streaming = 1;
            of->sequence = 0;
            if (d->stall_persist && d->stalled) of->stalled = 1;
            if (of->eio) timer_fire_now(of);
            else if (!of->stalled) {
                uint64_t ns = frame_interval_ns(d);
                timer_set(of, ns, ns);
            }
            return 0;
        }
        of->streaming = 0;
        timer_stop(of);
        for (i = 0; i < (int)of->nbufs; i++) of->buf[i].queued = 0;
        of->qcount = of->qhead = 0;
        return 0;
    }
    case VIDIOC_ENUMINPUT: {
        struct v4l2_input *in = arg;
        if (in->index != 0) return -EINVAL;
        memset(in, 0, sizeof *in);
        snprintf((char *)in->name, sizeof in->name, "Camera 1");
        in->type = V4L2_INPUT_TYPE_CAMERA;
        return 0;
    }
    case VIDIOC_G_INPUT:
        *(int *)arg = 0;
        return 0;
    case VIDIOC_S_INPUT:
        return *(int *)arg == 0 ? 0 : -EINVAL;
    case VIDIOC_QUERYCTRL: {
        struct v4l2_queryctrl *q = arg;
        if (d->meta) return -ENOTTY;
        i = ctrl_query_index(q->id);
        if (i < 0) return -EINVAL;
        memset(q, 0, sizeof *q);
        q->id = g_ctrls[i].id;
        q->type = g_ctrls[i].type;
        snprintf((char *)q->name, sizeof q->name, "%s", g_ctrls[i].name);
        q->minimum = g_ctrls[i].min;
        q->maximum = g_ctrls[i].max;
        q->step = g_ctrls[i].step;
        q->default_value = g_ctrls[i].def;
        q->flags = ctrl_flags(d, i);
        return 0;
    }
    case VIDIOC_QUERY_EXT_CTRL: {
        struct v4l2_query_ext_ctrl *q = arg;
        if (d->meta) return -ENOTTY;
        i = ctrl_query_index(q->id);
        if (i < 0) return -EINVAL;
        memset(q, 0, sizeof *q);
        q->id = g_ctrls[i].id;
        q->type = g_ctrls[i].type;
        snprintf(q->name, sizeof q->name, "%s", g_ctrls[i].name);
        q->minimum = g_ctrls[i].min;
        q->maximum = g_ctrls[i].max;
        q->step = (uint64_t)g_ctrls[i].step;
        q->default_value = g_ctrls[i].def;
        q->flags = ctrl_flags(d, i);
        q->elem_size = 4;
        q->elems = 1;
        return 0;
    }
    case VIDIOC_QUERYMENU: {
        struct v4l2_querymenu *m = arg;
        uint32_t index = m->index;
        if (d->meta) return -ENOTTY;
        i = ctrl_index(m->id);
        if (i < 0 || g_ctrls[i].type != V4L2_CTRL_TYPE_MENU) return -EINVAL;
        if (index > 3 || (int32_t)index < g_ctrls[i].min || (int32_t)index > g_ctrls[i].max ||
            !g_ctrls[i].menu[index])
            return -EINVAL;
        memset(m, 0, sizeof *m);
        m->id = g_ctrls[i].id;
        m->index = index;
        snprintf((char *)m->name, sizeof m->name, "%s", g_ctrls[i].menu[index]);
        return 0;
    }
    case VIDIOC_G_CTRL:
    case VIDIOC_S_CTRL: {
        struct v4l2_control *c = arg;
        int32_t x;
        int r;
        if (d->meta) return -ENOTTY;
        i = ctrl_index(c->id);
        if (i < 0) return -EINVAL;
        if (req == VIDIOC_S_CTRL) {
            if ((r = ctrl_write(d, i, c->value, &x))) return r;
            d->ctrl[i] = x;
        }
        c->value = d->ctrl[i];
        return 0;
    }
    case VIDIOC_G_EXT_CTRLS:
    case VIDIOC_S_EXT_CTRLS:
    case VIDIOC_TRY_EXT_CTRLS: {
        struct v4l2_ext_controls *e = arg;
        uint32_t k;
        int32_t x;
        int r;
        if (d->meta) return -ENOTTY;
        if (e->which == V4L2_CTRL_WHICH_REQUEST_VAL) return -EINVAL;
        if (e->which == V4L2_CTRL_WHICH_DEF_VAL && req != VIDIOC_G_EXT_CTRLS) return -EINVAL;
        if (e->count && !e->controls) return -EFAULT;
        for (k = 0; k < e->count; k++)
            if (ctrl_index(e->controls[k].id) < 0 ||
                (e->which != V4L2_CTRL_WHICH_CUR_VAL && e->which != V4L2_CTRL_WHICH_DEF_VAL &&
                 V4L2_CTRL_ID2WHICH(e->controls[k].id) != e->which)) {
                e->error_idx = req == VIDIOC_TRY_EXT_CTRLS ? k : e->count;
                return -EINVAL;
            }
        /* writes: check them all first, so that a refused one changes nothing (as the kernel) */
        if (req != VIDIOC_G_EXT_CTRLS)
            for (k = 0; k < e->count; k++) {
                i = ctrl_index(e->controls[k].id);
                if ((r = ctrl_write(d, i, e->controls[k].value, &x))) {
                    e->error_idx = k;
                    return r;
                }
            }
        for (k = 0; k < e->count; k++) {
            struct v4l2_ext_control *c = &e->controls[k];
            i = ctrl_index(c->id);
            if (req == VIDIOC_G_EXT_CTRLS)
                c->value = e->which == V4L2_CTRL_WHICH_DEF_VAL ? g_ctrls[i].def : d->ctrl[i];
            else {
                ctrl_write(d, i, c->value, &x); /* checked above */
                c->value = x;
                if (req == VIDIOC_S_EXT_CTRLS) d->ctrl[i] = x;
            }
        }
        return 0;
    }
    default:
        return -ENOTTY;
    }
}

/* returns 0, or -errno */
static int fake_dqbuf(int fd, struct v4l2_buffer *b)
{
    for (;;) {
        fc_ofile_t *of;
        int r, why, nb;
        lock();
        of = lookup_locked(fd);
        if (!of) {
            unlock();
            return -EBADF;
        }
        if (of->dead) r = -ENODEV;
        else if (of->dev->meta) r = -EINVAL;
        else r = try_dqbuf_locked(of, b, &why);
        if (r != -EAGAIN) {
            unlock();
            return r;
        }
        nb = r_fcntl(of->tfd, F_GETFL) & O_NONBLOCK;
        unlock();
        if (nb) return -EAGAIN;
        if (why) {
            r_poll(NULL, 0, 20);
        } else {
            struct pollfd p = {fd, POLLIN, 0};
            r_poll(&p, 1, 100);
        }
    }
}

int fake_ioctl(int fd, unsigned long req, void *arg, int *handled)
{
    fc_ofile_t *of;
    int r;
    req &= 0xFFFFFFFFul;
    *handled = 1;
    if (req == FIONBIO || req == FIOCLEX || req == FIONCLEX || req == FIOASYNC) {
        *handled = 0; /* handled by the VFS, forward to the timerfd */
        return 0;
    }
    if (req == VIDIOC_DQBUF) {
        if (!arg) r = -EFAULT;
        else r = fake_dqbuf(fd, arg);
        if (r == -EBADF) {
            *handled = 0;
            return 0;
        }
    } else {
        struct itimerspec its;
        lock();
        of = lookup_locked(fd);
        if (of && timerfd_gettime(fd, &its) < 0) {
            /* stale entry: the fd was closed behind our back (e.g. raw close syscall) */
            map_del_locked(fd);
            of = NULL;
        }
        if (!of) {
            unlock();
            *handled = 0;
            return 0;
        }
        r = v4l2_ioctl_locked(of, req, arg);
        unlock();
    }
    if (g_debug && !(req == VIDIOC_DQBUF && r == -EAGAIN))
        dbg("ioctl fd=%d %s (0x%08lx) -> %s", fd, ioctl_name(req), req, r ? strerror(-r) : "ok");
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return 0;
}
