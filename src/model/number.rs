//! Numbers in messages as people write them: an error about `1e300` says
//! `1e300`, not the 301 digits `{}` prints for an `f64`.

/// `value` in plain notation between 0.001 and 1e6, else in exponent
/// notation (`1e20`, `5e-324`); the shortest form that reads back exactly.
pub fn compact_number(value: f64) -> String {
    let magnitude = value.abs();
    if value.is_finite() && magnitude != 0.0 && !(1e-3..1e6).contains(&magnitude) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_written() {
        assert_eq!(compact_number(1e300), "1e300");
        assert_eq!(compact_number(-1e300), "-1e300");
        assert_eq!(compact_number(5e-324), "5e-324");
        assert_eq!(compact_number(f64::MAX), "1.7976931348623157e308");
        assert_eq!(compact_number(230.0), "230");
        assert_eq!(compact_number(0.5), "0.5");
        assert_eq!(compact_number(-0.0), "-0");
        assert_eq!(compact_number(f64::NAN), "NaN");
        assert_eq!(compact_number(f64::NEG_INFINITY), "-inf");
        assert_eq!(compact_number(1e6), "1e6");
        assert_eq!(compact_number(999_999.5), "999999.5");
    }
}
