//! The stream senders' scheduling hint: a long time slice under the kernel's EEVDF scheduler.
//!
//! Each part a sender writes wakes the viewer's reader. For a reader on the same host (a
//! reverse proxy, a recorder, a dashboard such as OctoPrint's or Home Assistant's), loopback
//! runs that wake-up on the sender's core, as the sender's work; a remote viewer's wake-up
//! happens on its own host, so there the slice changes little. Measured with the load bench's
//! thread-per-viewer client (`cargo bench --bench load -- --client threads`), the senders
//! spent 8.5–8.6 µs per delivered frame at 500 viewers with the default slice and 6.8–7.0 µs
//! with this one, in interleaved runs (BENCHMARKS.md, "Fan-out and µStreamer").
//! With a slice longer than the readers', a woken reader runs at once on the sender's core
//! while the part is still in its cache, instead of waiting and being pulled to the other
//! core.
//!
//! `sched_setattr(2)` with `sched_runtime` sets the slice of a fair-class thread on Linux
//! 6.12 and later, without privileges; older kernels ignore the value. The thread keeps its
//! policy and nice value (read first with `sched_getattr`), so `nice` or systemd's `Nice=`
//! still apply, and threads under a real-time or idle policy are left alone.

use std::io;
use std::time::Duration;

/// The slice asked for: longer than a sender's pass over its share of 1000 viewers (3–5 ms),
/// and well within the kernel's 0.1–100 ms range. 3, 10, 30 and 100 ms measured alike.
pub const SENDER_SLICE: Duration = Duration::from_millis(10);

/// Asks for `slice` as the calling thread's time slice. Ok(false) when the thread's policy is
/// not a fair one (nothing is changed).
pub fn ask_for_slice(slice: Duration) -> io::Result<bool> {
    let mut attr = current()?;
    if !matches!(
        attr.sched_policy as i32,
        libc::SCHED_OTHER | libc::SCHED_BATCH
    ) {
        return Ok(false);
    }
    attr.sched_runtime = u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX);
    // SAFETY: a valid, fully initialised sched_attr whose `size` matches its type, for the
    // calling thread (pid 0).
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const _, 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}

/// The calling thread's scheduling attributes.
fn current() -> io::Result<libc::sched_attr> {
    // SAFETY: sched_attr is a plain C struct for which all-zero is valid.
    let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::sched_attr>();
    // SAFETY: `attr` is writable for `size` bytes, the size the kernel is told.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attr as *mut libc::sched_attr,
            size as libc::c_uint,
            0,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    attr.size = size as u32;
    Ok(attr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slice_keeps_the_nice_value() {
        // On a thread of its own: the nice value and the slice are per thread.
        std::thread::spawn(|| {
            // A nicer value than the thread has: raising nice needs no privilege.
            let nice = (current().unwrap().sched_nice + 3).min(19);
            // SAFETY: gettid and setpriority on the calling thread.
            let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
            assert_eq!(
                unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) },
                0
            );
            let before = current().unwrap();
            assert_eq!(before.sched_nice, nice);
            let fair = matches!(
                before.sched_policy as i32,
                libc::SCHED_OTHER | libc::SCHED_BATCH
            );
            match ask_for_slice(SENDER_SLICE) {
                // Only a fair thread (as threads start, unless the tests run under chrt) gets a
                // slice.
                Ok(changed) => assert_eq!(changed, fair),
                // A seccomp profile may refuse the call; the sender then goes on as it is.
                Err(e) => eprintln!("sched_setattr refused here: {e}"),
            }
            let attr = current().unwrap();
            assert_eq!(attr.sched_nice, nice);
            assert_eq!(attr.sched_policy, before.sched_policy);
            // Kernels before 6.12 report no slice for a fair thread.
            assert!(
                attr.sched_runtime == 0 || attr.sched_runtime == 10_000_000,
                "{}",
                attr.sched_runtime
            );
        })
        .join()
        .unwrap();
    }
}
