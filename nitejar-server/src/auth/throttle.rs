//! Failed credentials are counted per client address; an address that keeps failing is refused for
//! a while (429 with `Retry-After`), longer each time, while every other address goes on as before.
//!
//! A generated admin token carries 256 random bits and is not guessable at any rate; an operator's
//! own `NITEJAR_ADMIN_TOKEN` has at least 16 characters but may be weaker. The throttle makes
//! guessing slow without slowing anyone else: `max_failures` failed attempts (a wrong bearer token
//! or a wrong sign-in) within `window` lock the address out for `lockout`; each further lockout of
//! the same address doubles, up to [`MAX_LOCKOUT`]; an hour without failures forgets it. While an
//! address is locked out its attempts are refused *before* the credential is compared, so a lockout
//! also hides whether a guess was right.
//!
//! IPv6 clients are counted per /64 (one host usually holds a whole /64), IPv4 per address. The
//! table is bounded; past `MAX_TRACKED` (65 536) addresses the quietest are forgotten first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest lockout, however often an address fails.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(3600);
/// Addresses tracked at most.
const MAX_TRACKED: usize = 65_536;

/// How many failures lock an address out, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failed attempts within `window` that lock an address out.
    pub max_failures: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// The first lockout; each further one doubles.
    pub lockout: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            max_failures: 10,
            window: Duration::from_secs(300),
            lockout: Duration::from_secs(60),
        }
    }
}

/// What a failure did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Counted; the address may go on.
    Counted,
    /// This failure locked the address out for this long (the moment to log it, once).
    LockedOut(Duration),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    window_start: Instant,
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
    /// Lockouts so far (each doubles the next).
    strikes: u32,
}

/// The per-address failure table.
#[derive(Debug)]
pub struct Throttle {
    policy: ThrottlePolicy,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

/// The key an address is counted under: IPv4 (and IPv4-mapped IPv6) per address, IPv6 per /64.
pub fn client_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                for s in &mut segments[4..] {
                    *s = 0;
                }
                IpAddr::V6(segments.into())
            }
        },
    }
}

impl Throttle {
    /// An empty table with this policy.
    pub fn new(policy: ThrottlePolicy) -> Throttle {
        Throttle {
            policy: ThrottlePolicy {
                max_failures: policy.max_failures.max(1),
                ..policy
            },
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> ThrottlePolicy {
        self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        // Each update is a few field writes on one entry: a panic elsewhere leaves it usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(retry_after)` while `addr` is locked out.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        match self
            .lock()
            .get(&client_key(addr))
            .and_then(|e| e.locked_until)
        {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failed attempt from `addr`.
    pub fn fail(&self, addr: IpAddr, now: Instant) -> Failure {
        let key = client_key(addr);
        let mut entries = self.lock();
        if !entries.contains_key(&key) && entries.len() >= MAX_TRACKED {
            self.forget_quiet(&mut entries, now);
        }
        let entry = entries.entry(key).or_insert(Entry {
            window_start: now,
            failures: 0,
            last_failure: now,
            locked_until: None,
            strikes: 0,
        });
        // Strikes are forgotten after an hour without failures, counted from the end of the last
        // lockout (an hour-long lockout is not itself an hour of good behaviour).
        let quiet_since = entry
            .locked_until
            .map_or(entry.last_failure, |until| until.max(entry.last_failure));
        if now.saturating_duration_since(quiet_since) >= MAX_LOCKOUT {
            entry.strikes = 0;
        }
        if now.saturating_duration_since(entry.window_start) >= self.policy.window {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures += 1;
        entry.last_failure = now;
        if entry.failures < self.policy.max_failures {
            return Failure::Counted;
        }
        entry.strikes = entry.strikes.saturating_add(1);
        let doublings = entry.strikes.saturating_sub(1).min(16);
        let lockout = self
            .policy
            .lockout
            .saturating_mul(1u32 << doublings)
            .min(MAX_LOCKOUT);
        entry.locked_until = Some(now + lockout);
        entry.failures = 0;
        entry.window_start = now;
        Failure::LockedOut(lockout)
    }

    /// Addresses currently locked out (for `/metrics`).
    pub fn locked_out(&self, now: Instant) -> usize {
        self.lock()
            .values()
            .filter(|e| e.locked_until.is_some_and(|u| u > now))
            .count()
    }

    /// Makes room: drops what no longer matters (not locked out, window over, strikes forgotten),
    /// then, if still full, the half that failed longest ago.
    fn forget_quiet(&self, entries: &mut HashMap<IpAddr, Entry>, now: Instant) {
        entries.retain(|_, e| {
            e.locked_until.is_some_and(|u| u > now)
                || now.saturating_duration_since(e.last_failure) < self.policy.window
                || (e.strikes > 0 && now.saturating_duration_since(e.last_failure) < MAX_LOCKOUT)
        });
        if entries.len() >= MAX_TRACKED {
            let mut ages: Vec<Instant> = entries.values().map(|e| e.last_failure).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            entries.retain(|_, e| e.last_failure > cutoff);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(10),
        }
    }

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 6));

    #[test]
    fn an_address_is_locked_out_after_max_failures_and_others_are_not() {
        let t = Throttle::new(policy());
        let t0 = Instant::now();
        assert_eq!(t.fail(A, t0), Failure::Counted);
        assert_eq!(t.fail(A, t0), Failure::Counted);
        assert_eq!(t.check(A, t0), Ok(()));
        assert_eq!(t.fail(A, t0), Failure::LockedOut(Duration::from_secs(10)));
        assert_eq!(t.check(A, t0), Err(Duration::from_secs(10)));
        assert_eq!(
            t.check(A, t0 + Duration::from_secs(4)),
            Err(Duration::from_secs(6))
        );
        assert_eq!(t.check(B, t0), Ok(()), "another address is not slowed");
        assert_eq!(t.locked_out(t0), 1);
        assert_eq!(t.check(A, t0 + Duration::from_secs(10)), Ok(()));
        assert_eq!(t.locked_out(t0 + Duration::from_secs(10)), 0);
    }

    #[test]
    fn each_further_lockout_doubles_up_to_an_hour() {
        let t = Throttle::new(policy());
        let mut now = Instant::now();
        let mut lockouts = Vec::new();
        for _ in 0..12 {
            let mut last = Failure::Counted;
            for _ in 0..3 {
                last = t.fail(A, now);
            }
            let Failure::LockedOut(d) = last else {
                panic!("not locked out: {last:?}");
            };
            lockouts.push(d.as_secs());
            now += d;
        }
        assert_eq!(&lockouts[..5], &[10, 20, 40, 80, 160]);
        assert_eq!(*lockouts.last().unwrap_or(&0), MAX_LOCKOUT.as_secs());
    }

    #[test]
    fn failures_outside_the_window_and_strikes_after_a_quiet_hour_are_forgotten() {
        let t = Throttle::new(policy());
        let t0 = Instant::now();
        t.fail(A, t0);
        t.fail(A, t0);
        // The window is over: counting starts again.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(t.fail(A, later), Failure::Counted);
        assert_eq!(t.fail(A, later), Failure::Counted);
        assert_eq!(
            t.fail(A, later),
            Failure::LockedOut(Duration::from_secs(10))
        );
        // An hour without failures after that lockout ended: the next lockout is the first again.
        let much_later = later + Duration::from_secs(10) + MAX_LOCKOUT;
        for _ in 0..2 {
            t.fail(A, much_later);
        }
        assert_eq!(
            t.fail(A, much_later),
            Failure::LockedOut(Duration::from_secs(10))
        );
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap_or(A);
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap_or(A);
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(A);
        assert_eq!(client_key(one), client_key(same_64));
        assert_ne!(client_key(one), client_key(other_64));
        let mapped = IpAddr::V6(Ipv4Addr::new(203, 0, 113, 5).to_ipv6_mapped());
        assert_eq!(client_key(mapped), A);
        assert_eq!(
            client_key(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        );
        let t = Throttle::new(policy());
        let now = Instant::now();
        for _ in 0..3 {
            t.fail(one, now);
        }
        assert!(t.check(same_64, now).is_err());
        assert!(t.check(other_64, now).is_ok());
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = Throttle::new(policy());
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            t.fail(IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i)), now);
        }
        assert!(t.lock().len() <= MAX_TRACKED);
    }
}
