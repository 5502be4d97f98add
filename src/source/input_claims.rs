//! Which input of a batch delivered which stretch of each device's samples,
//! so two different files holding one device's samples for the same time
//! (a copy in another folder, overlapping exports) give every window once:
//! the input whose block would overlap a stretch another input already
//! delivered is refused from that block on, naming both inputs.

use std::collections::HashMap;
use std::sync::Mutex;

/// The stretch of one device's samples one input delivered, ns since the
/// epoch, end exclusive.
#[derive(Debug, Clone)]
struct Claim {
    input: usize,
    start_ns: i64,
    end_ns: i64,
}

/// Two inputs hold samples of one device for the same time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The input that delivered them first.
    pub other_input: usize,
    /// Where the refused block starts, ns since the epoch.
    pub at_ns: i64,
}

/// The claims of every input of one batch run, shared by its jobs.
#[derive(Debug, Default)]
pub struct InputClaims {
    per_device: Mutex<HashMap<String, Vec<Claim>>>,
}

impl InputClaims {
    /// Input `input` is about to deliver `device`'s samples in
    /// `[start_ns, end_ns)`: recorded, unless another input already
    /// delivered any of that time.
    pub fn claim(
        &self,
        device: &str,
        input: usize,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<(), Overlap> {
        // A poisoned lock only means another job panicked; the claims stay valid.
        let mut per_device = self
            .per_device
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let claims = per_device.entry(device.to_string()).or_default();
        if let Some(other) = claims
            .iter()
            .find(|c| c.input != input && c.start_ns < end_ns && start_ns < c.end_ns)
        {
            return Err(Overlap {
                other_input: other.input,
                at_ns: start_ns,
            });
        }
        // Blocks follow on: the input's stretch that ends where this one
        // starts grows; after a gap a new stretch starts (the gap stays free).
        match claims
            .iter_mut()
            .find(|c| c.input == input && c.end_ns == start_ns)
        {
            Some(own) => own.end_ns = end_ns,
            None => claims.push(Claim {
                input,
                start_ns,
                end_ns,
            }),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlap_with_another_input_is_refused_and_own_stretches_grow() {
        let claims = InputClaims::default();
        assert_eq!(claims.claim("m", 0, 0, 100), Ok(()));
        assert_eq!(claims.claim("m", 0, 100, 200), Ok(()));
        // Another device, or the same input again: no conflict.
        assert_eq!(claims.claim("n", 1, 50, 150), Ok(()));
        assert_eq!(claims.claim("m", 0, 150, 250), Ok(()));
        // After a gap input 0 goes on at 400; the gap stays free.
        assert_eq!(claims.claim("m", 0, 400, 500), Ok(()));
        assert_eq!(claims.claim("m", 3, 320, 400), Ok(()));
        // Touching the end is not overlapping; reaching inside is.
        assert_eq!(claims.claim("m", 1, 250, 300), Ok(()));
        assert_eq!(
            claims.claim("m", 2, 199, 260),
            Err(Overlap {
                other_input: 0,
                at_ns: 199
            })
        );
        // Input 1's stretch [250, 300) grew from its own claim only.
        assert_eq!(
            claims.claim("m", 2, 290, 310),
            Err(Overlap {
                other_input: 1,
                at_ns: 290
            })
        );
        assert_eq!(claims.claim("m", 2, 300, 310), Ok(()));
    }
}
