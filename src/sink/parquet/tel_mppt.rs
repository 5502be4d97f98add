//! The `tel_mppt` dataset as `mppt-telemetry-tel_mppt.md` defines it: the
//! request arrays flattened to `pv[n].volts|amps|watts` (n = 0..3, null
//! where the request had fewer), `battery.*`, `load[n].*` (n = 0..1), the
//! status attributes as `status.<name>`, `sender`, `time_event` (UTC),
//! `time_zone`, `time_processing`. Files live under
//! `tel_mppt/date=<date of time_event>/`, rows ordered by `mppt_id`.

use arrow::datatypes::SchemaRef;

use super::schema::{
    bool_col, f64_col, time_col, ColumnSpec, ColumnValues, PartitionRow, TableSpec,
};
use crate::model::mppt::{Channel, MAX_LOAD, MAX_PV};
use crate::model::MpptRecord;

pub const TABLE: &str = "tel_mppt";

/// Every row shares one partition key: the table has no `device=` level.
impl PartitionRow for MpptRecord {
    fn partition(&self) -> &str {
        ""
    }
}

type ChannelGetter = fn(&Channel) -> f64;
const CHANNEL_COLUMNS: [(&str, ChannelGetter); 3] = [
    ("volts", |c| c.volts),
    ("amps", |c| c.amps),
    ("watts", |c| c.watts),
];

type StatusGetter = fn(&MpptRecord) -> Option<&str>;
const STATUS_TEXT: [(&str, StatusGetter); 10] = [
    ("input", |r| Some(r.status.input)),
    ("chgfet", |r| Some(r.status.chgfet)),
    ("chgfet_antirev", |r| Some(r.status.chgfet_antirev)),
    ("fet_antirev", |r| Some(r.status.fet_antirev)),
    ("input_current", |r| Some(r.status.input_current)),
    ("load", |r| Some(r.status.load)),
    ("pv_input", |r| Some(r.status.pv_input)),
    ("charging", |r| Some(r.status.charging)),
    ("system", |r| Some(r.status.system)),
    ("standby", |r| Some(r.status.standby)),
];

pub(crate) fn spec() -> TableSpec<MpptRecord> {
    let mut columns = vec![ColumnSpec::required(
        "mppt_id",
        ColumnValues::Utf8(|r: &MpptRecord| Some(&r.mppt_id)),
    )];
    for n in 0..MAX_PV {
        for (name, get) in CHANNEL_COLUMNS {
            columns.push(ColumnSpec::optional(
                format!("pv[{n}].{name}"),
                f64_col(move |r: &MpptRecord| r.pv.get(n).map(get)),
            ));
        }
    }
    for (name, get) in CHANNEL_COLUMNS {
        columns.push(ColumnSpec::required(
            format!("battery.{name}"),
            f64_col(move |r: &MpptRecord| Some(get(&r.battery))),
        ));
    }
    for n in 0..MAX_LOAD {
        for (name, get) in CHANNEL_COLUMNS {
            columns.push(ColumnSpec::optional(
                format!("load[{n}].{name}"),
                f64_col(move |r: &MpptRecord| r.load.get(n).map(get)),
            ));
        }
    }
    columns.push(ColumnSpec::required(
        "status.bus_connect",
        bool_col(|r: &MpptRecord| Some(r.status.bus_connect)),
    ));
    for (name, get) in STATUS_TEXT {
        columns.push(ColumnSpec::required(
            format!("status.{name}"),
            ColumnValues::Utf8(get),
        ));
    }
    columns.extend([
        ColumnSpec::required(
            "sender",
            ColumnValues::Utf8(|r: &MpptRecord| Some(&r.sender)),
        ),
        ColumnSpec::required(
            "time_event",
            time_col(|r: &MpptRecord| Some(r.time_event_ns)),
        ),
        ColumnSpec::required(
            "time_zone",
            ColumnValues::Utf8(|r: &MpptRecord| Some(&r.time_zone)),
        ),
        ColumnSpec::required(
            "time_processing",
            time_col(|r: &MpptRecord| Some(r.time_processing_ns)),
        ),
    ]);
    TableSpec::new(TABLE, columns)
}

/// The Arrow schema of the `tel_mppt` table.
pub fn schema() -> SchemaRef {
    spec().schema()
}
