/*
 * fakecam.c - a fake V4L2 camera, as an LD_PRELOAD shared library (tests only).
 *
 * It pretends that one or more /dev/videoN nodes are UVC-like capture devices.
 * Opens of the configured paths never reach the kernel: the library returns a
 * timerfd as the "device fd" (readable at the frame rate, never writable) and
 * answers the V4L2 ioctls itself, whether they arrive through ioctl() (C
 * clients: ffmpeg, v4l2-ctl) or syscall(SYS_ioctl, ...) (the Rust v4l crate).
 * Buffers live in a memfd handed out through mmap() (offset = index * page-
 * rounded sizeimage, as QUERYBUF says).  Everything else goes to the real libc.
 *
 * Build (only gcc + glibc; -pthread is accepted but not needed on glibc >= 2.34):
 *   cc -shared -fPIC -O2 -Wall -Wextra -o libfakecam.so tests/fakecam/fakecam.c -ldl -lm
 * Use (as root for mknod):
 *   mknod /dev/video40 c 81 40   # so that /dev listings (v4l/nokhwa) and v4l2-ctl find it;
 *                                # opening the path works even without the node
 *   LD_PRELOAD=/path/libfakecam.so FAKECAM_DEVICES=/dev/video40 camstream ...
 * Also emulated: /sys/dev/char/81:N/uevent and /sys/class/video4linux/videoN/
 * {uevent,name,index,dev} (v4l2-ctl needs uevent; nokhwa reads name), and
 * fstat() of a device fd reports the character device.
 *
 * Environment (read once, at the first intercepted open):
 *   FAKECAM_DEVICES   comma-separated paths to emulate        (default /dev/video40)
 *   FAKECAM_META      comma-separated paths emulated as UVC metadata nodes
 *                     (device_caps META_CAPTURE|STREAMING, no VIDEO_CAPTURE; video
 *                     ENUM_FMT/G_FMT return EINVAL; no streaming); added to the
 *                     device list if not in FAKECAM_DEVICES
 *   FAKECAM_FORMATS   FOURCC:WxH[@fps[:fps...]],...  FOURCC is MJPG or YUYV, width
 *                     even, 32..8192 (default MJPG:640x480,MJPG:1280x720,
 *                     YUYV:640x480,YUYV:1280x720); the first entry is the power-on format
 *   FAKECAM_FPS       rates for entries without @: "30" or "30:15" (default 30)
 *   FAKECAM_NAME      card name (default "camstream fake camera"); driver "fakecam",
 *                     bus_info "platform:fakecam-N" (N = trailing number of the path)
 *   FAKECAM_JPEG_QUALITY  1..100 (default 80)
 *   FAKECAM_DEBUG=1   trace ioctls and fault events to stderr
 *  Faults.  Each value is either a plain value for every device, or a list
 *  "PATH=value,PATH=value" (PATH may also be the basename, e.g. video40=5).
 *  All fault state is per process (each test process has its own):
 *   FAKECAM_UNPLUG_AFTER=N   right after the device delivered its N-th frame it
 *                     vanishes: every open fd of it turns dead (poll: POLLERR|POLLHUP
 *                     |POLLPRI, select: readable+exception; every ioctl and mmap:
 *                     ENODEV; close works), open/stat/statx/access of the path fail
 *                     with ENOENT and its name is hidden from readdir of /dev.
 *   FAKECAM_RETURN_AFTER=T   seconds (float) after the unplug it comes back: open
 *                     works again (power-on format), frames flow; old fds stay dead.
 *                     Unset: never comes back.
 *   FAKECAM_UNPLUG_REPEAT=1  unplug again every N frames after each return (default once)
 *   FAKECAM_EIO_AFTER=N      after N frames on an open fd, DQBUF and QBUF fail with EIO
 *                     and poll reports POLLERR, until that fd is closed.
 *   FAKECAM_STALL_AFTER=N    after N frames on an open fd no more frames and no error:
 *                     the fd never becomes readable, DQBUF blocks (blocking fd) or
 *                     returns EAGAIN (O_NONBLOCK).  Re-opening restarts the count...
 *   FAKECAM_STALL_PERSIST=1  ...unless this is set: then the count is per device and
 *                     the stall survives re-opening (until a replug).
 *   FAKECAM_SLOW=F, FAKECAM_DELAY_MS=D   real frame interval = nominal * F + D ms
 *                     (G_PARM/ENUM_FRAMEINTERVALS still report the nominal rate).
 *
 * Frames.  Colour bars with a vertical gradient, a moving orange block, the
 * frame number F in big digits at the top left, and two binary markers of F.
 * F = 1, 2, 3, ...: frames delivered by that device in this process (never reset,
 * not by re-open nor replug).  v4l2_buffer.sequence restarts at 0 on STREAMON;
 * timestamp is CLOCK_MONOTONIC.  Frames tick at the frame interval after
 * STREAMON; if the client is late, missed ticks are dropped (F has no gaps).
 *   - exact marker: lines 0..7, x = 0..31: pixel x is bit x of F (LSB first):
 *     luma 235 = 1, 16 = 0, Cb=Cr=128.  In YUYV: byte 2*i of a line is pixel i's Y.
 *   - robust marker: lines 16..31, 32 cells of w/32 pixels: cell i (x from
 *     i*(w/32) to (i+1)*(w/32)-1) is bit i; read the decoded centre, threshold 128.
 *   - MJPEG: a real baseline JFIF-style JPEG (full-range YCbCr 4:2:0, standard
 *     Huffman tables, DRI restart marker after each 16-line MCU row) of the
 *     negotiated size.  The first segment after SOI is a COM marker with the text
 *     "fakecam frame=F seq=S dev=PATH WxH".  bytesused = JPEG length; the rest of
 *     the buffer (sizeimage = w*h*2) is zero.  In the decoded picture the marker
 *     luma is about 0 / 255 (full range).
 *   - YUYV: packed Y0 U Y1 V, limited range, bytesperline w*2, sizeimage w*h*2.
 *
 * Ioctls: QUERYCAP, ENUM_FMT, ENUM_FRAMESIZES and ENUM_FRAMEINTERVALS (discrete),
 * G/S/TRY_FMT, G/S_PARM, REQBUFS (MMAP, 2..32 buffers), QUERYBUF, QBUF, DQBUF,
 * STREAMON, STREAMOFF, ENUMINPUT, G/S_INPUT, G/S_PRIORITY, QUERYCTRL and
 * QUERY_EXT_CTRL (incl. NEXT_CTRL), G/S_CTRL, G/S/TRY_EXT_CTRLS (two integer
 * controls, Brightness and Contrast, stored but without effect on the picture),
 * FIONBIO/FIOCLEX/FIONCLEX/FIOASYNC (passed to the fd); everything else ENOTTY.
 * Single-planar capture with MMAP buffers only; read() on a device fd is EINVAL.
 */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <linux/videodev2.h>

#define FC_MAXDEV 16
#define FC_MAXFMT 32
#define FC_MAXFPS 8
#define FC_MAXBUF 32
#define FC_MAXMAP 1024
#define FC_FASTFDS 65536
#define FC_EXPORT __attribute__((visibility("default")))
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* ------------------------------------------------------------------ */
/* real libc functions                                                 */
/* ------------------------------------------------------------------ */
static int (*r_open)(const char *, int, ...);
static int (*r_open64)(const char *, int, ...);
static int (*r_openat)(int, const char *, int, ...);
static int (*r_openat64)(int, const char *, int, ...);
static int (*r_open_2)(const char *, int);
static int (*r_open64_2)(const char *, int);
static int (*r_openat_2)(int, const char *, int);
static int (*r_openat64_2)(int, const char *, int);
static int (*r_close)(int);
static int (*r_dup)(int);
static int (*r_dup2)(int, int);
static int (*r_dup3)(int, int, int);
static int (*r_fcntl)(int, int, ...);
static int (*r_fcntl64)(int, int, ...);
static int (*r_ioctl)(int, unsigned long, ...);
static long (*r_syscall)(long, ...);
static void *(*r_mmap)(void *, size_t, int, int, int, off_t);
static void *(*r_mmap64)(void *, size_t, int, int, int, off64_t);
static int (*r_munmap)(void *, size_t);
static int (*r_poll)(struct pollfd *, nfds_t, int);
static int (*r_ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
static int (*r_poll_chk)(struct pollfd *, nfds_t, int, size_t);
static int (*r_ppoll_chk)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *, size_t);
static int (*r_select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
static int (*r_pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
static ssize_t (*r_read)(int, void *, size_t);
static ssize_t (*r_read_chk)(int, void *, size_t, size_t);
static int (*r_fstat)(int, struct stat *);
static int (*r_fstat64)(int, struct stat64 *);
static int (*r_stat)(const char *, struct stat *);
static int (*r_stat64)(const char *, struct stat64 *);
static int (*r_lstat)(const char *, struct stat *);
static int (*r_lstat64)(const char *, struct stat64 *);
static int (*r_fstatat)(int, const char *, struct stat *, int);
static int (*r_fstatat64)(int, const char *, struct stat64 *, int);
static int (*r_statx)(int, const char *, int, unsigned int, struct statx *);
static int (*r_access)(const char *, int);
static int (*r_faccessat)(int, const char *, int, int);
static struct dirent *(*r_readdir)(DIR *);
static struct dirent64 *(*r_readdir64)(DIR *);
static FILE *(*r_fopen)(const char *, const char *);
static int (*r_close_range)(unsigned int, unsigned int, int);
static void (*r_closefrom)(int);
static FILE *(*r_fopen64)(const char *, const char *);

/* glibc declares these path arguments nonnull, so GCC deletes our NULL checks; but callers do
 * pass NULL (Rust's std probes statx(0, NULL, 0, mask, NULL) for EFAULT). Hiding the pointer's
 * origin from the optimizer keeps the checks. */
#define LAUNDER(p) __asm__ volatile("" : "+r"(p))

#define RESOLVE(var, name)                                         \
    do {                                                           \
        if (!(var)) *(void **)(&(var)) = dlsym(RTLD_NEXT, (name)); \
    } while (0)

static volatile int g_resolved;

static void resolve_all(void)
{
    if (g_resolved) return;
    RESOLVE(r_open, "open");
    RESOLVE(r_open64, "open64");
    RESOLVE(r_openat, "openat");
    RESOLVE(r_openat64, "openat64");
    RESOLVE(r_open_2, "__open_2");
    RESOLVE(r_open64_2, "__open64_2");
    RESOLVE(r_openat_2, "__openat_2");
    RESOLVE(r_openat64_2, "__openat64_2");
    RESOLVE(r_close, "close");
    RESOLVE(r_dup, "dup");
    RESOLVE(r_dup2, "dup2");
    RESOLVE(r_dup3, "dup3");
    RESOLVE(r_fcntl, "fcntl");
    RESOLVE(r_fcntl64, "fcntl64");
    RESOLVE(r_ioctl, "ioctl");
    RESOLVE(r_syscall, "syscall");
    RESOLVE(r_mmap, "mmap");
    RESOLVE(r_mmap64, "mmap64");
    RESOLVE(r_munmap, "munmap");
    RESOLVE(r_poll, "poll");
    RESOLVE(r_ppoll, "ppoll");
    RESOLVE(r_poll_chk, "__poll_chk");
    RESOLVE(r_ppoll_chk, "__ppoll_chk");
    RESOLVE(r_select, "select");
    RESOLVE(r_pselect, "pselect");
    RESOLVE(r_read, "read");
    RESOLVE(r_read_chk, "__read_chk");
    RESOLVE(r_fstat, "fstat");
    RESOLVE(r_fstat64, "fstat64");
    RESOLVE(r_stat, "stat");
    RESOLVE(r_stat64, "stat64");
    RESOLVE(r_lstat, "lstat");
    RESOLVE(r_lstat64, "lstat64");
    RESOLVE(r_fstatat, "fstatat");
    RESOLVE(r_fstatat64, "fstatat64");
    RESOLVE(r_statx, "statx");
    RESOLVE(r_access, "access");
    RESOLVE(r_faccessat, "faccessat");
    RESOLVE(r_readdir, "readdir");
    RESOLVE(r_readdir64, "readdir64");
    RESOLVE(r_fopen, "fopen");
    RESOLVE(r_close_range, "close_range");
    RESOLVE(r_closefrom, "closefrom");
    RESOLVE(r_fopen64, "fopen64");
    g_resolved = 1;
}

/* ------------------------------------------------------------------ */
/* configuration and state                                             */
/* ------------------------------------------------------------------ */
typedef struct {
    uint32_t fourcc;
    unsigned w, h, nfps;
    unsigned fps[FC_MAXFPS];
} fc_fmt_t;

struct fc_scene;
struct fc_ofile;

typedef struct {
    char path[256], base[64], dir[256];
    int num, meta;
    /* faults */
    long unplug_after, eio_after, stall_after;
    double return_after; /* < 0: never */
    double slow, delay_ms;
    int unplug_repeat, stall_persist;
    /* state */
    int cur_fmt;
    unsigned cur_fps;
    int unplugged, unplug_done, stalled;
    uint64_t unplugged_at, plug_frames;
    uint32_t frame_no;
    struct fc_ofile *owner;
    int32_t ctrl[2];
    struct fc_scene *scene;
    int dir_known;
    dev_t dir_dev;
    ino_t dir_ino;
} fc_dev_t;

typedef struct fc_ofile {
    struct fc_ofile *next;
    fc_dev_t *dev;
    int refs, tfd; /* tfd: private dup of the timerfd */
    int prio;
    int dead, eio, stalled, streaming;
    uint64_t delivered;
    uint32_t sequence;
    /* buffers */
    unsigned nbufs;
    uint32_t fourcc;
    unsigned w, h;
    size_t sizeimage, stride;
    int memfd;
    uint8_t *map;
    struct {
        int queued, mapped;
        size_t last;
        uint32_t bytesused;
    } buf[FC_MAXBUF];
    int q[FC_MAXBUF];
    unsigned qhead, qcount;
} fc_ofile_t;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static fc_fmt_t g_fmt[FC_MAXFMT];
static int g_nfmt;
static fc_dev_t g_dev[FC_MAXDEV];
static int g_ndev, g_any_meta, g_debug, g_quality = 80;
static volatile int g_any_unplug;
static char g_name[64] = "camstream fake camera";
static fc_ofile_t *g_ofiles;
static unsigned char g_fast[FC_FASTFDS];
static struct {
    int fd;
    fc_ofile_t *of;
} g_map[FC_MAXMAP];
static int g_nmap;
static int g_nfake;

static void lock(void) { pthread_mutex_lock(&g_lock); }
static void unlock(void) { pthread_mutex_unlock(&g_lock); }
/* keep the lock consistent in a child forked while another thread held it */
static void atfork_prepare(void) { pthread_mutex_lock(&g_lock); }
static void atfork_release(void) { pthread_mutex_unlock(&g_lock); }

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fc_vlog(int force, const char *fmt, va_list ap)
{
    char buf[600];
    int n;
    if (!force && !g_debug) return;
    n = snprintf(buf, sizeof buf, "[fakecam %d] ", (int)getpid());
    if (n < 0) return;
    n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    if (write(2, buf, (size_t)n) < 0) { /* ignore */ }
}
static void dbg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void dbg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fc_vlog(0, fmt, ap);
    va_end(ap);
}
static void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fc_vlog(1, fmt, ap);
    va_end(ap);
}

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t') s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n')) *--e = 0;
    return s;
}

/* Value of a per-device env var: "V" for all devices or "PATH=V,PATH=V". */
static int dev_param(const char *name, const fc_dev_t *d, char *out, size_t n)
{
    const char *v = getenv(name);
    char buf[1024], *save = NULL, *tok;
    if (!v || !*v) return 0;
    if (!strchr(v, '=')) {
        snprintf(out, n, "%s", v);
        return 1;
    }
    snprintf(buf, sizeof buf, "%s", v);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *key;
        if (!eq) continue;
        *eq = 0;
        key = trim(tok);
        if (!strcmp(key, d->path) || !strcmp(key, d->base) || !strcmp(key, "*")) {
            snprintf(out, n, "%s", trim(eq + 1));
            return 1;
        }
    }
    return 0;
}

static double dev_num(const char *name, const fc_dev_t *d, double dflt)
{
    char v[128], *end;
    double x;
    if (!dev_param(name, d, v, sizeof v)) return dflt;
    x = strtod(v, &end);
    if (end == v) {
        warnx("ignoring %s=%s (not a number)", name, v);
        return dflt;
    }
    return x;
}

static uint32_t parse_fourcc(const char *s)
{
    if (!strcasecmp(s, "MJPG") || !strcasecmp(s, "MJPEG")) return V4L2_PIX_FMT_MJPEG;
    if (!strcasecmp(s, "YUYV") || !strcasecmp(s, "YUY2") || !strcasecmp(s, "YUYV422"))
        return V4L2_PIX_FMT_YUYV;
    return 0;
}

static unsigned parse_fps_list(const char *s, unsigned *fps)
{
    unsigned n = 0;
    while (*s && n < FC_MAXFPS) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s) break;
        if (v >= 1 && v <= 1000) fps[n++] = (unsigned)v;
        s = end;
        if (*s == ':' || *s == '/' || *s == ';') s++;
        else break;
    }
    return n;
}

static void parse_formats(const char *spec, const unsigned *dfps, unsigned ndfps)
{
    char buf[2048], *save = NULL, *tok;
    snprintf(buf, sizeof buf, "%s", spec);
    for (tok = strtok_r(buf, ",", &save); tok && g_nfmt < FC_MAXFMT; tok = strtok_r(NULL, ",", &save)) {
        char *t = trim(tok), *colon = strchr(t, ':'), *end, *end2;
        unsigned long w, h;
        fc_fmt_t f;
        int i, dup = 0;
        if (!*t) continue;
        memset(&f, 0, sizeof f);
        if (!colon) goto bad;
        *colon = 0;
        f.fourcc = parse_fourcc(trim(t));
        if (!f.fourcc) goto bad;
        w = strtoul(colon + 1, &end, 10);
        if (end == colon + 1 || (*end != 'x' && *end != 'X')) goto bad;
        h = strtoul(end + 1, &end2, 10);
        if (end2 == end + 1) goto bad;
        if (w < 32 || h < 32 || w > 8192 || h > 8192 || (w & 1)) goto bad;
        f.w = (unsigned)w;
        f.h = (unsigned)h;
        if (*end2 == '@') f.nfps = parse_fps_list(end2 + 1, f.fps);
        if (!f.nfps) {
            f.nfps = ndfps;
            memcpy(f.fps, dfps, sizeof(unsigned) * ndfps);
        }
        for (i = 0; i < g_nfmt; i++)
            if (g_fmt[i].fourcc == f.fourcc && g_fmt[i].w == f.w && g_fmt[i].h == f.h) dup = 1;
        if (!dup) g_fmt[g_nfmt++] = f;
        continue;
    bad:
        warnx("FAKECAM_FORMATS: ignoring bad entry (want MJPG|YUYV:WxH[@fps], even width, 32..8192)");
    }
}

static void add_device(const char *path, int meta)
{
    fc_dev_t *d;
    const char *p;
    int i;
    if (!*path) return;
    for (i = 0; i < g_ndev; i++)
        if (!strcmp(g_dev[i].path, path)) {
            if (meta) g_dev[i].meta = 1;
            return;
        }
    if (g_ndev >= FC_MAXDEV || strlen(path) >= sizeof g_dev[0].path) {
        warnx("too many or too long device paths, ignoring %s", path);
        return;
    }
    d = &g_dev[g_ndev];
    memset(d, 0, sizeof *d);
    snprintf(d->path, sizeof d->path, "%s", path);
    p = strrchr(path, '/');
    snprintf(d->base, sizeof d->base, "%s", p ? p + 1 : path);
    if (p && p > path) {
        size_t n = (size_t)(p - path);
        memcpy(d->dir, path, n);
        d->dir[n] = 0;
    } else {
        snprintf(d->dir, sizeof d->dir, "%s", p ? "/" : ".");
    }
    /* number = trailing digits of the path */
    p = path + strlen(path);
    while (p > path && p[-1] >= '0' && p[-1] <= '9') p--;
    d->num = *p ? atoi(p) : g_ndev;
    d->meta = meta;
    g_ndev++;
}

static void add_list(const char *v, int meta)
{
    char buf[2048], *save = NULL, *tok;
    snprintf(buf, sizeof buf, "%s", v);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) add_device(trim(tok), meta);
}

static void dev_reset_format(fc_dev_t *d)
{
    d->cur_fmt = 0;
    d->cur_fps = g_fmt[0].fps[0];
    d->ctrl[0] = 0;
    d->ctrl[1] = 32;
}

static void init_config(void)
{
    const char *v;
    unsigned dfps[FC_MAXFPS], ndfps;
    int i;
    resolve_all();
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
    v = getenv("FAKECAM_DEBUG");
    g_debug = v && *v && strcmp(v, "0");
    v = getenv("FAKECAM_NAME");
    if (v && *v) snprintf(g_name, sizeof g_name, "%s", v);
    v = getenv("FAKECAM_JPEG_QUALITY");
    if (v && atoi(v) >= 1 && atoi(v) <= 100) g_quality = atoi(v);
    v = getenv("FAKECAM_FPS");
    ndfps = v ? parse_fps_list(v, dfps) : 0;
    if (!ndfps) {
        dfps[0] = 30;
        ndfps = 1;
    }
    v = getenv("FAKECAM_FORMATS");
    if (v && *v) parse_formats(v, dfps, ndfps);
    if (!g_nfmt) parse_formats("MJPG:640x480,MJPG:1280x720,YUYV:640x480,YUYV:1280x720", dfps, ndfps);
    v = getenv("FAKECAM_DEVICES");
    add_list(v && *v ? v : "/dev/video40", 0);
    v = getenv("FAKECAM_META");
    if (v && *v) add_list(v, 1);
    for (i = 0; i < g_ndev; i++) {
        fc_dev_t *d = &g_dev[i];
        if (d->meta) g_any_meta = 1;
        d->unplug_after = (long)dev_num("FAKECAM_UNPLUG_AFTER", d, 0);
        d->return_after = dev_num("FAKECAM_RETURN_AFTER", d, -1);
        d->unplug_repeat = dev_num("FAKECAM_UNPLUG_REPEAT", d, 0) != 0;
        d->eio_after = (long)dev_num("FAKECAM_EIO_AFTER", d, 0);
        d->stall_after = (long)dev_num("FAKECAM_STALL_AFTER", d, 0);
        d->stall_persist = dev_num("FAKECAM_STALL_PERSIST", d, 0) != 0;
        d->slow = dev_num("FAKECAM_SLOW", d, 1);
        if (!(d->slow > 0)) d->slow = 1;
        d->delay_ms = dev_num("FAKECAM_DELAY_MS", d, 0);
        if (d->delay_ms < 0) d->delay_ms = 0;
        dev_reset_format(d);
        dbg("device %s%s: unplug_after=%ld return_after=%g eio_after=%ld stall_after=%ld slow=%g delay_ms=%g",
            d->path, d->meta ? " (metadata)" : "", d->unplug_after, d->return_after, d->eio_after,
            d->stall_after, d->slow, d->delay_ms);
    }
}

static void cfg(void)
{
    pthread_once(&g_once, init_config);
}

__attribute__((constructor)) static void fc_ctor(void)
{
    resolve_all();
}

/* ------------------------------------------------------------------ */
/* fd table                                                            */
/* ------------------------------------------------------------------ */
static int fd_maybe_fake(int fd)
{
    if (fd < 0) return 0;
    if (fd < FC_FASTFDS) return __atomic_load_n(&g_fast[fd], __ATOMIC_ACQUIRE);
    return __atomic_load_n(&g_nfake, __ATOMIC_ACQUIRE) > 0;
}

static fc_ofile_t *lookup_locked(int fd)
{
    int i;
    if (fd < 0) return NULL;
    for (i = 0; i < g_nmap; i++)
        if (g_map[i].fd == fd) return g_map[i].of;
    return NULL;
}

static int map_add_locked(int fd, fc_ofile_t *of)
{
    if (g_nmap >= FC_MAXMAP) return -1;
    g_map[g_nmap].fd = fd;
    g_map[g_nmap].of = of;
    g_nmap++;
    of->refs++;
    if (fd < FC_FASTFDS) __atomic_store_n(&g_fast[fd], 1, __ATOMIC_RELEASE);
    __atomic_store_n(&g_nfake, g_nmap, __ATOMIC_RELEASE);
    return 0;
}

static void release_buffers_locked(fc_ofile_t *of)
{
    if (of->map) r_munmap(of->map, of->stride * of->nbufs);
    if (of->memfd >= 0) r_close(of->memfd);
    of->map = NULL;
    of->memfd = -1;
    of->nbufs = 0;
    of->qcount = of->qhead = 0;
    memset(of->buf, 0, sizeof of->buf);
}

static void free_ofile_locked(fc_ofile_t *of)
{
    fc_ofile_t **pp;
    release_buffers_locked(of);
    if (of->dev->owner == of) of->dev->owner = NULL;
    if (of->tfd >= 0) r_close(of->tfd);
    for (pp = &g_ofiles; *pp; pp = &(*pp)->next)
        if (*pp == of) {
            *pp = of->next;
            break;
        }
    free(of);
}

static void map_del_locked(int fd)
{
    int i;
    for (i = 0; i < g_nmap; i++)
        if (g_map[i].fd == fd) {
            fc_ofile_t *of = g_map[i].of;
            g_map[i] = g_map[--g_nmap];
            if (fd < FC_FASTFDS) __atomic_store_n(&g_fast[fd], 0, __ATOMIC_RELEASE);
            __atomic_store_n(&g_nfake, g_nmap, __ATOMIC_RELEASE);
            if (--of->refs == 0) free_ofile_locked(of);
            return;
        }
}

static void track_dup(int oldfd, int newfd)
{
    fc_ofile_t *of;
    if (newfd < 0 || newfd == oldfd) return;
    lock();
    map_del_locked(newfd);
    of = lookup_locked(oldfd);
    if (of) map_add_locked(newfd, of);
    unlock();
}

static void forget_fd(int fd)
{
    if (!fd_maybe_fake(fd)) return;
    lock();
    map_del_locked(fd);
    unlock();
}

/* ------------------------------------------------------------------ */
/* device state helpers                                                */
/* ------------------------------------------------------------------ */
static fc_dev_t *match_path(const char *path)
{
    int i;
    char rp[PATH_MAX];
    if (!path) return NULL;
    for (i = 0; i < g_ndev; i++)
        if (!strcmp(path, g_dev[i].path)) return &g_dev[i];
    /* symlinks such as /dev/v4l/by-id/... or /dev/char/81:40 */
    if (strncmp(path, "/dev/", 5) || !realpath(path, rp)) return NULL;
    for (i = 0; i < g_ndev; i++)
        if (!strcmp(rp, g_dev[i].path)) return &g_dev[i];
    return NULL;
}

/* Is the device currently unplugged?  Also handles its return. */
static int dev_gone_locked(fc_dev_t *d)
{
    if (!d->unplugged) return 0;
    if (d->return_after >= 0 && now_ns() - d->unplugged_at >= (uint64_t)(d->return_after * 1e9)) {
        d->unplugged = 0;
        d->plug_frames = 0;
        d->stalled = 0;
        dev_reset_format(d);
        dbg("%s: device returned", d->path);
        return 0;
    }
    return 1;
}

static void timer_set(fc_ofile_t *of, uint64_t first_ns, uint64_t interval_ns)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = (time_t)(first_ns / 1000000000ull);
    its.it_value.tv_nsec = (long)(first_ns % 1000000000ull);
    its.it_interval.tv_sec = (time_t)(interval_ns / 1000000000ull);
    its.it_interval.tv_nsec = (long)(interval_ns % 1000000000ull);
    timerfd_settime(of->tfd, 0, &its, NULL);
}

static void timer_drain(fc_ofile_t *of)
{
    struct pollfd p = {of->tfd, POLLIN, 0};
    uint64_t v;
    if (r_poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
        if (r_read(of->tfd, &v, sizeof v) < 0) { /* ignore */ }
    }
}

static void timer_stop(fc_ofile_t *of)
{
    timer_set(of, 0, 0);
    timer_drain(of);
}

/* make the fd permanently readable so that epoll/unhooked pollers wake up */
static void timer_fire_now(fc_ofile_t *of)
{
    timer_set(of, 1, 0);
}

static uint64_t frame_interval_ns(const fc_dev_t *d)
{
    double ns = 1e9 / (d->cur_fps ? d->cur_fps : 30) * d->slow + d->delay_ms * 1e6;
    if (ns < 1e6) ns = 1e6;
    return (uint64_t)ns;
}

static void dev_unplug_locked(fc_dev_t *d)
{
    fc_ofile_t *of;
    d->unplugged = 1;
    d->unplugged_at = now_ns();
    if (!d->unplug_repeat) d->unplug_done = 1;
    d->owner = NULL;
    g_any_unplug = 1;
    for (of = g_ofiles; of; of = of->next)
        if (of->dev == d && !of->dead) {
            of->dead = 1;
            of->streaming = 0;
            timer_fire_now(of);
        }
    dbg("%s: device unplugged after %llu frames", d->path, (unsigned long long)d->plug_frames);
}

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

/* ------------------------------------------------------------------ */
/* scene: what the camera "sees"                                       */
/* ------------------------------------------------------------------ */
typedef struct fc_scene {
    unsigned w, h, mcux, mcuy;
    uint8_t *bgY, *bgU, *bgV, *Y, *U, *V; /* full resolution planes */
    uint8_t *dyn;                          /* per 16-line band: changes every frame */
    unsigned cw, ds, dx, dy, box_y0, box_y1, bs, by, step;
    uint8_t *yuyv_bg;
    int jpeg_ready;
    uint8_t hdr[1024];
    size_t hdr_len;
    uint8_t **jrow;
    size_t *jrow_len;
    uint8_t *scratch;
} fc_scene_t;

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

static void scene_draw(fc_scene_t *s, uint32_t fno)
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

static int scene_jpeg_prepare(fc_scene_t *s)
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

static size_t out_jpeg(fc_scene_t *s, uint8_t *dst, size_t cap, const char *com)
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

static void out_yuyv(fc_scene_t *s, uint8_t *dst)
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

static fc_scene_t *dev_scene(fc_dev_t *d, unsigned w, unsigned h)
{
    if (d->scene && d->scene->w == w && d->scene->h == h) return d->scene;
    scene_free(d->scene);
    d->scene = scene_new(w, h);
    return d->scene;
}

/* ------------------------------------------------------------------ */
/* V4L2 emulation                                                      */
/* ------------------------------------------------------------------ */
static const struct {
    uint32_t id;
    const char *name;
    int32_t min, max, step, def;
} g_ctrls[2] = {{V4L2_CID_BRIGHTNESS, "Brightness", -64, 64, 1, 0}, {V4L2_CID_CONTRAST, "Contrast", 0, 64, 1, 32}};

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
    for (i = 0; i < 2; i++)
        if (g_ctrls[i].id == id) return i;
    return -1;
}

static int ctrl_query_index(uint32_t id)
{
    int i;
    if (id & V4L2_CTRL_FLAG_NEXT_CTRL) {
        id &= ~(V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND);
        for (i = 0; i < 2; i++)
            if (g_ctrls[i].id > id) return i;
        return -1;
    }
    if (id & V4L2_CTRL_FLAG_NEXT_COMPOUND) return -1;
    return ctrl_index(id);
}

static int32_t ctrl_clamp(int i, int32_t v)
{
    return v < g_ctrls[i].min ? g_ctrls[i].min : v > g_ctrls[i].max ? g_ctrls[i].max : v;
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
        q->type = V4L2_CTRL_TYPE_INTEGER;
        snprintf((char *)q->name, sizeof q->name, "%s", g_ctrls[i].name);
        q->minimum = g_ctrls[i].min;
        q->maximum = g_ctrls[i].max;
        q->step = g_ctrls[i].step;
        q->default_value = g_ctrls[i].def;
        return 0;
    }
    case VIDIOC_QUERY_EXT_CTRL: {
        struct v4l2_query_ext_ctrl *q = arg;
        if (d->meta) return -ENOTTY;
        i = ctrl_query_index(q->id);
        if (i < 0) return -EINVAL;
        memset(q, 0, sizeof *q);
        q->id = g_ctrls[i].id;
        q->type = V4L2_CTRL_TYPE_INTEGER;
        snprintf(q->name, sizeof q->name, "%s", g_ctrls[i].name);
        q->minimum = g_ctrls[i].min;
        q->maximum = g_ctrls[i].max;
        q->step = (uint64_t)g_ctrls[i].step;
        q->default_value = g_ctrls[i].def;
        q->elem_size = 4;
        q->elems = 1;
        return 0;
    }
    case VIDIOC_G_CTRL:
    case VIDIOC_S_CTRL: {
        struct v4l2_control *c = arg;
        if (d->meta) return -ENOTTY;
        i = ctrl_index(c->id);
        if (i < 0) return -EINVAL;
        if (req == VIDIOC_S_CTRL) d->ctrl[i] = ctrl_clamp(i, c->value);
        c->value = d->ctrl[i];
        return 0;
    }
    case VIDIOC_G_EXT_CTRLS:
    case VIDIOC_S_EXT_CTRLS:
    case VIDIOC_TRY_EXT_CTRLS: {
        struct v4l2_ext_controls *e = arg;
        uint32_t k;
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
        for (k = 0; k < e->count; k++) {
            struct v4l2_ext_control *c = &e->controls[k];
            i = ctrl_index(c->id);
            if (req == VIDIOC_G_EXT_CTRLS)
                c->value = e->which == V4L2_CTRL_WHICH_DEF_VAL ? g_ctrls[i].def : d->ctrl[i];
            else if (req == VIDIOC_S_EXT_CTRLS)
                d->ctrl[i] = c->value = ctrl_clamp(i, c->value);
            else
                c->value = ctrl_clamp(i, c->value);
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

static int fake_ioctl(int fd, unsigned long req, void *arg, int *handled)
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

/* ------------------------------------------------------------------ */
/* intercepted functions                                               */
/* ------------------------------------------------------------------ */
/* major/minor of a device node: from the real node if it exists, else 81:N */
static void dev_numbers(const fc_dev_t *d, unsigned *maj, unsigned *min)
{
    struct stat st;
    if (r_stat(d->path, &st) == 0 && S_ISCHR(st.st_mode)) {
        *maj = major(st.st_rdev);
        *min = minor(st.st_rdev);
    } else {
        *maj = 81;
        *min = (unsigned)d->num;
    }
}

/* Minimal sysfs for the fake nodes (v4l2-ctl reads .../uevent to detect the
 * device type, nokhwa reads /sys/class/video4linux/videoN/name). */
static int fake_sysfs_open(const char *path, int flags, int *handled)
{
    int i, fd;
    char content[160], p[320];
    *handled = 0;
    if (strncmp(path, "/sys/", 5)) return -1;
    for (i = 0; i < g_ndev; i++) {
        fc_dev_t *d = &g_dev[i];
        unsigned maj, min;
        size_t n;
        content[0] = 0;
        dev_numbers(d, &maj, &min);
        snprintf(p, sizeof p, "/sys/dev/char/%u:%u/uevent", maj, min);
        if (!strcmp(path, p)) goto uevent;
        snprintf(p, sizeof p, "/sys/class/video4linux/%s/uevent", d->base);
        if (!strcmp(path, p)) goto uevent;
        snprintf(p, sizeof p, "/sys/class/video4linux/%s/name", d->base);
        if (!strcmp(path, p)) snprintf(content, sizeof content, "%.31s\n", g_name);
        snprintf(p, sizeof p, "/sys/class/video4linux/%s/index", d->base);
        if (!strcmp(path, p)) snprintf(content, sizeof content, "%d\n", d->meta ? 1 : 0);
        snprintf(p, sizeof p, "/sys/class/video4linux/%s/dev", d->base);
        if (!strcmp(path, p)) snprintf(content, sizeof content, "%u:%u\n", maj, min);
        if (!content[0]) continue;
        goto found;
    uevent:
        snprintf(content, sizeof content, "MAJOR=%u\nMINOR=%u\nDEVNAME=%.60s\n", maj, min,
                 strncmp(d->path, "/dev/", 5) ? d->base : d->path + 5);
    found:
        *handled = 1;
        lock();
        if (dev_gone_locked(d)) {
            unlock();
            errno = ENOENT;
            return -1;
        }
        unlock();
        if ((flags & O_ACCMODE) != O_RDONLY) {
            errno = EACCES;
            return -1;
        }
        fd = memfd_create("fakecam-sysfs", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
        if (fd < 0) return -1;
        n = strlen(content);
        if (write(fd, content, n) != (ssize_t)n || lseek(fd, 0, SEEK_SET) != 0) {
            r_close(fd);
            errno = EIO;
            return -1;
        }
        return fd;
    }
    return -1;
}

static int fake_open(const char *path, int flags, int *handled)
{
    fc_dev_t *d;
    fc_ofile_t *of;
    int tfd, priv;
    cfg();
    *handled = 0;
    if (!path) return -1;
    if (path[0] == '/' && path[1] == 's') return fake_sysfs_open(path, flags, handled);
    d = match_path(path);
    if (!d) return -1;
    *handled = 1;
    lock();
    if (dev_gone_locked(d)) {
        unlock();
        dbg("open %s -> ENOENT (unplugged)", path);
        errno = ENOENT;
        return -1;
    }
    tfd = timerfd_create(CLOCK_MONOTONIC, ((flags & O_CLOEXEC) ? TFD_CLOEXEC : 0) |
                                              ((flags & O_NONBLOCK) ? TFD_NONBLOCK : 0));
    if (tfd < 0) {
        int e = errno;
        unlock();
        errno = e;
        return -1;
    }
    priv = r_fcntl(tfd, F_DUPFD_CLOEXEC, 0);
    of = calloc(1, sizeof *of);
    if (priv < 0 || !of) {
        if (priv >= 0) r_close(priv);
        r_close(tfd);
        free(of);
        unlock();
        errno = ENOMEM;
        return -1;
    }
    of->dev = d;
    of->prio = V4L2_PRIORITY_DEFAULT;
    of->tfd = priv;
    of->memfd = -1;
    if (map_add_locked(tfd, of) < 0) {
        free_ofile_locked(of);
        r_close(tfd);
        unlock();
        errno = EMFILE;
        return -1;
    }
    of->next = g_ofiles;
    g_ofiles = of;
    unlock();
    dbg("open %s -> fd %d", path, tfd);
    return tfd;
}

#define OPEN_BODY(realcall)                        \
    int handled, fd;                               \
    mode_t mode = 0;                               \
    if (flags & (O_CREAT | O_TMPFILE)) {           \
        va_list ap;                                \
        va_start(ap, flags);                       \
        mode = (mode_t)va_arg(ap, int);            \
        va_end(ap);                                \
    }                                              \
    fd = fake_open(path, flags, &handled);         \
    if (handled) return fd;                        \
    return realcall;

FC_EXPORT int open(const char *path, int flags, ...)
{
    LAUNDER(path);
    OPEN_BODY(r_open(path, flags, mode))
}
FC_EXPORT int open64(const char *path, int flags, ...)
{
    LAUNDER(path);
    OPEN_BODY((r_open64 ? r_open64 : r_open)(path, flags, mode))
}
FC_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    LAUNDER(path);
    OPEN_BODY(r_openat(dirfd, path, flags, mode))
}
FC_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    LAUNDER(path);
    OPEN_BODY((r_openat64 ? r_openat64 : r_openat)(dirfd, path, flags, mode))
}
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
FC_EXPORT int __open_2(const char *path, int flags)
{
    LAUNDER(path);
    int handled, fd = fake_open(path, flags, &handled);
    if (handled) return fd;
    return r_open_2 ? r_open_2(path, flags) : r_open(path, flags);
}
FC_EXPORT int __open64_2(const char *path, int flags)
{
    LAUNDER(path);
    int handled, fd = fake_open(path, flags, &handled);
    if (handled) return fd;
    return r_open64_2 ? r_open64_2(path, flags) : r_open(path, flags);
}
FC_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
    LAUNDER(path);
    int handled, fd = fake_open(path, flags, &handled);
    if (handled) return fd;
    return r_openat_2 ? r_openat_2(dirfd, path, flags) : r_openat(dirfd, path, flags);
}
FC_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
    LAUNDER(path);
    int handled, fd = fake_open(path, flags, &handled);
    if (handled) return fd;
    return r_openat64_2 ? r_openat64_2(dirfd, path, flags) : r_openat(dirfd, path, flags);
}

/* fopen (used e.g. by std::ifstream) only matters for the fake sysfs files */
static FILE *fopen_common(FILE *(*real)(const char *, const char *), const char *path, const char *mode)
{
    int handled, fd;
    cfg();
    if (path && mode && !strncmp(path, "/sys/", 5)) {
        fd = fake_sysfs_open(path, (mode[0] == 'r' && !strchr(mode, '+') ? O_RDONLY : O_RDWR) |
                                       (strchr(mode, 'e') ? O_CLOEXEC : 0),
                             &handled);
        if (handled) {
            FILE *f;
            if (fd < 0) return NULL;
            f = fdopen(fd, "r");
            if (!f) r_close(fd);
            return f;
        }
    }
    return real(path, mode);
}

FC_EXPORT FILE *fopen(const char *path, const char *mode)
{
    LAUNDER(path);
    resolve_all();
    return fopen_common(r_fopen, path, mode);
}

FC_EXPORT FILE *fopen64(const char *path, const char *mode)
{
    LAUNDER(path);
    resolve_all();
    return fopen_common(r_fopen64 ? r_fopen64 : r_fopen, path, mode);
}

FC_EXPORT int close(int fd)
{
    resolve_all();
    forget_fd(fd);
    return r_close(fd);
}

static void forget_range(unsigned first, unsigned last)
{
    int i;
    if (!__atomic_load_n(&g_nfake, __ATOMIC_ACQUIRE)) return;
    lock();
    for (i = g_nmap - 1; i >= 0; i--)
        if ((unsigned)g_map[i].fd >= first && (unsigned)g_map[i].fd <= last) map_del_locked(g_map[i].fd);
    unlock();
}

int close_range(unsigned int first, unsigned int last, int flags);
FC_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
    resolve_all();
    if (!r_close_range) {
        errno = ENOSYS;
        return -1;
    }
    if (!(flags & CLOSE_RANGE_CLOEXEC)) forget_range(first, last);
    return r_close_range(first, last, flags);
}

void closefrom(int lowfd);
FC_EXPORT void closefrom(int lowfd)
{
    resolve_all();
    forget_range(lowfd < 0 ? 0 : (unsigned)lowfd, ~0u);
    if (r_closefrom) r_closefrom(lowfd);
}

FC_EXPORT int dup(int fd)
{
    int r;
    resolve_all();
    r = r_dup(fd);
    if (r >= 0 && fd_maybe_fake(fd)) track_dup(fd, r);
    return r;
}

FC_EXPORT int dup2(int fd, int fd2)
{
    int r;
    resolve_all();
    r = r_dup2(fd, fd2);
    if (r >= 0 && fd != fd2 && (fd_maybe_fake(fd) || fd_maybe_fake(fd2))) track_dup(fd, fd2);
    return r;
}

FC_EXPORT int dup3(int fd, int fd2, int flags)
{
    int r;
    resolve_all();
    r = r_dup3(fd, fd2, flags);
    if (r >= 0 && (fd_maybe_fake(fd) || fd_maybe_fake(fd2))) track_dup(fd, fd2);
    return r;
}

static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, long arg)
{
    int r = real(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && fd_maybe_fake(fd)) track_dup(fd, r);
    return r;
}

FC_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    long arg;
    va_start(ap, cmd);
    arg = va_arg(ap, long);
    va_end(ap);
    resolve_all();
    return fcntl_common(r_fcntl, fd, cmd, arg);
}

FC_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    long arg;
    va_start(ap, cmd);
    arg = va_arg(ap, long);
    va_end(ap);
    resolve_all();
    return fcntl_common(r_fcntl64 ? r_fcntl64 : r_fcntl, fd, cmd, arg);
}

FC_EXPORT int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    void *arg;
    va_start(ap, req);
    arg = va_arg(ap, void *);
    va_end(ap);
    resolve_all();
    if (fd_maybe_fake(fd)) {
        int handled, r = fake_ioctl(fd, req, arg, &handled);
        if (handled) return r;
    }
    return r_ioctl(fd, req, arg);
}

static void *fake_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off, int *handled)
{
    fc_ofile_t *of;
    void *p;
    unsigned i;
    *handled = 0;
    lock();
    of = lookup_locked(fd);
    if (!of) {
        unlock();
        return NULL;
    }
    *handled = 1;
    if (of->dead) {
        unlock();
        errno = ENODEV;
        return MAP_FAILED;
    }
    for (i = 0; i < of->nbufs; i++)
        if ((size_t)off == i * of->stride) break;
    if (i >= of->nbufs || len == 0 || len > of->stride || !(flags & MAP_SHARED) || off < 0) {
        unlock();
        errno = EINVAL;
        return MAP_FAILED;
    }
    p = r_mmap(addr, len, prot, flags, of->memfd, off);
    if (p != MAP_FAILED) of->buf[i].mapped = 1;
    unlock();
    return p;
}

FC_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    resolve_all();
    if (fd_maybe_fake(fd) && !(flags & MAP_ANONYMOUS)) {
        int handled;
        void *p = fake_mmap(addr, len, prot, flags, fd, off, &handled);
        if (handled) return p;
    }
    return r_mmap(addr, len, prot, flags, fd, off);
}

FC_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
    resolve_all();
    if (fd_maybe_fake(fd) && !(flags & MAP_ANONYMOUS)) {
        int handled;
        void *p = fake_mmap(addr, len, prot, flags, fd, (off_t)off, &handled);
        if (handled) return p;
    }
    return (r_mmap64 ? r_mmap64 : (void *(*)(void *, size_t, int, int, int, off64_t))r_mmap)(addr, len, prot, flags,
                                                                                              fd, off);
}

FC_EXPORT long syscall(long no, ...)
{
    va_list ap;
    long a[6];
    int i;
    va_start(ap, no);
    for (i = 0; i < 6; i++) a[i] = va_arg(ap, long);
    va_end(ap);
    resolve_all();
    if (no == SYS_ioctl && fd_maybe_fake((int)a[0])) {
        int handled, r = fake_ioctl((int)a[0], (unsigned long)a[1], (void *)a[2], &handled);
        if (handled) return r;
    } else if (no == SYS_close) {
        forget_fd((int)a[0]);
#ifdef SYS_mmap
    } else if (no == SYS_mmap && fd_maybe_fake((int)a[4]) && !(a[3] & MAP_ANONYMOUS)) {
        int handled;
        void *p = fake_mmap((void *)a[0], (size_t)a[1], (int)a[2], (int)a[3], (int)a[4], (off_t)a[5], &handled);
        if (handled) return (long)p;
#endif
    } else if (no == SYS_read && fd_maybe_fake((int)a[0])) {
        errno = EINVAL;
        return -1;
    }
    return r_syscall(no, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* 0: normal / not fake, 1: unplugged (dead), 2: EIO */
static int fd_status(int fd)
{
    fc_ofile_t *of;
    int st = 0;
    if (!fd_maybe_fake(fd)) return 0;
    lock();
    of = lookup_locked(fd);
    if (of) st = of->dead ? 1 : of->eio ? 2 : 0;
    unlock();
    return st;
}

static int poll_common(struct pollfd *fds, nfds_t n, int timeout_ms, const struct timespec *tmo,
                       const sigset_t *sigmask, int use_ppoll)
{
    nfds_t i, nsp = 0;
    unsigned char stbuf[256], *st = stbuf;
    int r, extra = 0;
    static const struct timespec zero = {0, 0};
    if (__atomic_load_n(&g_nfake, __ATOMIC_ACQUIRE) > 0 && fds) {
        for (i = 0; i < n; i++)
            if (fd_maybe_fake(fds[i].fd) && fd_status(fds[i].fd)) nsp++;
    }
    if (!nsp) return use_ppoll ? r_ppoll(fds, n, tmo, sigmask) : r_poll(fds, n, timeout_ms);
    if (n > sizeof stbuf && !(st = malloc(n))) return use_ppoll ? r_ppoll(fds, n, tmo, sigmask) : r_poll(fds, n, timeout_ms);
    /* dead fds: report errors at once, poll the others without waiting */
    for (i = 0; i < n; i++) {
        st[i] = (unsigned char)(fds[i].fd >= 0 ? fd_status(fds[i].fd) : 0);
        if (st[i]) fds[i].fd = -fds[i].fd - 2;
    }
    r = use_ppoll ? r_ppoll(fds, n, &zero, sigmask) : r_poll(fds, n, 0);
    for (i = 0; i < n; i++) {
        if (!st[i]) continue;
        fds[i].fd = -fds[i].fd - 2;
        fds[i].revents = st[i] == 1 ? (short)(POLLERR | POLLHUP | (fds[i].events & POLLPRI)) : (short)POLLERR;
        extra++;
    }
    if (st != stbuf) free(st);
    return r < 0 ? r : r + extra;
}

FC_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    resolve_all();
    return poll_common(fds, n, timeout, NULL, NULL, 0);
}

FC_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *sigmask)
{
    resolve_all();
    return poll_common(fds, n, 0, tmo, sigmask, 1);
}

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *sigmask, size_t fdslen);
FC_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    resolve_all();
    if (fdslen / sizeof *fds < n) abort();
    return poll_common(fds, n, timeout, NULL, NULL, 0);
}
FC_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *sigmask,
                          size_t fdslen)
{
    resolve_all();
    if (fdslen / sizeof *fds < n) abort();
    return poll_common(fds, n, 0, tmo, sigmask, 1);
}

static int select_common(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv,
                         const struct timespec *ts, const sigset_t *sigmask, int use_pselect)
{
    int fd, lim = nfds < FD_SETSIZE ? nfds : FD_SETSIZE, nsp = 0, r, i;
    int spfd[64], spst[64], inr[64], ine[64];
    struct timeval ztv = {0, 0};
    struct timespec zts = {0, 0};
    if (__atomic_load_n(&g_nfake, __ATOMIC_ACQUIRE) > 0) {
        for (fd = 0; fd < lim && nsp < 64; fd++) {
            int st;
            if (!fd_maybe_fake(fd)) continue;
            if (!((rd && FD_ISSET(fd, rd)) || (ex && FD_ISSET(fd, ex)) || (wr && FD_ISSET(fd, wr)))) continue;
            st = fd_status(fd);
            if (!st) continue;
            spfd[nsp] = fd;
            spst[nsp] = st;
            inr[nsp] = rd && FD_ISSET(fd, rd);
            ine[nsp] = ex && FD_ISSET(fd, ex);
            if (rd) FD_CLR(fd, rd);
            if (wr) FD_CLR(fd, wr);
            if (ex) FD_CLR(fd, ex);
            nsp++;
        }
    }
    if (!nsp) return use_pselect ? r_pselect(nfds, rd, wr, ex, ts, sigmask) : r_select(nfds, rd, wr, ex, tv);
    r = use_pselect ? r_pselect(nfds, rd, wr, ex, &zts, sigmask) : r_select(nfds, rd, wr, ex, &ztv);
    if (r < 0) return r;
    for (i = 0; i < nsp; i++) {
        if (inr[i]) {
            FD_SET(spfd[i], rd);
            r++;
        }
        if (ine[i] && spst[i] == 1) {
            FD_SET(spfd[i], ex);
            r++;
        }
    }
    return r;
}

FC_EXPORT int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
    resolve_all();
    return select_common(nfds, rd, wr, ex, tv, NULL, NULL, 0);
}

FC_EXPORT int pselect(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, const struct timespec *ts, const sigset_t *sigmask)
{
    resolve_all();
    return select_common(nfds, rd, wr, ex, NULL, ts, sigmask, 1);
}

FC_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    resolve_all();
    if (fd_maybe_fake(fd)) {
        int st;
        lock();
        st = lookup_locked(fd) ? 1 : 0;
        unlock();
        if (st) {
            errno = fd_status(fd) == 1 ? ENODEV : EINVAL; /* no V4L2_CAP_READWRITE */
            return -1;
        }
    }
    return r_read(fd, buf, n);
}

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
FC_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    resolve_all();
    if (n > buflen) abort();
    return read(fd, buf, n);
}

/* --- stat family: fake fds look like the character device; unplugged paths vanish --- */
static int empty_path(const char *p)
{
    return p && !*p;
}

static fc_dev_t *fake_fd_dev(int fd)
{
    fc_ofile_t *of;
    fc_dev_t *d = NULL;
    if (!fd_maybe_fake(fd)) return NULL;
    lock();
    of = lookup_locked(fd);
    if (of) d = of->dev;
    unlock();
    return d;
}

static int path_hidden(const char *path)
{
    int i, gone = 0;
    if (!g_any_unplug || !path) return 0;
    lock();
    for (i = 0; i < g_ndev; i++)
        if (!strcmp(path, g_dev[i].path) && dev_gone_locked(&g_dev[i])) gone = 1;
    unlock();
    return gone;
}

#define SYNTH_STAT(st, d)                                            \
    do {                                                             \
        memset((st), 0, sizeof *(st));                               \
        (st)->st_mode = S_IFCHR | 0660;                              \
        (st)->st_rdev = makedev(81, (unsigned)((d)->num & 0xFFFFF)); \
        (st)->st_dev = makedev(0, 5);                                \
        (st)->st_ino = 100000 + (unsigned)(d)->num;                  \
        (st)->st_nlink = 1;                                          \
        (st)->st_gid = 44;                                           \
        (st)->st_blksize = 4096;                                     \
    } while (0)

FC_EXPORT int fstat(int fd, struct stat *st)
{
    fc_dev_t *d;
    resolve_all();
    d = fake_fd_dev(fd);
    if (d) {
        if (r_stat(d->path, st) == 0 && S_ISCHR(st->st_mode)) return 0;
        SYNTH_STAT(st, d);
        return 0;
    }
    return r_fstat(fd, st);
}

FC_EXPORT int fstat64(int fd, struct stat64 *st)
{
    fc_dev_t *d;
    resolve_all();
    d = fake_fd_dev(fd);
    if (d) {
        if (r_stat64(d->path, st) == 0 && S_ISCHR(st->st_mode)) return 0;
        SYNTH_STAT(st, d);
        return 0;
    }
    return r_fstat64(fd, st);
}

FC_EXPORT int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
    LAUNDER(path);
    resolve_all();
    if (empty_path(path) && (flags & AT_EMPTY_PATH) && fake_fd_dev(dirfd)) return fstat(dirfd, st);
    if (path_hidden(path)) {
        errno = ENOENT;
        return -1;
    }
    return r_fstatat(dirfd, path, st, flags);
}

FC_EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
    LAUNDER(path);
    resolve_all();
    if (empty_path(path) && (flags & AT_EMPTY_PATH) && fake_fd_dev(dirfd)) return fstat64(dirfd, st);
    if (path_hidden(path)) {
        errno = ENOENT;
        return -1;
    }
    return r_fstatat64(dirfd, path, st, flags);
}

FC_EXPORT int stat(const char *path, struct stat *st)
{
    LAUNDER(path);
    resolve_all();
    if (path_hidden(path)) {
        errno = ENOENT;
        return -1;
    }
    return r_stat(path, st);
}

FC_EXPORT int stat64(const char *path, struct stat64 *st)
{
    LAUNDER(path);
    resolve_all();
    if (path_hidden(path)) {
        errno = ENOENT;
        return -1;
    }
    return r_stat64(path, st);
}

FC_EXPORT int lstat(const char *path, struct stat *st)
{
    LAUNDER(path);
    resolve_all();
    if (path_hidden(path)) {
        errno = ENOENT;
        return -1;
    }
    return r_lstat(path, st);
}

FC_EXPORT int lstat64(const char *path, struct stat64 *st)
{
    LAUNDER(path);
    resolve_all();
    if (path_hidden(path)) {
        errno = ENOENT;
        return -1;
    }
    return r_lstat64(path, st);
}

FC_EXPORT int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *stx)
{
    LAUNDER(path);
    fc_dev_t *d;
    resolve_all();
    if (!r_statx) {
        errno = ENOSYS;
        return -1;
    }
    if (empty_path(path) && (flags & AT_EMPTY_PATH) && (d = fake_fd_dev(dirfd))) {
        if (r_statx(AT_FDCWD, d->path, flags & ~AT_EMPTY_PATH, mask, stx) == 0 && S_ISCHR(stx->stx_mode)) return 0;
        memset(stx, 0, sizeof *stx);
        stx->stx_mask = STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_INO;
        stx->stx_mode = S_IFCHR | 0660;
        stx->stx_nlink = 1;
        stx->stx_gid = 44;
        stx->stx_ino = 100000 + (unsigned)d->num;
        stx->stx_blksize = 4096;
        stx->stx_rdev_major = 81;
        stx->stx_rdev_minor = (unsigned)d->num;
        stx->stx_dev_minor = 5;
        return 0;
    }
    if (path_hidden(path)) {
        errno = ENOENT;
        return -1;
    }
    return r_statx(dirfd, path, flags, mask, stx);
}

FC_EXPORT int access(const char *path, int mode)
{
    LAUNDER(path);
    resolve_all();
    if (path_hidden(path)) {
        errno = ENOENT;
        return -1;
    }
    return r_access(path, mode);
}

FC_EXPORT int faccessat(int dirfd, const char *path, int mode, int flags)
{
    LAUNDER(path);
    resolve_all();
    if (path_hidden(path)) {
        errno = ENOENT;
        return -1;
    }
    return r_faccessat(dirfd, path, mode, flags);
}

/* readdir: hide the names of unplugged devices in their directory */
static int name_hidden(DIR *dir, const char *name)
{
    int i, hide = 0;
    struct stat ds;
    int have = 0;
    if (!g_any_unplug) return 0;
    lock();
    for (i = 0; i < g_ndev && !hide; i++) {
        fc_dev_t *d = &g_dev[i];
        if (strcmp(name, d->base) || !dev_gone_locked(d)) continue;
        if (!d->dir_known) {
            struct stat s2;
            if (r_stat(d->dir, &s2) == 0) {
                d->dir_dev = s2.st_dev;
                d->dir_ino = s2.st_ino;
                d->dir_known = 1;
            }
        }
        if (!have) have = r_fstat(dirfd(dir), &ds) == 0 ? 1 : -1;
        if (have == 1 && d->dir_known && ds.st_dev == d->dir_dev && ds.st_ino == d->dir_ino) hide = 1;
    }
    unlock();
    return hide;
}

FC_EXPORT struct dirent *readdir(DIR *dir)
{
    struct dirent *e;
    resolve_all();
    do e = r_readdir(dir);
    while (e && g_any_unplug && name_hidden(dir, e->d_name));
    return e;
}

FC_EXPORT struct dirent64 *readdir64(DIR *dir)
{
    struct dirent64 *e;
    resolve_all();
    do e = r_readdir64(dir);
    while (e && g_any_unplug && name_hidden(dir, e->d_name));
    return e;
}
