//! EnAccess AirLink BLE devices: raw CBOR resources and advertisements, and
//! the reference gateway's Thingsboard JSON, into SI readings.

pub mod cbor;
pub mod fields;
pub mod thingsboard;

pub const SOURCE: &str = "airlink";
