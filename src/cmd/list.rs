//! `camstream list`: the cameras, their stable names, formats, sizes, frame rates and controls.

use std::io::{self, Write};

use anyhow::Result;

use crate::cli::ListArgs;
use crate::source::camera::{self, CameraInfo};

pub fn run(args: &ListArgs) -> Result<()> {
    let cams = camera::enumerate()?;
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &cams)?;
        writeln!(out)?;
        return Ok(out.flush()?);
    }
    if cams.is_empty() {
        eprintln!(
            "camstream: no cameras found (camstream serve --source pattern runs without one)"
        );
        return Ok(());
    }
    write_text(&mut out, &cams)?;
    Ok(out.flush()?)
}

fn write_text(out: &mut impl Write, cams: &[CameraInfo]) -> io::Result<()> {
    for (i, c) in cams.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "camera:{}  {}  {}", c.index, c.path.display(), c.name)?;
        if let Some(id) = &c.by_id {
            writeln!(out, "  id:     {}", id.display())?;
        }
        if !c.driver.is_empty() {
            writeln!(out, "  driver: {} ({})", c.driver, c.bus)?;
        }
        if let Some(e) = &c.error {
            writeln!(out, "  error:  {e}")?;
        }
        for f in &c.formats {
            writeln!(out, "  {} ({})", f.fourcc, f.description)?;
            if let Some(r) = &f.stepwise {
                writeln!(
                    out,
                    "    any size {}x{} to {}x{} in steps of {}x{}",
                    r.min_width,
                    r.min_height,
                    r.max_width,
                    r.max_height,
                    r.step_width,
                    r.step_height
                )?;
            }
            for s in &f.sizes {
                let fps: Vec<String> = s.fps.iter().map(|v| format!("{v}")).collect();
                writeln!(
                    out,
                    "    {:>4}x{:<4}  {} fps",
                    s.width,
                    s.height,
                    fps.join(", ")
                )?;
            }
        }
        if !c.controls.is_empty() {
            writeln!(out, "  controls:")?;
            crate::cmd::controls::write_text(out, &c.controls, "    ")?;
        }
    }
    Ok(())
}
