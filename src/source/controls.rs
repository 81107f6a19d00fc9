//! Camera controls (focus, exposure, white balance, …): their model, names and value parsing,
//! and reading and setting them on a V4L2 device.
//!
//! Names are V4L2's, normalised the way `v4l2-ctl` does ("Focus, Automatic Continuous" is
//! `focus_automatic_continuous`), so a name found in `v4l2-ctl --list-ctrls` works here too.
//! Menu values can be given by number or by (normalised) name.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;

use serde::Serialize;
use v4l::control::{Description, Flags, MenuItem, Type, Value};
use v4l::Device;

/// What kind of value a control takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Integer,
    Boolean,
    Menu,
    IntegerMenu,
    Button,
    Integer64,
    /// Strings, bitmasks and compound controls: shown, but not settable here.
    Other,
}

impl Kind {
    fn of(t: Type) -> Kind {
        match t {
            Type::Integer => Kind::Integer,
            Type::Boolean => Kind::Boolean,
            Type::Menu => Kind::Menu,
            Type::IntegerMenu => Kind::IntegerMenu,
            Type::Button => Kind::Button,
            Type::Integer64 => Kind::Integer64,
            _ => Kind::Other,
        }
    }

    /// Short name for text output.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Integer => "int",
            Kind::Boolean => "bool",
            Kind::Menu => "menu",
            Kind::IntegerMenu => "intmenu",
            Kind::Button => "button",
            Kind::Integer64 => "int64",
            Kind::Other => "other",
        }
    }
}

/// One entry of a menu control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MenuEntry {
    pub value: i64,
    pub name: String,
}

/// A control as the camera describes it, with its current value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Control {
    /// The normalised name, e.g. `focus_absolute`.
    pub name: String,
    /// The driver's own name, e.g. `Focus, Absolute`.
    pub label: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub min: i64,
    pub max: i64,
    pub step: u64,
    pub default: i64,
    /// The current value; `None` for buttons, write-only controls or when reading it failed.
    pub value: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub menu: Vec<MenuEntry>,
    /// Set while another control overrides this one (manual focus while autofocus is on).
    pub inactive: bool,
    pub read_only: bool,
    #[serde(skip)]
    pub id: u32,
}

/// `NAME=VALUE`, as given to `--control`, `camstream controls` or `POST /controls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Normalised.
    pub name: String,
    pub value: String,
}

impl FromStr for Assignment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| format!("'{s}' is not NAME=VALUE (e.g. focus_absolute=100)"))?;
        let name = normalise(name);
        if name.is_empty() || value.trim().is_empty() {
            return Err(format!("'{s}' is not NAME=VALUE (e.g. focus_absolute=100)"));
        }
        Ok(Assignment {
            name,
            value: value.trim().to_string(),
        })
    }
}

impl std::fmt::Display for Assignment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

/// Parses a comma-separated list of assignments (`CAMSTREAM_CONTROLS`).
pub fn parse_list(s: &str) -> Result<Vec<Assignment>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// A control name as `v4l2-ctl` spells it: lowercase ASCII letters and digits, each run of
/// anything else between them one `_`.
pub fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    out
}

impl Control {
    /// Turns `raw` into the number to set, or says (naming the control) why it is not valid.
    /// Integers must be in range; the driver rounds to the step.
    pub fn parse_value(&self, raw: &str) -> Result<i64, String> {
        let n = &self.name;
        if self.read_only {
            return Err(format!("control {n} is read-only"));
        }
        match self.kind {
            Kind::Boolean => match raw.to_ascii_lowercase().as_str() {
                "1" | "true" | "on" | "yes" => Ok(1),
                "0" | "false" | "off" | "no" => Ok(0),
                _ => Err(format!(
                    "control {n}: '{raw}' is not a boolean (use 0 or 1, true or false)"
                )),
            },
            Kind::Menu | Kind::IntegerMenu => {
                let wanted = normalise(raw);
                let found = self.menu.iter().find(|e| {
                    raw.parse::<i64>().is_ok_and(|v| v == e.value)
                        || (!wanted.is_empty() && normalise(&e.name) == wanted)
                });
                found.map(|e| e.value).ok_or_else(|| {
                    format!(
                        "control {n}: '{raw}' is not one of its entries ({})",
                        self.range_text()
                    )
                })
            }
            Kind::Integer | Kind::Integer64 => {
                let v: i64 = raw
                    .parse()
                    .map_err(|_| format!("control {n}: '{raw}' is not an integer"))?;
                if v < self.min || v > self.max {
                    return Err(format!(
                        "control {n}: {v} is out of range ({})",
                        self.range_text()
                    ));
                }
                Ok(v)
            }
            Kind::Button => Ok(1),
            Kind::Other => Err(format!("control {n} has a type camstream cannot set")),
        }
    }

    /// The valid values in words: `0..250 step 5`, `0 or 1`, `1: Manual Mode, 3: …`.
    pub fn range_text(&self) -> String {
        match self.kind {
            Kind::Boolean => "0 or 1".into(),
            Kind::Menu | Kind::IntegerMenu => {
                let e: Vec<String> = self
                    .menu
                    .iter()
                    .map(|e| format!("{}: {}", e.value, e.name))
                    .collect();
                e.join(", ")
            }
            Kind::Button => "any value presses it".into(),
            _ => format!("{}..{} step {}", self.min, self.max, self.step),
        }
    }

    /// One line for `list` and `controls`.
    pub fn text_line(&self) -> String {
        let mut s = format!(
            "{} ({})  {}  default {}",
            self.name,
            self.kind.label(),
            self.range_text(),
            self.default
        );
        if let Some(v) = self.value {
            s += &format!("  value {v}");
            if let Some(e) = self.menu.iter().find(|e| e.value == v) {
                s += &format!(" ({})", e.name);
            }
        }
        if self.inactive {
            s += "  inactive";
        }
        if self.read_only {
            s += "  read-only";
        }
        s
    }
}

/// Finds the control an assignment names and checks its value: `(control, value)`, or a
/// message naming the control and what is valid.
pub fn resolve<'a>(controls: &'a [Control], a: &Assignment) -> Result<(&'a Control, i64), String> {
    let c = controls.iter().find(|c| c.name == a.name).ok_or_else(|| {
        let names: Vec<&str> = controls.iter().map(|c| c.name.as_str()).collect();
        if names.is_empty() {
            format!("unknown control {} (the camera has no controls)", a.name)
        } else {
            format!(
                "unknown control {} (controls: {})",
                a.name,
                names.join(", ")
            )
        }
    })?;
    Ok((c, c.parse_value(&a.value)?))
}

/// Why setting a control failed.
#[derive(Debug)]
pub enum SetError {
    /// A name or value that is not valid for this camera (a usage error, HTTP 400).
    Invalid(String),
    /// The driver refused (HTTP 409 for EBUSY/EACCES, else 502); names the control.
    Driver { control: String, error: io::Error },
}

impl std::fmt::Display for SetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetError::Invalid(m) => f.write_str(m),
            SetError::Driver { control, error } => {
                write!(f, "the camera refused control {control}: {error}")
            }
        }
    }
}

impl std::error::Error for SetError {}

/// The device's controls with their current values; an empty list for a device without any.
/// Control classes (headings such as "User Controls") are left out.
pub fn query(dev: &Device) -> io::Result<Vec<Control>> {
    // v4l unwraps a control's type and its UTF-8 name and panics on anything else; a camera
    // that reports such a control must not take the capture thread down.
    let described = catch_unwind(AssertUnwindSafe(|| dev.query_controls())).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the camera describes a control camstream cannot read (unknown type or a name that \
             is not UTF-8)",
        )
    })?;
    let described = match described {
        Ok(d) => d,
        // The first query failing means: no controls at all.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTTY)) => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(described
        .into_iter()
        .filter(|d| d.typ != Type::CtrlClass && !d.flags.contains(Flags::DISABLED))
        .map(|d| describe(dev, d))
        .collect())
}

fn describe(dev: &Device, d: Description) -> Control {
    let kind = Kind::of(d.typ);
    let readable = matches!(
        kind,
        Kind::Integer | Kind::Boolean | Kind::Menu | Kind::IntegerMenu | Kind::Integer64
    ) && !d.flags.contains(Flags::WRITE_ONLY);
    let value = if readable {
        match dev.control(d.id).map(|c| c.value) {
            Ok(Value::Integer(v)) => Some(v),
            Ok(Value::Boolean(b)) => Some(i64::from(b)),
            _ => None,
        }
    } else {
        None
    };
    let menu = d
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|(index, item)| MenuEntry {
            value: i64::from(index),
            name: match item {
                MenuItem::Name(s) => s,
                MenuItem::Value(v) => v.to_string(),
            },
        })
        .collect();
    Control {
        name: normalise(&d.name),
        label: d.name,
        kind,
        min: d.minimum,
        max: d.maximum,
        step: d.step,
        default: d.default,
        value,
        menu,
        inactive: d.flags.contains(Flags::INACTIVE),
        read_only: d.flags.contains(Flags::READ_ONLY) || d.flags.contains(Flags::GRABBED),
        id: d.id,
    }
}

/// Sets the assignments one after the other (so autofocus can be turned off before the focus
/// is set). All names and values are checked first, so that a typo changes nothing; the first
/// control the driver refuses stops the rest. Returns the controls afterwards, with the values
/// the driver accepted.
pub fn apply(dev: &Device, assignments: &[Assignment]) -> Result<Vec<Control>, SetError> {
    let driver = |control: &str| {
        let control = control.to_string();
        move |error| SetError::Driver { control, error }
    };
    let mut controls = query(dev).map_err(driver("(list)"))?;
    let mut checked = Vec::with_capacity(assignments.len());
    for a in assignments {
        let (c, v) = resolve(&controls, a).map_err(SetError::Invalid)?;
        checked.push((c.name.clone(), v));
    }
    for (name, v) in checked {
        let Some(c) = controls.iter().find(|c| c.name == name) else {
            continue; // cannot happen: the list came from the same device
        };
        set_one(dev, c, v).map_err(|e| {
            // uvcvideo refuses a manual control while its automatic one is on.
            let hint = if c.inactive && e.raw_os_error() == Some(libc::EACCES) {
                " (it is inactive: turn its automatic control off first)"
            } else {
                ""
            };
            SetError::Driver {
                control: format!("{name}{hint}"),
                error: e,
            }
        })?;
        controls = query(dev).map_err(driver(&name))?;
    }
    Ok(controls)
}

fn set_one(dev: &Device, c: &Control, v: i64) -> io::Result<()> {
    let value = match c.kind {
        Kind::Boolean => Value::Boolean(v != 0),
        Kind::Button => Value::None,
        _ => Value::Integer(v),
    };
    dev.set_control(v4l::control::Control { id: c.id, value })
}

/// Applies `--control` settings when a camera opens: each failure (an unknown name, a value
/// out of range, the driver refusing) is a warning naming the control, and the rest still
/// apply, so the stream starts anyway.
pub fn apply_at_open(dev: &Device, what: &str, assignments: &[Assignment]) {
    if assignments.is_empty() {
        return;
    }
    let mut controls = match query(dev) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("{what}: cannot read the controls to apply --control: {e}");
            return;
        }
    };
    for a in assignments {
        match resolve(&controls, a) {
            Err(m) => log::warn!("{what}: --control {a} not applied: {m}"),
            Ok((c, v)) => match set_one(dev, c, v) {
                Err(e) => log::warn!("{what}: --control {a} not applied: control {}: {e}", c.name),
                Ok(()) => {
                    log::debug!("{what}: applied --control {a}");
                    if let Ok(fresh) = query(dev) {
                        controls = fresh;
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_like_v4l2_ctl() {
        assert_eq!(
            normalise("Focus, Automatic Continuous"),
            "focus_automatic_continuous"
        );
        assert_eq!(
            normalise("Exposure Time, Absolute"),
            "exposure_time_absolute"
        );
        assert_eq!(
            normalise("White Balance, Automatic"),
            "white_balance_automatic"
        );
        assert_eq!(normalise("  Power Line Frequency "), "power_line_frequency");
        assert_eq!(normalise("brightness"), "brightness");
        assert_eq!(normalise("(x)--Y"), "x_y");
    }

    #[test]
    fn assignments_parse_and_normalise_their_name() {
        let a: Assignment = "Focus, Absolute=100".parse().unwrap();
        assert_eq!(a.name, "focus_absolute");
        assert_eq!(a.value, "100");
        assert!("focus".parse::<Assignment>().is_err());
        assert!("=3".parse::<Assignment>().is_err());
        assert!("focus=".parse::<Assignment>().is_err());
        assert_eq!(parse_list("a=1, b=2,").unwrap().len(), 2);
    }

    fn ctl(name: &str, kind: Kind, min: i64, max: i64, menu: &[(i64, &str)]) -> Control {
        Control {
            name: name.into(),
            label: name.into(),
            kind,
            min,
            max,
            step: 1,
            default: min,
            value: Some(min),
            menu: menu
                .iter()
                .map(|&(value, name)| MenuEntry {
                    value,
                    name: name.into(),
                })
                .collect(),
            inactive: false,
            read_only: false,
            id: 1,
        }
    }

    #[test]
    fn values_are_checked_against_the_control() {
        let b = ctl("brightness", Kind::Integer, -64, 64, &[]);
        assert_eq!(b.parse_value("-3"), Ok(-3));
        let e = b.parse_value("100").unwrap_err();
        assert!(e.contains("brightness") && e.contains("-64..64"), "{e}");
        assert!(b.parse_value("x").unwrap_err().contains("not an integer"));
        let f = ctl("focus_automatic_continuous", Kind::Boolean, 0, 1, &[]);
        assert_eq!(f.parse_value("off"), Ok(0));
        assert_eq!(f.parse_value("1"), Ok(1));
        assert!(f.parse_value("2").is_err());
        let m = ctl(
            "auto_exposure",
            Kind::Menu,
            0,
            3,
            &[(1, "Manual Mode"), (3, "Aperture Priority Mode")],
        );
        assert_eq!(m.parse_value("1"), Ok(1));
        assert_eq!(m.parse_value("manual_mode"), Ok(1));
        assert_eq!(m.parse_value("Aperture Priority Mode"), Ok(3));
        let e = m.parse_value("0").unwrap_err();
        assert!(
            e.contains("1: Manual Mode, 3: Aperture Priority Mode"),
            "{e}"
        );
        let mut ro = b.clone();
        ro.read_only = true;
        assert!(ro.parse_value("1").unwrap_err().contains("read-only"));
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let cs = [
            ctl("brightness", Kind::Integer, 0, 9, &[]),
            ctl("contrast", Kind::Integer, 0, 9, &[]),
        ];
        let e = resolve(&cs, &"focus=1".parse().unwrap()).unwrap_err();
        assert_eq!(e, "unknown control focus (controls: brightness, contrast)");
        let (c, v) = resolve(&cs, &"Contrast=4".parse().unwrap()).unwrap();
        assert_eq!((c.name.as_str(), v), ("contrast", 4));
    }
}
