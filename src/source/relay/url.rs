//! The upstream URL of a relay source: parsed once by `--source`, shown everywhere without its
//! password (and without the values of query parameters that look like one, as Foscam-style
//! cameras take `?user=admin&pwd=secret`).

use std::fmt;

/// An `http://` URL with its parts separated. `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayUrl {
    /// The host as written (a name, an IPv4 address, or an IPv6 address without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query as sent in the request line, e.g. `/?action=stream`; never empty.
    pub target: String,
    /// User and password from the URL's userinfo, percent-decoded.
    pub user: Option<String>,
    pub password: Option<String>,
}

impl RelayUrl {
    /// Parses `http://[user[:password]@]host[:port][/path][?query]`.
    pub fn parse(s: &str) -> Result<RelayUrl, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("'{}' is not an http:// URL", redact_str(s)))?;
        if scheme.eq_ignore_ascii_case("https") {
            return Err(format!(
                "'{}': https upstreams are not supported; use the camera's http:// URL on a \
                 trusted network",
                redact_str(s)
            ));
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!("'{}' is not an http:// URL", redact_str(s)));
        }
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let target = match target.split_once('#') {
            Some((t, _)) => t,
            None => target,
        };
        let target = if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_string()
        };
        if target.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(format!(
                "'{}': the path has spaces or control characters (percent-encode them)",
                redact_str(s)
            ));
        }
        // The last '@' ends the userinfo: passwords may contain '@' even unencoded.
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pw) = match u.split_once(':') {
                    Some((user, pw)) => (user, Some(pw)),
                    None => (u, None),
                };
                let user = percent_decode(user)
                    .ok_or_else(|| format!("'{}': bad %-escape in the user", redact_str(s)))?;
                let pw = pw
                    .map(|p| {
                        percent_decode(p).ok_or_else(|| {
                            format!("'{}': bad %-escape in the password", redact_str(s))
                        })
                    })
                    .transpose()?;
                ((!user.is_empty()).then_some(user), pw)
            }
        };
        let (host, port) = split_host_port(hostport)
            .ok_or_else(|| format!("'{}' has no valid host[:port]", redact_str(s)))?;
        Ok(RelayUrl {
            host,
            port,
            target,
            user,
            password,
        })
    }

    /// `host:port` as it goes in the `Host` header (IPv6 in brackets; port 80 left out).
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for RelayUrl {
    /// The URL with the user but never the password, and with password-like query values
    /// replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("http://")?;
        if let Some(u) = &self.user {
            write!(f, "{}@", percent_encode_userinfo(u))?;
        }
        write!(f, "{}{}", self.host_header(), redact_query(&self.target))
    }
}

impl fmt::Debug for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelayUrl({self})")
    }
}

/// Query parameter names whose values are hidden when a URL is shown.
fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["pass", "pwd", "token", "secret", "auth", "key"]
        .iter()
        .any(|w| n.contains(w))
}

fn redact_query(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_string();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if is_secret_param(k) => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{path}?{}", params.join("&"))
}

/// A URL string that did not parse, shown without anything that may be a password: the
/// userinfo is cut out and the query redacted.
pub fn redact_str(s: &str) -> String {
    let (scheme, rest) = match s.split_once("://") {
        Some((a, b)) => (format!("{a}://"), b),
        None => (String::new(), s),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    let authority = match authority.rfind('@') {
        Some(i) => {
            let user = authority[..i].split(':').next().unwrap_or("");
            format!("{user}@{}", &authority[i + 1..])
        }
        None => authority.to_string(),
    };
    format!("{scheme}{authority}{}", redact_query(target))
}

fn split_host_port(hp: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = hp.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        h.parse::<std::net::Ipv6Addr>().ok()?;
        (h, after.strip_prefix(':'))
    } else {
        match hp.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hp, None),
        }
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' || c == ':';
    if host.is_empty() || !host.chars().all(valid) {
        return None;
    }
    let port = match port {
        None => 80,
        Some(p) => p.parse().ok().filter(|&p| p != 0)?,
    };
    Some((host.to_string(), port))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_camera_url_styles() {
        let u = RelayUrl::parse("http://192.168.1.20/video.cgi").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("192.168.1.20", 80, "/video.cgi")
        );
        let u = RelayUrl::parse("http://user:p%40ss:w@rd@cam.local:8080/?action=stream").unwrap();
        assert_eq!(u.host, "cam.local");
        assert_eq!(u.port, 8080);
        assert_eq!(u.target, "/?action=stream");
        assert_eq!(u.user.as_deref(), Some("user"));
        assert_eq!(u.password.as_deref(), Some("p@ss:w@rd"));
        let u = RelayUrl::parse("http://cam?action=stream").unwrap();
        assert_eq!(u.target, "/?action=stream");
        let u = RelayUrl::parse("HTTP://[::1]:81").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("::1", 81, "/")
        );
        assert_eq!(u.host_header(), "[::1]:81");
        for bad in [
            "http://",
            "http://:80/",
            "http://cam:0/",
            "http://cam:x/",
            "http://[zz]/",
            "ftp://cam/",
            "http://cam/a b",
            "http://a%zz@cam/",
        ] {
            assert!(RelayUrl::parse(bad).is_err(), "{bad}");
        }
        let e = RelayUrl::parse("https://admin:hunter2@cam/").unwrap_err();
        assert!(e.contains("https") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn never_shows_a_password() {
        let u = RelayUrl::parse(
            "http://admin:hunter2@cam:8080/videostream.cgi?user=admin&pwd=hunter2&rate=0",
        )
        .unwrap();
        let shown = format!("{u} {u:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            u.to_string(),
            "http://admin@cam:8080/videostream.cgi?user=admin&pwd=***&rate=0"
        );
        let e = RelayUrl::parse("http://admin:hunter2@cam:99999/").unwrap_err();
        assert!(
            !e.contains("hunter2") && e.contains("admin@cam:99999"),
            "{e}"
        );
        assert!(!redact_str("http://a:b@c/?token=x").contains('b'));
    }

    #[test]
    fn source_flag_takes_http_urls_and_shows_them_redacted() {
        use crate::settings::{parse_source, SourceSpec};
        let spec = parse_source("http://admin:hunter2@cam/video.cgi").unwrap();
        assert!(matches!(spec, SourceSpec::Relay(_)));
        assert_eq!(spec.to_string(), "http://admin@cam/video.cgi");
        assert!(!format!("{spec:?}").contains("hunter2"));
        let e = parse_source("https://admin:hunter2@cam/").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse_source("rtsp://admin:hunter2@cam/").unwrap_err();
        assert!(!e.contains("hunter2") && e.contains("http://"), "{e}");
    }
}
