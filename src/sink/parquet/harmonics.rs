//! The optional `harmonics` table: per window and channel, the IEC 61000-4-7
//! harmonic subgroup magnitudes G_1..G_H as a `List<Float64>` (element 0 is
//! order 1), the interharmonic centred subgroups C_isg,0..C_isg,H−1 as
//! another (element h lies between harmonics h and h + 1), with the
//! channel's THD. Rows come from windows computed with
//! `keep_harmonic_subgroups` on; other windows add nothing.

use arrow::datatypes::SchemaRef;

use super::schema::{
    device_columns, f64_col, i32_col, i64_col, time_col, ColumnSpec, ColumnValues, DeviceRow,
    TableSpec,
};
use crate::model::{DeviceInfo, WindowRow};
use crate::wire::layout::Quantity;

pub const TABLE: &str = "harmonics";

/// The subgroups of one channel in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct HarmonicRow {
    pub device: DeviceInfo,
    pub window_start_unix_ns: i64,
    pub window_end_unix_ns: i64,
    /// The window's flag bits.
    pub flags: u8,
    /// Channel name as the layout names it, e.g. `v_l1`.
    pub channel: &'static str,
    /// `voltage` or `current`.
    pub quantity: &'static str,
    /// `L1`, `L2` or `L3`.
    pub phase: &'static str,
    /// SI unit of the magnitudes (`V` or `A`).
    pub unit: &'static str,
    /// H used for the window.
    pub harmonic_orders: u32,
    /// THD of this channel, percent.
    pub thd_pct: Option<f64>,
    /// G_1..G_H, RMS in `unit`.
    pub subgroups: Vec<f64>,
    /// C_isg,0..C_isg,H−1, RMS in `unit` (empty below 4 cycles per window).
    pub interharmonic_subgroups: Vec<f64>,
}

impl DeviceRow for HarmonicRow {
    fn device(&self) -> &DeviceInfo {
        &self.device
    }
}

/// One row per channel that has subgroups in `window`.
pub fn rows_of_window(window: &WindowRow) -> Vec<HarmonicRow> {
    let layout = window.device.measures.channels();
    let m = &window.metrics;
    m.harmonic_subgroups
        .iter()
        .zip(layout)
        .enumerate()
        .filter(|(_, (subgroups, _))| !subgroups.is_empty())
        .map(|(c, (subgroups, channel))| {
            let phase = m.phases[channel.phase.index()];
            let (quantity, thd_pct) = match channel.quantity {
                Quantity::Voltage => ("voltage", phase.and_then(|p| p.thd_v_pct)),
                Quantity::Current => ("current", phase.and_then(|p| p.thd_i_pct)),
                _ => ("other", None),
            };
            HarmonicRow {
                device: window.device.clone(),
                window_start_unix_ns: m.start_unix_ns,
                window_end_unix_ns: m.end_unix_ns,
                flags: m.flags.bits(),
                channel: channel.name,
                quantity,
                phase: match channel.phase.index() {
                    0 => "L1",
                    1 => "L2",
                    _ => "L3",
                },
                unit: channel.si_unit,
                harmonic_orders: m.harmonic_orders,
                thd_pct,
                subgroups: subgroups.clone(),
                interharmonic_subgroups: m
                    .interharmonic_subgroups
                    .get(c)
                    .cloned()
                    .unwrap_or_default(),
            }
        })
        .collect()
}

pub(crate) fn spec() -> TableSpec<HarmonicRow> {
    let mut columns = device_columns::<HarmonicRow>();
    columns.extend([
        ColumnSpec::required(
            "window_start",
            time_col(|r: &HarmonicRow| Some(r.window_start_unix_ns)),
        ),
        ColumnSpec::required(
            "window_end",
            time_col(|r: &HarmonicRow| Some(r.window_end_unix_ns)),
        ),
        ColumnSpec::required("flags", i32_col(|r: &HarmonicRow| Some(i32::from(r.flags)))),
        ColumnSpec::required(
            "channel",
            ColumnValues::Utf8(|r: &HarmonicRow| Some(r.channel)),
        ),
        ColumnSpec::required(
            "quantity",
            ColumnValues::Utf8(|r: &HarmonicRow| Some(r.quantity)),
        ),
        ColumnSpec::required("phase", ColumnValues::Utf8(|r: &HarmonicRow| Some(r.phase))),
        ColumnSpec::required("unit", ColumnValues::Utf8(|r: &HarmonicRow| Some(r.unit))),
        ColumnSpec::required(
            "harmonic_orders",
            i64_col(|r: &HarmonicRow| Some(i64::from(r.harmonic_orders))),
        ),
        ColumnSpec::optional("thd_pct", f64_col(|r: &HarmonicRow| r.thd_pct)),
        ColumnSpec::required(
            "subgroups",
            ColumnValues::ListFloat64(|r: &HarmonicRow| Some(&r.subgroups)),
        ),
        ColumnSpec::required(
            "interharmonic_subgroups",
            ColumnValues::ListFloat64(|r: &HarmonicRow| Some(&r.interharmonic_subgroups)),
        ),
    ]);
    TableSpec::new(TABLE, columns)
}

/// The Arrow schema of the `harmonics` table.
pub fn schema() -> SchemaRef {
    spec().schema()
}
