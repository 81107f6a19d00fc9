/*
 * fakecam - a fake V4L2 camera, as an LD_PRELOAD shared library (tests only).
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
 *   cd tests/fakecam && cc -shared -fPIC -O2 -Wall -Wextra -o libfakecam.so \
 *       state.c jpeg.c scene.c v4l2.c interpose.c -ldl -lm
 * Files: fakecam.h (this: types, state and what the files share), state.c (the
 * real libc functions, configuration, the fd table, device state), jpeg.c (the
 * JPEG encoder), scene.c (what the camera "sees"), v4l2.c (the V4L2 ioctls),
 * interpose.c (the intercepted libc functions).  Only the intercepted functions
 * are exported; everything shared between the files is hidden.
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
 * QUERY_EXT_CTRL (incl. NEXT_CTRL), QUERYMENU, G/S_CTRL, G/S/TRY_EXT_CTRLS (a UVC
 * webcam's controls, stored but without effect on the picture: integers with
 * steps, booleans, menus with gaps; focus_absolute, white_balance_temperature and
 * exposure_time_absolute are INACTIVE, and writes to them EACCES, while their auto
 * control is on; values are clamped and rounded to the step; "Exposure, Dynamic
 * Framerate" is EBUSY while streaming; a replug restores the defaults),
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
#ifndef FAKECAM_H
#define FAKECAM_H

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
#define FC_NCTRL 10 /* the controls v4l2.c emulates */
#define FC_FASTFDS 65536
#define FC_EXPORT __attribute__((visibility("default")))
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif


/* glibc declares these path arguments nonnull, so GCC deletes our NULL checks; but callers do
 * pass NULL (Rust's std probes statx(0, NULL, 0, mask, NULL) for EFAULT). Hiding the pointer's
 * origin from the optimizer keeps the checks. */
#define LAUNDER(p) __asm__ volatile("" : "+r"(p))

/* Shared between the files but not exported: the library must not interpose anything it
 * does not mean to (a hidden symbol binds inside the library only). */
#pragma GCC visibility push(hidden)

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
    int32_t ctrl[FC_NCTRL]; /* control values, in the order of v4l2.c's table */
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


struct fc_map {
    int fd;
    fc_ofile_t *of;
};

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


/* state.c: the real libc functions, configuration and state, the fd table, device state */
extern int (*r_open)(const char *, int, ...);
extern int (*r_open64)(const char *, int, ...);
extern int (*r_openat)(int, const char *, int, ...);
extern int (*r_openat64)(int, const char *, int, ...);
extern int (*r_open_2)(const char *, int);
extern int (*r_open64_2)(const char *, int);
extern int (*r_openat_2)(int, const char *, int);
extern int (*r_openat64_2)(int, const char *, int);
extern int (*r_close)(int);
extern int (*r_dup)(int);
extern int (*r_dup2)(int, int);
extern int (*r_dup3)(int, int, int);
extern int (*r_fcntl)(int, int, ...);
extern int (*r_fcntl64)(int, int, ...);
extern int (*r_ioctl)(int, unsigned long, ...);
extern long (*r_syscall)(long, ...);
extern void *(*r_mmap)(void *, size_t, int, int, int, off_t);
extern void *(*r_mmap64)(void *, size_t, int, int, int, off64_t);
extern int (*r_munmap)(void *, size_t);
extern int (*r_poll)(struct pollfd *, nfds_t, int);
extern int (*r_ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
extern int (*r_poll_chk)(struct pollfd *, nfds_t, int, size_t);
extern int (*r_ppoll_chk)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *, size_t);
extern int (*r_select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
extern int (*r_pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
extern ssize_t (*r_read)(int, void *, size_t);
extern ssize_t (*r_read_chk)(int, void *, size_t, size_t);
extern int (*r_fstat)(int, struct stat *);
extern int (*r_fstat64)(int, struct stat64 *);
extern int (*r_stat)(const char *, struct stat *);
extern int (*r_stat64)(const char *, struct stat64 *);
extern int (*r_lstat)(const char *, struct stat *);
extern int (*r_lstat64)(const char *, struct stat64 *);
extern int (*r_fstatat)(int, const char *, struct stat *, int);
extern int (*r_fstatat64)(int, const char *, struct stat64 *, int);
extern int (*r_statx)(int, const char *, int, unsigned int, struct statx *);
extern int (*r_access)(const char *, int);
extern int (*r_faccessat)(int, const char *, int, int);
extern struct dirent *(*r_readdir)(DIR *);
extern struct dirent64 *(*r_readdir64)(DIR *);
extern FILE *(*r_fopen)(const char *, const char *);
extern int (*r_close_range)(unsigned int, unsigned int, int);
extern void (*r_closefrom)(int);
extern FILE *(*r_fopen64)(const char *, const char *);
void resolve_all(void);
extern fc_fmt_t g_fmt[FC_MAXFMT];
extern int g_nfmt;
extern fc_dev_t g_dev[FC_MAXDEV];
extern int g_ndev, g_any_meta, g_debug, g_quality;
extern volatile int g_any_unplug;
extern char g_name[64];
extern fc_ofile_t *g_ofiles;
extern struct fc_map g_map[FC_MAXMAP];
extern int g_nmap;
extern int g_nfake;
void lock(void);
void unlock(void);
uint64_t now_ns(void);
void dbg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cfg(void);
int fd_maybe_fake(int fd);
fc_ofile_t *lookup_locked(int fd);
int map_add_locked(int fd, fc_ofile_t *of);
void release_buffers_locked(fc_ofile_t *of);
void free_ofile_locked(fc_ofile_t *of);
void map_del_locked(int fd);
void track_dup(int oldfd, int newfd);
void forget_fd(int fd);
fc_dev_t *match_path(const char *path);
int dev_gone_locked(fc_dev_t *d);
void timer_set(fc_ofile_t *of, uint64_t first_ns, uint64_t interval_ns);
void timer_stop(fc_ofile_t *of);
void timer_fire_now(fc_ofile_t *of);
uint64_t frame_interval_ns(const fc_dev_t *d);
void dev_unplug_locked(fc_dev_t *d);

/* jpeg.c: a scene as a JPEG */
int scene_jpeg_prepare(fc_scene_t *s);
size_t out_jpeg(fc_scene_t *s, uint8_t *dst, size_t cap, const char *com);

/* scene.c: what the camera "sees" */
void scene_draw(fc_scene_t *s, uint32_t fno);
void out_yuyv(fc_scene_t *s, uint8_t *dst);
fc_scene_t *dev_scene(fc_dev_t *d, unsigned w, unsigned h);

/* v4l2.c: V4L2 emulation */
int fake_ioctl(int fd, unsigned long req, void *arg, int *handled);
void fc_ctrl_reset(fc_dev_t *d); /* v4l2.c: power-on control values */

#pragma GCC visibility pop

#endif
