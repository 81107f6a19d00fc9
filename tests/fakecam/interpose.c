/* fakecam: the intercepted libc functions: open, close, dup, fcntl, ioctl, mmap, syscall,
 * poll, select, read, the stat family, access and readdir, and the fake sysfs files. See fakecam.h. */
#include "fakecam.h"

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
