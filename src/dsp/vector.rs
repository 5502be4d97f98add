//! Hot loops compiled a second time for AVX2 and picked at run time.
//!
//! The default x86-64 target has 128-bit vectors only; the machines this
//! runs on mostly have 256-bit ones. [`wide_fn!`] defines a function that
//! runs an `#[inline(always)]` body compiled with AVX2 enabled when the CPU
//! has it, so the same portable loops vectorise twice as wide without a
//! build flag that would make the binary crash on older CPUs. No
//! floating-point contraction or reordering is enabled, so both paths give
//! identical bits.

/// `wide_fn!(pub fn name(args) -> Ret = body_fn);` defines `name`, which
/// calls `body_fn` (which must be `#[inline(always)]`) through an AVX2
/// copy when the CPU supports AVX2, and directly otherwise.
macro_rules! wide_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $body:path;) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn wide($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, the only feature `wide`
                    // is compiled for.
                    return unsafe { wide($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

pub(crate) use wide_fn;

#[cfg(test)]
mod tests {
    #[inline(always)]
    fn sum_squares_body(x: &[f32]) -> f64 {
        let mut lanes = [0.0f64; 4];
        let chunks = x.chunks_exact(4);
        let tail: f64 = chunks
            .remainder()
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum();
        for chunk in chunks {
            for (lane, &v) in lanes.iter_mut().zip(chunk) {
                *lane += f64::from(v) * f64::from(v);
            }
        }
        (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
    }

    wide_fn!(fn sum_squares(x: &[f32]) -> f64 = sum_squares_body;);

    #[test]
    fn gives_the_same_bits_as_the_plain_loop() {
        let x: Vec<f32> = (0..1001).map(|k| (k as f32 * 0.37).sin() * 325.0).collect();
        let plain = sum_squares_body(&x);
        let wide = sum_squares(&x);
        assert_eq!(plain.to_bits(), wide.to_bits());
        let expected: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum();
        assert!((plain - expected).abs() < 1e-9 * expected);
    }
}
