//! `camstream controls`: a camera's controls (focus, exposure, white balance…), or setting them
//! in order and printing what the camera accepted.

use std::io::{self, Write};

use anyhow::{anyhow, Context, Result};

use crate::cli::ControlsArgs;
use crate::cmd::UsageError;
use crate::settings::SourceSpec;
use crate::source::camera;
use crate::source::controls::{self, Control, SetError};

pub fn run(args: &ControlsArgs) -> Result<()> {
    let SourceSpec::Camera(sel) = &args.source else {
        return Err(UsageError {
            command: "controls",
            message: format!("--source {}: only cameras have controls", args.source),
        }
        .into());
    };
    let (path, dev) = camera::open_for_controls(sel)?;
    let what = format!("camera {}", path.display());
    let mut out = io::stdout().lock();
    if args.assignments.is_empty() {
        let all =
            controls::query(&dev).with_context(|| format!("cannot read the controls of {what}"))?;
        if args.json {
            serde_json::to_writer_pretty(&mut out, &all)?;
            writeln!(out)?;
        } else if all.is_empty() {
            eprintln!("camstream: {what} has no controls");
        } else {
            write_text(&mut out, &all, "")?;
        }
        return Ok(out.flush()?);
    }
    let after = match controls::apply(&dev, &args.assignments) {
        Ok(c) => c,
        Err(SetError::Invalid(m)) => {
            return Err(UsageError {
                command: "controls",
                message: format!("{m} ({what})"),
            }
            .into())
        }
        Err(e) => return Err(anyhow!("{what}: {e}")),
    };
    // The values the camera accepted, in the order given: drivers clamp and round to the step.
    let set: Vec<&Control> = args
        .assignments
        .iter()
        .filter_map(|a| after.iter().find(|c| c.name == a.name))
        .collect();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &set)?;
        writeln!(out)?;
    } else {
        for c in set {
            match c.value {
                Some(v) => writeln!(out, "{}={v}", c.name)?,
                None => writeln!(out, "{}", c.name)?,
            }
        }
    }
    Ok(out.flush()?)
}

/// One control per line, for `list` and `controls`.
pub fn write_text(out: &mut impl Write, all: &[Control], indent: &str) -> io::Result<()> {
    for c in all {
        writeln!(out, "{indent}{}", c.text_line())?;
    }
    Ok(())
}
