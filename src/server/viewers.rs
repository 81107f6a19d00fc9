//! Admission control: where a viewer gets a slot or is refused.
//!
//! At most `--max-clients` viewers stream at once (and, with `--max-clients-per-ip`, at most
//! that many from one address). Admission is one atomic step, so the viewer past the limit is
//! refused at once with 503 and `Retry-After`, never queued. Admitted viewers go to the stream
//! senders ([`crate::server::stream`]).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::server::conn::Conn;
use crate::server::permit::{Counter, Permit};

/// One admitted viewer's place; frees the slot when dropped.
pub struct Ticket {
    _permit: Permit,
    /// The per-address count to give back, with a per-address limit.
    per_ip: Option<(Arc<Admission>, IpAddr)>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some((admission, ip)) = &self.per_ip {
            admission.release_ip(*ip);
        }
    }
}

/// Why a viewer was refused; its `Display` is the one-line text of the 503.
#[derive(Debug, PartialEq, Eq)]
pub enum Full {
    /// Every one of `--max-clients` (the number) slots is taken.
    All(usize),
    /// This address already holds `--max-clients-per-ip` (the number) streams.
    PerAddress(usize),
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Full::All(n) => write!(f, "all {n} stream slots are taken; retry later"),
            Full::PerAddress(n) => {
                write!(f, "this address already has {n} streams open; retry later")
            }
        }
    }
}

/// Counts viewers against the limits.
pub struct Admission {
    slots: Counter,
    per_ip: Option<usize>,
    /// Streams per address; only kept with a per-address limit, and never holds an address
    /// without a stream, so it is bounded by `--max-clients`.
    by_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl Admission {
    pub fn new(max: usize, per_ip: Option<usize>, gauge: prometheus::IntGauge) -> Arc<Admission> {
        Arc::new(Admission {
            slots: Counter::limited(max, Some(gauge)),
            per_ip,
            by_ip: Mutex::default(),
        })
    }

    /// A slot for a viewer from `ip` if one is free; decided at once, never queued.
    pub fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Full> {
        let Some(limit) = self.per_ip else {
            let permit = self.slots.try_take().ok_or(self.all())?;
            return Ok(Ticket {
                _permit: permit,
                per_ip: None,
            });
        };
        let mut by_ip = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = by_ip.entry(ip).or_insert(0);
        if *n >= limit {
            return Err(Full::PerAddress(limit));
        }
        let Some(permit) = self.slots.try_take() else {
            if *n == 0 {
                by_ip.remove(&ip);
            }
            return Err(self.all());
        };
        *n += 1;
        Ok(Ticket {
            _permit: permit,
            per_ip: Some((Arc::clone(self), ip)),
        })
    }

    /// What [`Admission::try_admit`] would answer for `ip` now, without taking a slot (for
    /// HEAD, which must give the status a GET would get).
    pub fn check(&self, ip: IpAddr) -> Result<(), Full> {
        if let Some(limit) = self.per_ip {
            let by_ip = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
            if by_ip.get(&ip).is_some_and(|n| *n >= limit) {
                return Err(Full::PerAddress(limit));
            }
        }
        if self.slots.is_full() {
            return Err(self.all());
        }
        Ok(())
    }

    fn all(&self) -> Full {
        Full::All(self.slots.max())
    }

    fn release_ip(&self, ip: IpAddr) {
        let mut by_ip = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = by_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                by_ip.remove(&ip);
            }
        }
    }

    pub fn active(&self) -> usize {
        self.slots.held()
    }
}

/// An admitted viewer on its way to a stream sender.
pub struct ViewerJob {
    pub conn: Conn,
    pub ticket: Ticket,
    pub max_fps: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let gauge = prometheus::IntGauge::new("v", "v").unwrap();
        let a = Admission::new(2, None, gauge.clone());
        let t1 = a.try_admit(ip(1)).unwrap();
        let _t2 = a.try_admit(ip(1)).unwrap();
        assert_eq!(a.check(ip(2)), Err(Full::All(2)));
        assert_eq!(a.try_admit(ip(2)).err(), Some(Full::All(2)));
        assert_eq!(gauge.get(), 2);
        drop(t1);
        assert_eq!(gauge.get(), 1);
        assert!(a.try_admit(ip(3)).is_ok());
    }

    #[test]
    fn the_per_address_limit_leaves_room_for_others() {
        let gauge = prometheus::IntGauge::new("v", "v").unwrap();
        let a = Admission::new(3, Some(1), gauge);
        assert_eq!(a.check(ip(1)), Ok(()));
        let t = a.try_admit(ip(1)).unwrap();
        assert_eq!(a.check(ip(1)), Err(Full::PerAddress(1)));
        assert_eq!(a.try_admit(ip(1)).err(), Some(Full::PerAddress(1)));
        let _b = a.try_admit(ip(2)).unwrap();
        let _c = a.try_admit(ip(3)).unwrap();
        assert_eq!(a.try_admit(ip(4)).err(), Some(Full::All(3)));
        assert!(a.by_ip.lock().unwrap().get(&ip(4)).is_none());
        drop(t);
        assert!(a.try_admit(ip(1)).is_ok());
    }

    #[test]
    fn a_refusal_says_which_limit() {
        assert_eq!(
            Full::All(5).to_string(),
            "all 5 stream slots are taken; retry later"
        );
        assert_eq!(
            Full::PerAddress(2).to_string(),
            "this address already has 2 streams open; retry later"
        );
    }
}
