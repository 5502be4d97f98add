//! The raw archive's per-sample times: stepped from one sample to the next,
//! they are `sample_time`'s for any start, rate and index range, across
//! second boundaries and for rates that do not divide a second.

use meterflow::wire::samples::{extend_sample_times, sample_time};
use proptest::prelude::*;

fn check(start_ns: i64, rate: u32, first: u64, len: usize) {
    let mut times = vec![-1];
    extend_sample_times(&mut times, start_ns, rate, first, len);
    assert_eq!(times.len(), len + 1, "appends, keeping what was there");
    assert_eq!(times[0], -1);
    for (k, &t) in times[1..].iter().enumerate() {
        let n = first + k as u64;
        assert_eq!(t, sample_time(start_ns, rate, n), "rate {rate} index {n}");
    }
}

#[test]
fn stepped_times_are_the_divided_ones_at_common_rates() {
    let start = 1_767_225_600_123_456_789;
    for rate in [
        1, 3, 7, 8000, 32_000, 44_100, 48_000, 96_000, 999_983, 1_000_000,
    ] {
        let rate_u64 = u64::from(rate);
        for first in [0, 1, rate_u64 - 1, rate_u64, 5 * rate_u64 - 2, 123_456_789] {
            check(start, rate, first, 2 * rate.min(50_000) as usize + 3);
        }
    }
    check(start, 0, 4, 10);
    check(start, 8000, 0, 0);
}

proptest! {
    #[test]
    fn stepped_times_are_the_divided_ones(
        start in -2_000_000_000_000_000_000i64..4_000_000_000_000_000_000,
        rate in 1u32..=1_000_000,
        first in 0u64..1_000_000_000_000,
        len in 0usize..3000,
    ) {
        check(start, rate, first, len);
    }
}
