//! Waits between revocation attempts: exponential, capped, with ±50% jitter so
//! leases that failed together do not retry together.

/// Seconds to wait after failure number `attempt` (1 for the first): `base`
/// doubled per earlier failure, at most `max`, then jittered by ±50%.
pub fn delay(attempt: u32, base: u64, max: u64) -> u64 {
    let exponent = attempt.saturating_sub(1).min(32);
    let nominal = base.max(1).saturating_mul(1u64 << exponent).min(max.max(1));
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("the OS random source failed");
    // A factor in [0.5, 1.5).
    let factor = 0.5 + (u64::from_le_bytes(random) as f64 / u64::MAX as f64);
    ((nominal as f64 * factor).round() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::delay;

    #[test]
    fn doubles_caps_and_jitters() {
        for _ in 0..100 {
            let first = delay(1, 10, 1800);
            assert!((5..=15).contains(&first), "{first}");
            let fourth = delay(4, 10, 1800);
            assert!((40..=120).contains(&fourth), "{fourth}");
            let late = delay(30, 10, 1800);
            assert!((900..=2700).contains(&late), "{late}");
        }
        let spread: std::collections::HashSet<u64> = (0..50).map(|_| delay(5, 10, 1800)).collect();
        assert!(spread.len() > 5, "jitter spreads retries: {spread:?}");
    }
}
