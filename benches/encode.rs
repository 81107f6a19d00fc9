//! Issue #2 benchmark: JPEG encode time per frame, camstream vs libjpeg-turbo's own `tjbench`.
//!
//! Run with `cargo bench --bench encode` (options after `--`: `--rounds N`, `--iters N`,
//! `--max-seconds S`, `--benchtime S`).
//!
//! For each size (640x480 and 1280x720) and each round (default 3), interleaved so that noise
//! from other processes hits both sides alike:
//! - camstream: `Encoder::new(80)?.encode(&pic)` on one pattern frame (planar YUV 4:2:0), timed
//!   per call over a bounded number of iterations; mean and median per frame.
//! - tjbench (if installed): the same picture converted to RGB (JFIF / BT.601 full range, the
//!   inverse of the conversion libjpeg-turbo applies) and saved as a PPM, compressed at quality
//!   80, 4:2:0, once from RGB and once with `-yuv` (RGB -> planar YUV, then compression from
//!   YUV; its "Comp Perf" column is the YUV -> JPEG step alone, like camstream's encode).
//!
//! The table shows the median over the rounds; the target (issue #2) is camstream's encode
//! within 10 % of tjbench's compression from YUV.

mod common;
use common::median;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, UNIX_EPOCH};

use camstream::encoder::Encoder;
use camstream::frame::{Chroma, Planar};
use camstream::settings::Size;
use camstream::source::pattern::Pattern;

struct Opts {
    rounds: usize,
    iters: usize,
    max_seconds: f64,
    benchtime: f64,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        rounds: 3,
        iters: 300,
        max_seconds: 5.0,
        benchtime: 2.0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--rounds" => o.rounds = val.parse().expect("--rounds N"),
            "--iters" => o.iters = val.parse().expect("--iters N"),
            "--max-seconds" => o.max_seconds = val.parse().expect("--max-seconds S"),
            "--benchtime" => o.benchtime = val.parse().expect("--benchtime S"),
            // `cargo bench` passes `--bench`; anything else unknown is ignored too.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o.rounds = o.rounds.max(1);
    o.iters = o.iters.max(10);
    o
}

/// Per-frame times of our encoder, in milliseconds.
struct Ours {
    mean: f64,
    median: f64,
    min: f64,
    iters: usize,
    jpeg_bytes: usize,
}

fn bench_ours(pic: &Planar, iters: usize, max: Duration) -> Ours {
    let mut enc = Encoder::new(80).expect("encoder");
    // Warm-up: buffers sized, caches primed.
    let mut jpeg_bytes = 0;
    for _ in 0..20 {
        jpeg_bytes = std::hint::black_box(enc.encode(pic).expect("encode")).len();
    }
    let mut times = Vec::with_capacity(iters);
    let start = Instant::now();
    while times.len() < iters && start.elapsed() < max {
        let t = Instant::now();
        let jpeg = enc.encode(std::hint::black_box(pic)).expect("encode");
        times.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(jpeg);
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
    Ours {
        mean,
        median: median(&mut times),
        min,
        iters: times.len(),
        jpeg_bytes,
    }
}

/// Median time of `Pattern::render` (what the capture loop does before each encode), in ms.
fn bench_render(size: Size, iters: usize, max: Duration) -> f64 {
    let p = Pattern::new(size);
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut times = Vec::with_capacity(iters);
    let start = Instant::now();
    let mut n = 0u64;
    while times.len() < iters && start.elapsed() < max {
        n += 1;
        let t = Instant::now();
        let pic = p.render(n, t0 + Duration::from_millis(33 * n));
        times.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(pic);
    }
    median(&mut times)
}

/// Planar YUV 4:2:0 (JFIF full-range YCbCr, as libjpeg-turbo reads it) to a binary PPM.
fn write_ppm(pic: &Planar, path: &Path) -> std::io::Result<()> {
    assert_eq!(pic.chroma, Chroma::Yuv420);
    let (w, h) = (pic.width, pic.height);
    let (cw, ch) = Planar::chroma_dims(w, h, pic.chroma);
    let (y, uv) = pic.data.split_at(w * h);
    let (u, v) = uv.split_at(cw * ch);
    let mut out = format!("P6\n{w} {h}\n255\n").into_bytes();
    out.reserve(w * h * 3);
    let clamp = |x: f64| x.round().clamp(0.0, 255.0) as u8;
    for row in 0..h {
        for col in 0..w {
            let yy = f64::from(y[row * w + col]);
            let cb = f64::from(u[(row / 2) * cw + col / 2]) - 128.0;
            let cr = f64::from(v[(row / 2) * cw + col / 2]) - 128.0;
            out.push(clamp(yy + 1.402 * cr));
            out.push(clamp(yy - 0.344_136 * cb - 0.714_136 * cr));
            out.push(clamp(yy + 1.772 * cb));
        }
    }
    std::fs::write(path, out)
}

/// One round at one size: ours and tjbench's (if installed).
type Round = (Ours, Option<Tj>);

/// What tjbench measured, in Mpixels/s.
struct Tj {
    /// Compression from the packed RGB buffer (colour conversion + encode).
    from_rgb: Option<f64>,
    /// With -yuv: the RGB -> YUV step ("Encode Perf") and YUV -> JPEG ("Comp Perf").
    yuv_convert: Option<f64>,
    from_yuv: Option<f64>,
    /// Its JPEG's size in bytes (from the compression ratio), to check it encoded the same.
    jpeg_bytes: Option<f64>,
}

fn tjbench_path() -> Option<PathBuf> {
    let candidates = ["/usr/bin/tjbench", "/usr/local/bin/tjbench"];
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Runs tjbench quietly and returns the numeric columns after width and height of its result
/// line (e.g. `BGR  (TD)  4:2:0  80  640  480  665.3  58.06  N/A`).
fn run_tjbench(
    tj: &Path,
    ppm: &Path,
    w: usize,
    h: usize,
    yuv: bool,
    benchtime: f64,
) -> Option<Vec<f64>> {
    let mut cmd = Command::new(tj);
    cmd.arg(ppm)
        .arg("80")
        .args(["-subsamp", "420", "-quiet", "-componly", "-nowrite"]);
    cmd.args(["-benchtime", &benchtime.to_string(), "-warmup", "1"]);
    if yuv {
        cmd.arg("-yuv");
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!("tjbench failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() >= 7 && t[2] == "4:2:0" && t[4] == w.to_string() && t[5] == h.to_string() {
            return Some(
                t[6..]
                    .iter()
                    .filter_map(|s| s.parse::<f64>().ok())
                    .collect(),
            );
        }
    }
    eprintln!("could not parse tjbench output:\n{text}");
    None
}

fn bench_tj(tj: &Path, ppm: &Path, w: usize, h: usize, benchtime: f64) -> Tj {
    let rgb = run_tjbench(tj, ppm, w, h, false, benchtime);
    let yuv = run_tjbench(tj, ppm, w, h, true, benchtime);
    Tj {
        from_rgb: rgb.as_ref().and_then(|v| v.first().copied()),
        yuv_convert: yuv.as_ref().and_then(|v| v.first().copied()),
        from_yuv: yuv.as_ref().and_then(|v| v.get(1).copied()),
        jpeg_bytes: rgb
            .as_ref()
            .and_then(|v| v.get(1))
            .map(|ratio| (w * h * 3) as f64 / ratio),
    }
}

fn mpx_to_ms(mpx: f64, w: usize, h: usize) -> f64 {
    (w * h) as f64 / (mpx * 1e6) * 1e3
}

/// The libjpeg-turbo version our turbojpeg-sys built, read from its generated header.
fn our_libjpeg_version() -> Option<String> {
    let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/build");
    for entry in std::fs::read_dir(build).ok()?.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with("turbojpeg-sys-")
        {
            continue;
        }
        let header = entry.path().join("out/include/jconfig.h");
        if let Ok(text) = std::fs::read_to_string(header) {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("#define LIBJPEG_TURBO_VERSION ") {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

fn tjbench_version() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "libjpeg-turbo-progs"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into())
}

fn main() {
    let o = parse_opts();
    let tj = tjbench_path();
    let dir = tempfile::tempdir().expect("temp dir");
    println!("camstream encode benchmark (issue #2): q80, 4:2:0, one pattern frame per size");
    println!(
        "libjpeg-turbo: camstream's (turbojpeg-sys, built from source with NASM) {}; tjbench {}",
        our_libjpeg_version().unwrap_or_else(|| "unknown version".into()),
        match (&tj, tjbench_version()) {
            (None, _) =>
                "not installed (apt-get install libjpeg-turbo-progs): tjbench columns are n/a"
                    .to_string(),
            (Some(p), Some(v)) => format!("{} (Debian libjpeg-turbo-progs {v})", p.display()),
            (Some(p), None) => p.display().to_string(),
        }
    );
    println!(
        "rounds {}, camstream: up to {} encodes or {} s per round; tjbench: -benchtime {} -warmup 1",
        o.rounds, o.iters, o.max_seconds, o.benchtime
    );

    let sizes = [
        Size {
            width: 640,
            height: 480,
        },
        Size {
            width: 1280,
            height: 720,
        },
    ];
    // A fixed moment, so that every run encodes the same picture.
    let t = UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
    let pics: Vec<Planar> = sizes
        .iter()
        .map(|&s| Pattern::new(s).render(1234, t))
        .collect();
    let ppms: Vec<PathBuf> = sizes
        .iter()
        .zip(&pics)
        .map(|(s, pic)| {
            let p = dir.path().join(format!("pattern-{s}.ppm"));
            write_ppm(pic, &p).expect("write PPM");
            p
        })
        .collect();

    // results[size] = per round (ours, tj)
    let mut results: Vec<Vec<Round>> = sizes.iter().map(|_| Vec::new()).collect();
    for round in 0..o.rounds {
        for (i, s) in sizes.iter().enumerate() {
            let (w, h) = (s.width as usize, s.height as usize);
            let ours = bench_ours(&pics[i], o.iters, Duration::from_secs_f64(o.max_seconds));
            let tjr = tj
                .as_ref()
                .map(|tj| bench_tj(tj, &ppms[i], w, h, o.benchtime));
            println!(
                "  round {} {s}: camstream mean {:.3} ms, median {:.3} ms ({} encodes, {} B JPEG); tjbench from RGB {} ms, from YUV {} ms",
                round + 1,
                ours.mean,
                ours.median,
                ours.iters,
                ours.jpeg_bytes,
                fmt_opt(tjr.as_ref().and_then(|t| t.from_rgb).map(|m| mpx_to_ms(m, w, h))),
                fmt_opt(tjr.as_ref().and_then(|t| t.from_yuv).map(|m| mpx_to_ms(m, w, h))),
            );
            results[i].push((ours, tjr));
        }
    }

    println!();
    println!("Median over {} rounds, ms per frame:", o.rounds);
    println!(
        "| size | camstream mean | camstream median | camstream min | tjbench YUV->JPEG (-yuv Comp) | tjbench RGB->JPEG | tjbench RGB->YUV step | camstream / tjbench YUV | JPEG bytes camstream / tjbench |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut verdicts = Vec::new();
    for (i, s) in sizes.iter().enumerate() {
        let (w, h) = (s.width as usize, s.height as usize);
        let r = &results[i];
        let med = |f: &dyn Fn(&Round) -> Option<f64>| {
            let mut v: Vec<f64> = r.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| median(&mut v))
        };
        let mean = med(&|x| Some(x.0.mean)).unwrap();
        let medn = med(&|x| Some(x.0.median)).unwrap();
        let min = med(&|x| Some(x.0.min)).unwrap();
        let tj_yuv = med(&|x| x.1.as_ref()?.from_yuv.map(|m| mpx_to_ms(m, w, h)));
        let tj_rgb = med(&|x| x.1.as_ref()?.from_rgb.map(|m| mpx_to_ms(m, w, h)));
        let tj_conv = med(&|x| x.1.as_ref()?.yuv_convert.map(|m| mpx_to_ms(m, w, h)));
        let ratio = tj_yuv.map(|t| medn / t);
        let tj_bytes = med(&|x| x.1.as_ref()?.jpeg_bytes);
        println!(
            "| {s} | {mean:.3} | {medn:.3} | {min:.3} | {} | {} | {} | {} | {} / {} |",
            fmt_opt(tj_yuv),
            fmt_opt(tj_rgb),
            fmt_opt(tj_conv),
            ratio
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "n/a".into()),
            r[0].0.jpeg_bytes,
            tj_bytes
                .map(|b| format!("{b:.0}"))
                .unwrap_or_else(|| "n/a".into())
        );
        verdicts.push(match ratio {
            Some(x) if x <= 1.10 => format!(
                "{s}: MET (camstream median is {:.0} % of tjbench's YUV compression time)",
                x * 100.0
            ),
            Some(x) => format!(
                "{s}: MISSED (camstream median is {:.0} % of tjbench's YUV compression time)",
                x * 100.0
            ),
            None => format!("{s}: not checked (no tjbench)"),
        });
    }
    println!();
    println!("Not part of the target, for context: Pattern::render (the picture the pattern source draws before each encode), median per frame:");
    for s in &sizes {
        let mut v: Vec<f64> = (0..o.rounds)
            .map(|_| bench_render(*s, o.iters, Duration::from_secs_f64(o.max_seconds)))
            .collect();
        println!("  {s}: {:.3} ms", median(&mut v));
    }
    println!();
    println!("Target (issue #2): camstream within 10 % of tjbench (compression from YUV, like for like):");
    for v in verdicts {
        println!("  {v}");
    }
}
