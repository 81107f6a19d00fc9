//! `camstream snapshot`: one JPEG from the source, written atomically (or to stdout).

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use tempfile::NamedTempFile;

use crate::cli::SnapshotArgs;
use crate::encoder::Encoder;
use crate::frame::RawFrame;
use crate::settings::{SourceSettings, SourceSpec};
use crate::source;

pub fn run(args: &SnapshotArgs) -> Result<()> {
    let settings = SourceSettings::from(&args.source);
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

/// Where the JPEG goes: stdout, or a temporary file in the target's folder that is renamed
/// over the target only once the whole JPEG is written, so no partial file is ever seen.
enum Output {
    Stdout,
    File { tmp: NamedTempFile, path: PathBuf },
}

impl Output {
    fn prepare(path: &Path) -> Result<Output> {
        if path.as_os_str() == "-" {
            return Ok(Output::Stdout);
        }
        let shown = path.display();
        if path.is_dir() {
            bail!("cannot write {shown}: it is a directory");
        }
        let dir = match path.parent() {
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
        prefix.push(path.file_name().unwrap_or_default());
        prefix.push(".");
        let tmp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => {
                    anyhow!("cannot write {shown}: permission denied")
                }
                _ => anyhow!("cannot write {shown}: {e}"),
            })?;
        Ok(Output::File {
            tmp,
            path: path.to_path_buf(),
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
            Output::File { mut tmp, path } => {
                let shown = path.display();
                tmp.write_all(jpeg)
                    .and_then(|_| tmp.as_file().sync_all())
                    .with_context(|| format!("cannot write {shown}"))?;
                // Files default to 0600 in tempfile; a snapshot is meant to be shared like any
                // file the user writes, so apply the usual umask-derived mode.
                set_default_mode(tmp.as_file());
                tmp.persist(&path)
                    .map_err(|e| anyhow!("cannot write {shown}: {}", e.error))?;
                Ok(())
            }
        }
    }
}

#[cfg(unix)]
fn set_default_mode(f: &std::fs::File) {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: umask only reads and sets the process mask; we restore it at once.
    let mask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    let _ = f.set_permissions(std::fs::Permissions::from_mode(0o666 & !mask));
}

#[cfg(not(unix))]
fn set_default_mode(_: &std::fs::File) {}
