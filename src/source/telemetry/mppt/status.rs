//! The MPPT `status`: exactly 4 hex digits, 16 bits, bit 0 least
//! significant. Two-bit fields are looked up by the string "bit_lo bit_hi"
//! — low bit first — which is the trap: bit 10 = 0, bit 11 = 1 ("01") is
//! "float", not "boost". Bits 14–15 must be 0.

use crate::model::mppt::MpptStatus;

const INPUT: [&str; 4] = ["normal", "no-power", "high-volt-input", "input-volt-error"];
const LOAD: [&str; 4] = ["ok", "overcurrent", "short", "not-applicable"];
const CHARGING: [&str; 4] = ["not-charging", "float", "boost", "equalisation"];

/// Looks a two-bit field up by "bit_lo bit_hi": the string's first digit is
/// the low bit, so the table index is `lo * 2 + hi` ("01" → 1).
fn two_bit(bits: u16, lo: u32, table: &[&'static str; 4]) -> &'static str {
    let lo_bit = (bits >> lo) & 1;
    let hi_bit = (bits >> (lo + 1)) & 1;
    table[usize::from(lo_bit * 2 + hi_bit)]
}

fn one_bit(bits: u16, bit: u32, clear: &'static str, set: &'static str) -> &'static str {
    if bits >> bit & 1 == 1 {
        set
    } else {
        clear
    }
}

impl MpptStatus {
    /// Decodes `"0801"`-style text; anything but 4 hex digits, or bits 14–15
    /// set, is an error saying which.
    pub fn decode(hex: &str) -> Result<MpptStatus, String> {
        if hex.len() != 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{hex:?} is not exactly 4 hex digits"));
        }
        let bits = u16::from_str_radix(hex, 16).map_err(|e| format!("{hex:?}: {e}"))?;
        if bits & 0xC000 != 0 {
            return Err(format!("{hex:?} sets bits 14–15, which must be 0"));
        }
        Ok(MpptStatus {
            bus_connect: bits & 1 == 1,
            input: two_bit(bits, 1, &INPUT),
            chgfet: one_bit(bits, 3, "ok", "short"),
            chgfet_antirev: one_bit(bits, 4, "ok", "short"),
            fet_antirev: one_bit(bits, 5, "ok", "short"),
            input_current: one_bit(bits, 6, "ok", "overcurrent"),
            load: two_bit(bits, 7, &LOAD),
            pv_input: one_bit(bits, 9, "ok", "short"),
            charging: two_bit(bits, 10, &CHARGING),
            system: one_bit(bits, 12, "ok", "fault"),
            standby: one_bit(bits, 13, "standby", "running"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_bit_first_in_two_bit_fields() {
        // bit 10 set alone: "10" → boost; bit 11 alone: "01" → float.
        assert_eq!(MpptStatus::decode("0400").map(|s| s.charging), Ok("boost"));
        assert_eq!(MpptStatus::decode("0800").map(|s| s.charging), Ok("float"));
        assert_eq!(
            MpptStatus::decode("0002").map(|s| s.input),
            Ok("high-volt-input")
        );
        assert_eq!(MpptStatus::decode("0004").map(|s| s.input), Ok("no-power"));
        assert_eq!(
            MpptStatus::decode("0100").map(|s| s.load),
            Ok("overcurrent")
        );
        assert_eq!(MpptStatus::decode("2000").map(|s| s.standby), Ok("running"));
    }

    #[test]
    fn malformed_status_is_refused() {
        for bad in ["801", "08010", "08G1", "C000", "4000", "8000", ""] {
            assert!(MpptStatus::decode(bad).is_err(), "{bad}");
        }
        assert!(MpptStatus::decode("3fff").is_ok());
    }
}
