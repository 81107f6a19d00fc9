//! Counted limits: one RAII [`Permit`] type for every "at most N at once" in the server (open
//! connections, stream viewers) and for counts without a limit (a sender's clients). A permit
//! is taken in one atomic step and given back by `Drop`, so nothing is ever decremented by hand
//! and an early return cannot leak a slot.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A count of holders, optionally capped, optionally mirrored in a Prometheus gauge.
#[derive(Clone)]
pub struct Counter {
    inner: Arc<Inner>,
}

struct Inner {
    held: AtomicUsize,
    max: usize,
    gauge: Option<prometheus::IntGauge>,
}

impl Counter {
    /// A counter that hands out at most `max` permits at once.
    pub fn limited(max: usize, gauge: Option<prometheus::IntGauge>) -> Counter {
        Counter {
            inner: Arc::new(Inner {
                held: AtomicUsize::new(0),
                max,
                gauge,
            }),
        }
    }

    /// A counter without a limit (it only counts).
    pub fn unlimited() -> Counter {
        Counter::limited(usize::MAX, None)
    }

    /// A permit if fewer than the limit are held; decided at once, never queued.
    pub fn try_take(&self) -> Option<Permit> {
        let max = self.inner.max;
        self.inner
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        if let Some(g) = &self.inner.gauge {
            g.inc();
        }
        Some(Permit {
            inner: Arc::clone(&self.inner),
        })
    }

    /// Permits held now.
    pub fn held(&self) -> usize {
        self.inner.held.load(Ordering::Acquire)
    }

    /// Whether a permit would be refused now.
    pub fn is_full(&self) -> bool {
        self.held() >= self.inner.max
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.inner.max
    }
}

/// One holder's place; given back when dropped.
pub struct Permit {
    inner: Arc<Inner>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.inner.held.fetch_sub(1, Ordering::AcqRel);
        if let Some(g) = &self.inner.gauge {
            g.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_capped_and_given_back_on_drop() {
        let gauge = prometheus::IntGauge::new("g", "g").unwrap();
        let c = Counter::limited(2, Some(gauge.clone()));
        let a = c.try_take().unwrap();
        let _b = c.try_take().unwrap();
        assert!(c.try_take().is_none());
        assert!(c.is_full());
        assert_eq!((c.held(), gauge.get()), (2, 2));
        drop(a);
        assert_eq!((c.held(), gauge.get()), (1, 1));
        assert!(c.try_take().is_some());
    }

    #[test]
    fn an_unlimited_counter_only_counts() {
        let c = Counter::unlimited();
        let held: Vec<_> = (0..1000).map(|_| c.try_take().unwrap()).collect();
        assert_eq!(c.held(), 1000);
        drop(held);
        assert_eq!(c.held(), 0);
    }
}
