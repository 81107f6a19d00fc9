//! `camstream snapshot`: one JPEG from the source, written atomically (or to stdout).
//!
//! What OUT may be: `-` or `/dev/stdout` (stdout); a new or existing regular file, replaced
//! atomically and keeping an existing file's owner and mode; a symbolic link, whose target is
//! replaced the same way (the link stays); a FIFO, written in place. Anything else (a device
//! node, a socket, a directory) is refused: replacing `/dev/null` as root would damage the
//! system, and writing into a device is never what a snapshot means.

use std::ffi::OsString;
use std::fs::Metadata;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use tempfile::NamedTempFile;

use crate::cli::SnapshotArgs;
use crate::cmd::{check_controls, source_settings, UsageError};
use crate::encoder::Encoder;
use crate::frame::RawFrame;
use crate::settings::{SourceSettings, SourceSpec};
use crate::source;

pub fn run(args: &SnapshotArgs) -> Result<()> {
    let settings = source_settings(&args.source);
    check_controls(&settings).map_err(|message| UsageError {
        command: "snapshot",
        message,
    })?;
    // Check the destination before touching the camera, so a typo fails fast.
    let out = Output::prepare(&args.out)?;
    let jpeg = capture_one(&settings, args.skip)?;
    out.commit(&jpeg)
}

/// Opens the source, lets a camera settle, and returns one JPEG.
pub fn capture_one(settings: &SourceSettings, skip: u32) -> Result<Arc<[u8]>> {
    let mut src = source::open(settings)?;
    if matches!(settings.spec, SourceSpec::Camera(_)) {
        for _ in 0..skip {
            src.grab().context("warming up the camera")?;
        }
    }
    match src.grab()? {
        RawFrame::Jpeg { data, .. } => Ok(data),
        RawFrame::Yuv(pic) => Encoder::new(settings.quality)?.encode(&pic),
    }
}

/// Names under which stdout is written to as such: replacing or reopening what they point at
/// would break `snapshot /dev/stdout >> log`.
const STDOUT_ALIASES: [&str; 3] = ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"];

/// Where the JPEG goes.
enum Output {
    Stdout,
    /// A FIFO, written in place: the reader at its other end gets the JPEG.
    Fifo {
        path: PathBuf,
    },
    /// A temporary file in the target's folder, renamed over the target only once the whole
    /// JPEG is written, so no partial file is ever seen. `target` is `path` with symbolic links
    /// followed.
    File {
        tmp: NamedTempFile,
        path: PathBuf,
        target: PathBuf,
    },
}

impl Output {
    fn prepare(path: &Path) -> Result<Output> {
        if path.as_os_str() == "-" || STDOUT_ALIASES.iter().any(|a| path == Path::new(a)) {
            return Ok(Output::Stdout);
        }
        let shown = path.display();
        let target = follow_links(path).map_err(|e| write_error(path, &e))?;
        // What `path` is, following links as the kernel does (also for /proc's magic links).
        let existing = match std::fs::metadata(path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(write_error(path, &e).into()),
        };
        if let Some(m) = &existing {
            let ft = m.file_type();
            if ft.is_fifo() {
                return Ok(Output::Fifo { path: path.into() });
            }
            if !ft.is_file() {
                bail!("cannot write {shown}: {}", not_regular(path, &target, m));
            }
            // The file the link resolution found must be the one the kernel finds.
            let same = std::fs::symlink_metadata(&target)
                .is_ok_and(|t| t.is_file() && (t.dev(), t.ino()) == (m.dev(), m.ino()));
            if !same {
                bail!("cannot write {shown}: cannot tell which file it links to");
            }
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !dir.exists() {
            bail!(
                "cannot write {shown}: folder {} does not exist",
                dir.display()
            );
        }
        if !dir.is_dir() {
            bail!("cannot write {shown}: {} is not a folder", dir.display());
        }
        let mut prefix = OsString::from(".");
        prefix.push(target.file_name().unwrap_or_default());
        prefix.push(".");
        let tmp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| write_error(path, &e))?;
        match &existing {
            Some(old) => keep_owner_and_mode(tmp.as_file(), old).map_err(|e| {
                anyhow!(
                    "cannot write {shown}: its replacement cannot keep its owner {}:{} ({})",
                    old.uid(),
                    old.gid(),
                    reason(&e)
                )
            })?,
            None => set_default_mode(tmp.as_file()),
        }
        Ok(Output::File {
            tmp,
            path: path.into(),
            target,
        })
    }

    fn commit(self, jpeg: &[u8]) -> Result<()> {
        match self {
            Output::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(jpeg)
                    .and_then(|_| out.flush())
                    .context("cannot write to stdout")
            }
            Output::Fifo { path } => {
                // Waits for a reader, as any writer into a FIFO does.
                let mut fifo = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOCTTY)
                    .open(&path)
                    .map_err(|e| write_error(&path, &e))?;
                let m = fifo.metadata().map_err(|e| write_error(&path, &e))?;
                if !m.file_type().is_fifo() {
                    bail!("cannot write {}: it is no longer a FIFO", path.display());
                }
                fifo.write_all(jpeg).map_err(|e| write_error(&path, &e))?;
                Ok(())
            }
            Output::File { tmp, path, target } => {
                // Write through the File, not the NamedTempFile: its errors name the
                // temporary file, and the user asked for `path`.
                let mut file = tmp.as_file();
                file.write_all(jpeg)
                    .and_then(|_| file.sync_all())
                    .map_err(|e| write_error(&path, &e))?;
                // Checked again just before the rename, which would replace whatever is there.
                if let Ok(m) = std::fs::symlink_metadata(&target) {
                    if !m.is_file() {
                        bail!(
                            "cannot write {}: {}",
                            path.display(),
                            not_regular(&path, &target, &m)
                        );
                    }
                }
                tmp.persist(&target)
                    .map_err(|e| write_error(&path, &e.error))?;
                Ok(())
            }
        }
    }
}

/// `path` with symbolic links in its last component followed, at most 40 times (as the kernel
/// does); the result may not exist yet (a link to a file still to be made).
fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p)?;
                // A relative link is relative to its own folder; joining an absolute one
                // replaces the folder.
                p = p.parent().map_or_else(|| to.clone(), |dir| dir.join(&to));
            }
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

/// Why a destination that is not a regular file is refused, e.g. "it is a character device".
fn not_regular(path: &Path, target: &Path, m: &Metadata) -> String {
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        "a directory"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    let hint = if ft.is_char_device() {
        " (use - to write to stdout)"
    } else {
        ""
    };
    if path == target {
        format!("it is {kind}{hint}")
    } else {
        format!("it links to {}, {kind}{hint}", target.display())
    }
}

/// An I/O error as "cannot write PATH: REASON", keeping its kind so that a reader closing a
/// FIFO early counts as a broken pipe, as on stdout.
fn write_error(path: &Path, e: &io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("cannot write {}: {}", path.display(), reason(e)),
    )
}

/// An I/O error in the words `cp` would use: "no space left on device", without "(os error
/// 28)" or the path of a temporary file that tempfile appends.
fn reason(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text.find(" (os error ").map_or(&text[..], |i| &text[..i]);
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

/// Gives the replacement of an existing file that file's owner, group and mode.
fn keep_owner_and_mode(new: &std::fs::File, old: &Metadata) -> io::Result<()> {
    let mine = new.metadata()?;
    if (mine.uid(), mine.gid()) != (old.uid(), old.gid()) {
        std::os::unix::fs::fchown(new, Some(old.uid()), Some(old.gid()))?;
    }
    // After the chown, which clears set-user-ID and set-group-ID bits.
    new.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))
}

/// Files default to 0600 in tempfile; a new snapshot is meant to be shared like any file the
/// user writes, so it gets the usual umask-derived mode.
fn set_default_mode(f: &std::fs::File) {
    // SAFETY: umask only reads and sets the process mask; we restore it at once.
    let mask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    let _ = f.set_permissions(std::fs::Permissions::from_mode(0o666 & !mask));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_and_its_aliases_are_written_as_stdout() {
        for p in ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"] {
            assert!(
                matches!(Output::prepare(Path::new(p)), Ok(Output::Stdout)),
                "{p}"
            );
        }
    }

    #[test]
    fn reasons_read_like_cp_and_name_no_temporary_file() {
        let full = io::Error::from_raw_os_error(libc::ENOSPC);
        let e = write_error(Path::new("out.jpg"), &full);
        assert_eq!(
            e.to_string(),
            "cannot write out.jpg: no space left on device"
        );
        assert_eq!(e.kind(), full.kind());
        // tempfile appends the temporary file's path to its errors.
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        let e = tempfile::Builder::new().tempfile_in(&missing).unwrap_err();
        assert!(e.to_string().contains("gone"), "{e}");
        assert_eq!(reason(&e), "no such file or directory");
    }

    #[test]
    fn links_are_followed_to_a_target_that_may_not_exist_yet() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::os::unix::fs::symlink("b", d.join("a")).unwrap();
        std::os::unix::fs::symlink(d.join("c"), d.join("b")).unwrap();
        assert_eq!(follow_links(&d.join("a")).unwrap(), d.join("c"));
        assert_eq!(follow_links(&d.join("c")).unwrap(), d.join("c"));
        std::os::unix::fs::symlink("loop", d.join("loop")).unwrap();
        let e = follow_links(&d.join("loop")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
    }
}
