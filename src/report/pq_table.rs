//! The `pq_events` table as the page lists it: one start column in local
//! time, each number rounded to what its quantity means (V to 0.1, % to
//! 0.01, s to ms), the boolean flag columns folded into one, and nothing
//! that repeats another column or is empty in every row, so it fits the page.

use chrono_tz::Tz;

use super::device::PqEvents;
use super::timeaxis::format_time;

/// The table's header and text cells, the start first.
#[derive(Debug, Clone, PartialEq)]
pub struct PqTable {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Decimals a column's numbers are shown with, by the unit its name ends
/// in; `None` for columns that are not measured quantities (counts, codes).
fn decimals(column: &str) -> Option<usize> {
    let name = column.to_ascii_lowercase();
    if name.contains("pct") || name.ends_with("_percent") {
        Some(2)
    } else if ["_v", "_w", "_var", "_va"]
        .iter()
        .any(|u| name.ends_with(u))
    {
        Some(1)
    } else if name.ends_with("_s") || name.ends_with("_hz") {
        Some(3)
    } else if name.ends_with("_a") {
        Some(2)
    } else {
        None
    }
}

/// `text` rounded to `decimals` when it is a number; as it is otherwise.
fn rounded(text: &str, decimals: Option<usize>) -> String {
    match (decimals, text.trim().parse::<f64>()) {
        (Some(d), Ok(v)) if v.is_finite() => {
            let shown = format!("{v:.d$}");
            // -0.0 rounds to "-0.0"; the sign says nothing there.
            if shown
                .trim_start_matches('-')
                .chars()
                .all(|c| c == '0' || c == '.')
            {
                shown.trim_start_matches('-').to_string()
            } else {
                shown
            }
        }
        _ => text.to_string(),
    }
}

fn is_boolean(cells: impl Iterator<Item = String>) -> bool {
    let mut any = false;
    for cell in cells {
        match cell.as_str() {
            "true" | "false" => any = true,
            "" => {}
            _ => return false,
        }
    }
    any
}

/// Builds the table of `pq` with start times in `zone`, at most `limit` rows.
pub fn pq_table(pq: &PqEvents, zone: Tz, limit: usize) -> PqTable {
    let shown = pq.rows.len().min(limit);
    let cells = |c: usize| pq.rows[..shown].iter().map(move |r| r[c].clone());
    let has_duration = pq
        .columns
        .iter()
        .any(|c| c == "duration_s" || c == "duration");
    let flag_columns: Vec<usize> = (0..pq.columns.len())
        .filter(|&c| is_boolean(cells(c)))
        .collect();
    let any_flag_set = flag_columns.iter().any(|&c| cells(c).any(|v| v == "true"));
    let shown_columns: Vec<usize> = (0..pq.columns.len())
        .filter(|&c| {
            let name = pq.columns[c].as_str();
            // The start is the first column, formatted; the end follows
            // from it and the duration; the flag bits are spelled out.
            let is_start = Some(name) == pq.start_column.as_deref();
            let is_end = Some(name) == pq.end_column.as_deref();
            let repeats = is_start
                || (has_duration && is_end)
                || (name == "flags" && !flag_columns.is_empty())
                || flag_columns.contains(&c);
            !repeats && cells(c).any(|v| !v.is_empty())
        })
        .collect();
    let mut headers = vec![format!("start ({})", zone.name())];
    headers.extend(shown_columns.iter().map(|&c| pq.columns[c].clone()));
    if any_flag_set {
        headers.push("flags".into());
    }
    let rows = (0..shown)
        .map(|i| {
            let row = &pq.rows[i];
            let mut out = vec![format_time(pq.start_ns[i], zone, "%Y-%m-%d %H:%M:%S%.3f")];
            out.extend(shown_columns.iter().map(|&c| {
                let name = pq.columns[c].as_str();
                if Some(name) == pq.end_column.as_deref() {
                    format_time(pq.end_ns[i], zone, "%H:%M:%S%.3f")
                } else {
                    rounded(&row[c], decimals(name))
                }
            }));
            if any_flag_set {
                let set: Vec<String> = flag_columns
                    .iter()
                    .filter(|&&c| row[c] == "true")
                    .map(|&c| pq.columns[c].replace('_', " "))
                    .collect();
                out.push(set.join(", "));
            }
            out
        })
        .collect();
    PqTable { headers, rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_by_unit_and_columns_are_not_repeated() {
        let columns = [
            "kind",
            "start",
            "end",
            "duration_s",
            "extreme_v",
            "extreme_pct_udin",
            "delta_u_max_v",
            "flags",
            "gap",
            "open_at_end",
        ];
        let pq = PqEvents {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            start_column: Some("start".into()),
            end_column: Some("end".into()),
            start_ns: vec![1_000_000_000],
            end_ns: vec![1_010_000_000],
            kind: vec!["dip".into()],
            rows: vec![[
                "dip",
                "1970-01-01T00:00:01Z",
                "1970-01-01T00:00:01.010Z",
                "0.010000000000000009",
                "161.00000060130566",
                "69.99999999",
                "",
                "5",
                "true",
                "false",
            ]
            .iter()
            .map(|c| c.to_string())
            .collect()],
        };
        let table = pq_table(&pq, chrono_tz::UTC, 200);
        assert_eq!(
            table.headers,
            [
                "start (UTC)",
                "kind",
                "duration_s",
                "extreme_v",
                "extreme_pct_udin",
                "flags"
            ]
        );
        assert_eq!(
            table.rows,
            vec![vec![
                "1970-01-01 00:00:01.000",
                "dip",
                "0.010",
                "161.0",
                "70.00",
                "gap"
            ]]
        );
        assert_eq!(rounded("-0.0001", Some(2)), "0.00");
        assert_eq!(rounded("n/a", Some(2)), "n/a");
    }
}
