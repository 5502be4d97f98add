//! Record subjects: `<prefix>.rec.<partition>.<kind>.<meter>`. The partition
//! (a hash of the meter's name) lets writers share the meters by subject
//! filter; the kind and meter let anyone subscribe to just what they want.

use crate::model::Record;

/// The kind token of a record's subject.
pub fn kind_of(record: &Record) -> &'static str {
    match record {
        Record::Window(_) => "window",
        Record::Latch(_) => "latch",
        Record::Aggregate(_) => "aggregate",
        Record::Event(_) => "event",
        Record::PqEvent(_) => "pq_event",
        Record::HalfCycle(_) => "half_cycle",
        Record::Pinst(_) => "pinst",
        Record::Raw(_) => "raw",
        Record::DeviceFinished(_) => "finished",
        Record::Sensor(_) => "sensor",
        Record::Telemetry(_) => "telemetry",
        Record::Readings(_) => "readings",
        Record::Consumed(_) => "consumed",
    }
}

/// A meter name as one subject token: `.`, `*`, `>` and anything but
/// letters, digits, `_` and `-` become `_`.
pub fn meter_token(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The partition of a meter: stable across nodes and versions (CRC-32).
pub fn partition_of(name: &str, partitions: u32) -> u32 {
    crc32fast::hash(name.as_bytes()) % partitions.max(1)
}

/// The subject of `record` of `meter`.
pub fn record_subject(prefix: &str, partitions: u32, meter: &str, kind: &str) -> String {
    format!(
        "{prefix}.rec.{}.{kind}.{}",
        partition_of(meter, partitions),
        meter_token(meter)
    )
}

/// Every record subject (the stream's).
pub fn all_records(prefix: &str) -> String {
    format!("{prefix}.rec.>")
}

/// The filter of one partition.
pub fn partition_filter(prefix: &str, partition: u32) -> String {
    format!("{prefix}.rec.{partition}.>")
}

/// The kind and meter tokens of a record subject, if it is one.
pub fn parse<'a>(prefix: &str, subject: &'a str) -> Option<(u32, &'a str, &'a str)> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix(".rec.")?;
    let mut parts = rest.splitn(3, '.');
    let partition = parts.next()?.parse().ok()?;
    let kind = parts.next()?;
    let meter = parts.next()?;
    (!meter.contains('.')).then_some((partition, kind, meter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_parses_back_and_odd_names_stay_one_token() {
        let subject = record_subject("meterflow", 16, "depot.3 meter*7", "window");
        let (partition, kind, meter) = parse("meterflow", &subject).unwrap();
        assert_eq!(partition, partition_of("depot.3 meter*7", 16));
        assert_eq!(kind, "window");
        assert_eq!(meter, "depot_3_meter_7");
        assert!(partition < 16);
        assert_eq!(parse("meterflow", "meterflow.rec.x.window.m"), None);
        assert_eq!(parse("other", &subject), None);
    }

    #[test]
    fn partitions_spread_meters() {
        let mut counts = [0u32; 4];
        for k in 0..400 {
            counts[partition_of(&format!("smartmeter{k:04}"), 4) as usize] += 1;
        }
        for count in counts {
            assert!((60..=140).contains(&count), "{counts:?}");
        }
    }
}
