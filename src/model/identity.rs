//! Stable identities: the UUIDv5 a name always maps to, so a meter, a
//! sensor or a gateway keeps its id across restarts, nodes and outputs.

use uuid::Uuid;

/// The fixed project namespace for every UUIDv5 meterflow makes
/// (= UUIDv5 of "meterflow" in the DNS namespace). Never change it: ids must
/// stay stable across releases and restarts.
pub const METERFLOW_NAMESPACE: Uuid = Uuid::from_u128(0xd0bf82d7_b83b_51d9_a095_16b0759a9abb);

/// The UUIDv5 of `name` in [`METERFLOW_NAMESPACE`].
pub fn name_uuid(name: &str) -> Uuid {
    Uuid::new_v5(&METERFLOW_NAMESPACE, name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_uuid_v5_of_meterflow_in_dns() {
        assert_eq!(
            Uuid::new_v5(&Uuid::NAMESPACE_DNS, b"meterflow"),
            METERFLOW_NAMESPACE
        );
    }
}
