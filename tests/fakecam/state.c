/* fakecam: the real libc functions (resolved with dlsym), the configuration from FAKECAM_*,
 * the table of fake fds and the device state (timers, unplugging). See fakecam.h. */
#include "fakecam.h"

/* ------------------------------------------------------------------ */
/* real libc functions                                                 */
/* ------------------------------------------------------------------ */
int (*r_open)(const char *, int, ...);
int (*r_open64)(const char *, int, ...);
int (*r_openat)(int, const char *, int, ...);
int (*r_openat64)(int, const char *, int, ...);
int (*r_open_2)(const char *, int);
int (*r_open64_2)(const char *, int);
int (*r_openat_2)(int, const char *, int);
int (*r_openat64_2)(int, const char *, int);
int (*r_close)(int);
int (*r_dup)(int);
int (*r_dup2)(int, int);
int (*r_dup3)(int, int, int);
int (*r_fcntl)(int, int, ...);
int (*r_fcntl64)(int, int, ...);
int (*r_ioctl)(int, unsigned long, ...);
long (*r_syscall)(long, ...);
void *(*r_mmap)(void *, size_t, int, int, int, off_t);
void *(*r_mmap64)(void *, size_t, int, int, int, off64_t);
int (*r_munmap)(void *, size_t);
int (*r_poll)(struct pollfd *, nfds_t, int);
int (*r_ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
int (*r_poll_chk)(struct pollfd *, nfds_t, int, size_t);
int (*r_ppoll_chk)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *, size_t);
int (*r_select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
int (*r_pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
ssize_t (*r_read)(int, void *, size_t);
ssize_t (*r_read_chk)(int, void *, size_t, size_t);
int (*r_fstat)(int, struct stat *);
int (*r_fstat64)(int, struct stat64 *);
int (*r_stat)(const char *, struct stat *);
int (*r_stat64)(const char *, struct stat64 *);
int (*r_lstat)(const char *, struct stat *);
int (*r_lstat64)(const char *, struct stat64 *);
int (*r_fstatat)(int, const char *, struct stat *, int);
int (*r_fstatat64)(int, const char *, struct stat64 *, int);
int (*r_statx)(int, const char *, int, unsigned int, struct statx *);
int (*r_access)(const char *, int);
int (*r_faccessat)(int, const char *, int, int);
struct dirent *(*r_readdir)(DIR *);
struct dirent64 *(*r_readdir64)(DIR *);
FILE *(*r_fopen)(const char *, const char *);
int (*r_close_range)(unsigned int, unsigned int, int);
void (*r_closefrom)(int);
FILE *(*r_fopen64)(const char *, const char *);

#define RESOLVE(var, name)                                         \
    do {                                                           \
        if (!(var)) *(void **)(&(var)) = dlsym(RTLD_NEXT, (name)); \
    } while (0)

static volatile int g_resolved;

void resolve_all(void)
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
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
fc_fmt_t g_fmt[FC_MAXFMT];
int g_nfmt;
fc_dev_t g_dev[FC_MAXDEV];
int g_ndev, g_any_meta, g_debug, g_quality = 80;
volatile int g_any_unplug;
char g_name[64] = "camstream fake camera";
fc_ofile_t *g_ofiles;
static unsigned char g_fast[FC_FASTFDS];
struct fc_map g_map[FC_MAXMAP];
int g_nmap;
int g_nfake;

void lock(void) { pthread_mutex_lock(&g_lock); }
void unlock(void) { pthread_mutex_unlock(&g_lock); }
/* keep the lock consistent in a child forked while another thread held it */
static void atfork_prepare(void) { pthread_mutex_lock(&g_lock); }
static void atfork_release(void) { pthread_mutex_unlock(&g_lock); }

uint64_t now_ns(void)
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
void dbg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dbg(const char *fmt, ...)
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
    fc_ctrl_reset(d);
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

void cfg(void)
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
int fd_maybe_fake(int fd)
{
    if (fd < 0) return 0;
    if (fd < FC_FASTFDS) return __atomic_load_n(&g_fast[fd], __ATOMIC_ACQUIRE);
    return __atomic_load_n(&g_nfake, __ATOMIC_ACQUIRE) > 0;
}

fc_ofile_t *lookup_locked(int fd)
{
    int i;
    if (fd < 0) return NULL;
    for (i = 0; i < g_nmap; i++)
        if (g_map[i].fd == fd) return g_map[i].of;
    return NULL;
}

int map_add_locked(int fd, fc_ofile_t *of)
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

void release_buffers_locked(fc_ofile_t *of)
{
    if (of->map) r_munmap(of->map, of->stride * of->nbufs);
    if (of->memfd >= 0) r_close(of->memfd);
    of->map = NULL;
    of->memfd = -1;
    of->nbufs = 0;
    of->qcount = of->qhead = 0;
    memset(of->buf, 0, sizeof of->buf);
}

void free_ofile_locked(fc_ofile_t *of)
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

void map_del_locked(int fd)
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

void track_dup(int oldfd, int newfd)
{
    fc_ofile_t *of;
    if (newfd < 0 || newfd == oldfd) return;
    lock();
    map_del_locked(newfd);
    of = lookup_locked(oldfd);
    if (of) map_add_locked(newfd, of);
    unlock();
}

void forget_fd(int fd)
{
    if (!fd_maybe_fake(fd)) return;
    lock();
    map_del_locked(fd);
    unlock();
}

/* ------------------------------------------------------------------ */
/* device state helpers                                                */
/* ------------------------------------------------------------------ */
fc_dev_t *match_path(const char *path)
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
int dev_gone_locked(fc_dev_t *d)
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

void timer_set(fc_ofile_t *of, uint64_t first_ns, uint64_t interval_ns)
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

void timer_stop(fc_ofile_t *of)
{
    timer_set(of, 0, 0);
    timer_drain(of);
}

/* make the fd permanently readable so that epoll/unhooked pollers wake up */
void timer_fire_now(fc_ofile_t *of)
{
    timer_set(of, 1, 0);
}

uint64_t frame_interval_ns(const fc_dev_t *d)
{
    double ns = 1e9 / (d->cur_fps ? d->cur_fps : 30) * d->slow + d->delay_ms * 1e6;
    if (ns < 1e6) ns = 1e6;
    return (uint64_t)ns;
}

void dev_unplug_locked(fc_dev_t *d)
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
