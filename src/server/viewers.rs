//! Admission control: where a viewer gets a slot or is refused.
//!
//! At most `--max-clients` viewers stream at once (and, with `--max-clients-per-ip`, at most
//! that many from one address). Admission is one atomic step, so the viewer past the limit is
//! refused at once with 503 and `Retry-After`, never queued. Admitted viewers go to the stream
//! senders ([`crate::server::stream`]).

use std::collections::HashMap;
use std::net::{IpAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::server::listener::ConnSlot;

/// One admitted viewer's place; frees the slot when dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.release(self.ip);
    }
}

/// Why a viewer was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Full {
    /// Every one of `--max-clients` slots is taken.
    All,
    /// This address already holds `--max-clients-per-ip` (the number) streams.
    PerAddress(usize),
}

/// Counts viewers against the limits.
pub struct Admission {
    max: usize,
    per_ip: Option<usize>,
    active: AtomicUsize,
    /// Streams per address; only kept with a per-address limit, and never holds an address
    /// without a stream, so it is bounded by `max`.
    by_ip: Mutex<HashMap<IpAddr, usize>>,
    gauge: prometheus::IntGauge,
}

impl Admission {
    pub fn new(max: usize, per_ip: Option<usize>, gauge: prometheus::IntGauge) -> Arc<Admission> {
        Arc::new(Admission {
            max,
            per_ip,
            active: AtomicUsize::new(0),
            by_ip: Mutex::default(),
            gauge,
        })
    }

    /// A slot for a viewer from `ip` if one is free; decided at once, never queued.
    pub fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Full> {
        if let Some(limit) = self.per_ip {
            let mut by_ip = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = by_ip.entry(ip).or_insert(0);
            if *n >= limit {
                return Err(Full::PerAddress(limit));
            }
            if self.take_global().is_err() {
                if *n == 0 {
                    by_ip.remove(&ip);
                }
                return Err(Full::All);
            }
            *n += 1;
        } else {
            self.take_global()?;
        }
        self.gauge.inc();
        Ok(Ticket {
            admission: Arc::clone(self),
            ip,
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
        if self.active() >= self.max {
            return Err(Full::All);
        }
        Ok(())
    }

    fn take_global(&self) -> Result<(), Full> {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .map(drop)
            .map_err(|_| Full::All)
    }

    fn release(&self, ip: IpAddr) {
        if self.per_ip.is_some() {
            let mut by_ip = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = by_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    by_ip.remove(&ip);
                }
            }
        }
        self.active.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }
}

/// An admitted viewer on its way to a stream sender.
pub struct ViewerJob {
    pub conn: TcpStream,
    pub slot: ConnSlot,
    pub ticket: Ticket,
    pub minor_version: u8,
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
        assert_eq!(a.check(ip(2)), Err(Full::All));
        assert_eq!(a.try_admit(ip(2)).err(), Some(Full::All));
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
        assert_eq!(a.try_admit(ip(4)).err(), Some(Full::All));
        assert!(a.by_ip.lock().unwrap().get(&ip(4)).is_none());
        drop(t);
        assert!(a.try_admit(ip(1)).is_ok());
    }
}
