//! Who a record belongs to.

use std::sync::Arc;

use crate::wire::Measures;

/// Who a row belongs to: the name (also the `device=` partition), the
/// pipeline's numeric id, and the layout (which phases exist).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceInfo {
    pub name: Arc<str>,
    pub id: u64,
    pub measures: Measures,
}

impl DeviceInfo {
    pub fn new(name: impl Into<Arc<str>>, id: u64, measures: Measures) -> Self {
        DeviceInfo {
            name: name.into(),
            id,
            measures,
        }
    }
}
