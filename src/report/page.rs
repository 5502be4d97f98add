//! Assembles the self-contained HTML page: a header with the span and
//! zone, the fleet overview (one row per device, linking to its section),
//! and per device its charts as inline SVG and its power-quality events.
//! No scripts, no external resources: the file opens from disk anywhere.

use std::fmt::Write as _;

use chrono_tz::Tz;

use super::charts::{escape, Chart};
use super::device::{PqEvents, Source};
use super::stats::DeviceStats;
use super::timeaxis::format_time;
use crate::model::partition::encode_partition_value;

/// Power-quality events listed per device; the timeline shows them all.
const PQ_TABLE_ROWS: usize = 200;

/// Everything the page says about one device.
#[derive(Debug, Clone)]
pub struct DeviceSection {
    pub name: String,
    pub source: Source,
    pub rows: usize,
    pub stats: DeviceStats,
    pub charts: Vec<Chart>,
    pub pq_events: Option<PqEvents>,
}

/// One row of the fleet table.
#[derive(Debug, Clone)]
pub struct FleetRow {
    pub name: String,
    pub stats: DeviceStats,
    /// P over the span, without axes, in large reports.
    pub sparkline: Option<Chart>,
    /// Whether the page has the device's section to link to.
    pub detailed: bool,
}

/// The fleet overview: charts of the whole fleet, the table, and a note on
/// which devices are drawn in full.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub charts: Vec<Chart>,
    pub rows: Vec<FleetRow>,
    pub note: Option<String>,
}

/// What the header says about the report.
#[derive(Debug, Clone)]
pub struct PageInfo {
    pub dataset: String,
    pub from: i64,
    pub to: i64,
    pub zone: Tz,
    /// Files left out because they could not be read, with why.
    pub skipped: Vec<(String, String)>,
}

/// A device's anchor: injective (the partition encoding, with `~` for `%`).
pub fn anchor(device: &str) -> String {
    format!(
        "device-{}",
        encode_partition_value(device).replace('%', "~")
    )
}

fn opt(value: Option<f64>, scale: f64, decimals: usize) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{:.decimals$}", v * scale))
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1600px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 4px;border-top:1px solid #ccc;padding-top:12px}\
.meta{color:#555;font-size:13px;margin:2px 0 10px}table{border-collapse:collapse;font-size:12px;margin:8px 0}\
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right}th{background:#f3f3f3}td.name,th.name{text-align:left}\
.charts{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0}svg{display:block}\
.note{color:#666;font-size:12px}td.spark{padding:0 4px}td.wiring-fault{background:#fde2e1;color:#a00;font-weight:bold}\
.warning{border-left:4px solid #c60;background:#fff4e5;padding:4px 12px;margin:12px 0}\
table.pq{max-width:100%}table.pq td{white-space:nowrap}table.pq td:last-child{white-space:normal}";

/// The whole page.
pub fn page(info: &PageInfo, overview: &Overview, sections: &[DeviceSection]) -> String {
    let svg_bytes = |charts: &[Chart]| charts.iter().map(|c| c.svg.len()).sum::<usize>();
    let mut html = String::with_capacity(
        sections.iter().map(|s| svg_bytes(&s.charts)).sum::<usize>()
            + svg_bytes(&overview.charts)
            + overview
                .rows
                .iter()
                .map(|r| 400 + r.sparkline.as_ref().map_or(0, |c| c.svg.len()))
                .sum::<usize>()
            + 65_536,
    );
    let span = format!(
        "{} – {} ({})",
        format_time(info.from, info.zone, "%Y-%m-%d %H:%M:%S"),
        format_time(info.to, info.zone, "%Y-%m-%d %H:%M:%S"),
        info.zone.name()
    );
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>meterflow report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>meterflow report</h1>\n<p class=\"meta\">dataset {} · {span} · {} device(s) · meterflow {}</p>\n\
         <p class=\"note\">Lines are means per pixel column; shaded bands reach from the lowest to the highest value in the column \
         (for aggregates, the extremes of their windows), so short peaks stay visible. Lines break at gaps.</p>\n",
        escape(&info.dataset),
        escape(&info.dataset),
        overview.rows.len().max(sections.len()),
        env!("CARGO_PKG_VERSION"),
    );
    skipped_files(&mut html, &info.skipped);
    if overview.rows.len() > 1 {
        fleet_overview(&mut html, overview);
    }
    for section in sections {
        device_section(&mut html, section, info.zone);
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// The warning that names every file the report had to leave out.
fn skipped_files(html: &mut String, skipped: &[(String, String)]) {
    if skipped.is_empty() {
        return;
    }
    let _ = writeln!(
        html,
        "<div class=\"warning\" id=\"skipped-files\"><p>{} damaged file(s) could not be read \
         and are left out of this report:</p>\n<ul>",
        skipped.len()
    );
    for (path, reason) in skipped {
        let _ = writeln!(
            html,
            "<li><code>{}</code>: {}</li>",
            escape(path),
            escape(reason)
        );
    }
    html.push_str("</ul></div>\n");
}

fn fleet_overview(html: &mut String, overview: &Overview) {
    html.push_str("<h2 id=\"fleet\">Fleet overview</h2>\n");
    if !overview.charts.is_empty() {
        html.push_str("<div class=\"charts\">\n");
        for chart in &overview.charts {
            let _ = writeln!(
                html,
                "<figure id=\"fleet-{}\">{}</figure>",
                escape(&chart.id),
                chart.svg
            );
        }
        html.push_str("</div>\n");
    }
    if let Some(note) = &overview.note {
        let _ = writeln!(html, "<p class=\"note\">{}</p>", escape(note));
    }
    let sparklines = overview.rows.iter().any(|r| r.sparkline.is_some());
    let _ = write!(
        html,
        "<table class=\"fleet\">\n<tr><th class=\"name\">device</th>{}\
         <th>import kWh</th><th>export kWh</th><th>mean P W</th><th>peak P W</th><th>worst THD-V %</th>\
         <th>worst THD-I %</th><th>data %</th><th>flagged %</th><th>gaps</th><th>PQ events</th>\
         <th class=\"name\">wiring</th></tr>\n",
        if sparklines { "<th>P over the span</th>" } else { "" }
    );
    for s in &overview.rows {
        let st = &s.stats;
        // A device drawn in full is linked; the others' rows are the anchor.
        let name = if s.detailed {
            format!(
                "<tr><td class=\"name\"><a href=\"#{}\">{}</a></td>",
                anchor(&s.name),
                escape(&s.name)
            )
        } else {
            format!(
                "<tr id=\"{}\"><td class=\"name\">{}</td>",
                anchor(&s.name),
                escape(&s.name)
            )
        };
        let spark = match (&s.sparkline, sparklines) {
            (Some(chart), _) => format!("<td class=\"spark\">{}</td>", chart.svg),
            (None, true) => "<td>–</td>".to_string(),
            (None, false) => String::new(),
        };
        let _ = writeln!(
            html,
            "{name}{spark}<td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
            opt(st.energy_import_wh, 1e-3, 3),
            opt(st.energy_export_wh, 1e-3, 3),
            opt(st.mean_p_w, 1.0, 1),
            opt(st.peak_p_w, 1.0, 1),
            opt(st.worst_thd_v_pct, 1.0, 2),
            opt(st.worst_thd_i_pct, 1.0, 2),
            st.completeness * 100.0,
            opt(st.flagged, 100.0, 1),
            st.gaps,
            st.pq_events
                .map_or_else(|| "–".to_string(), |n| n.to_string()),
            wiring_cell(st.wiring.as_deref()),
        );
    }
    html.push_str("</table>\n");
}

/// The fleet table's wiring cell: the finding (reason and phase) with the
/// whole message as its tooltip; a fault is marked for the eye.
fn wiring_cell(message: Option<&str>) -> String {
    let Some(message) = message else {
        return "<td class=\"name\">–</td>".to_string();
    };
    let (finding, fault) = crate::model::wiring::finding_of(message);
    format!(
        "<td class=\"{}\" title=\"{}\">{}</td>",
        if fault { "name wiring-fault" } else { "name" },
        escape(message),
        escape(finding)
    )
}

fn device_section(html: &mut String, s: &DeviceSection, zone: Tz) {
    let st = &s.stats;
    let _ = write!(
        html,
        "<section id=\"{}\" class=\"device\">\n<h2>{}</h2>\n<p class=\"meta\">{} rows of {} · import {} kWh · export {} kWh · \
         mean P {} W · peak P {} W · data {:.1} % of the span · flagged {} %</p>\n<div class=\"charts\">\n",
        anchor(&s.name),
        escape(&s.name),
        s.rows,
        s.source.describe(),
        opt(st.energy_import_wh, 1e-3, 3),
        opt(st.energy_export_wh, 1e-3, 3),
        opt(st.mean_p_w, 1.0, 1),
        opt(st.peak_p_w, 1.0, 1),
        st.completeness * 100.0,
        opt(st.flagged, 100.0, 1),
    );
    for chart in &s.charts {
        let _ = writeln!(
            html,
            "<figure id=\"{}-{}\">{}</figure>",
            anchor(&s.name),
            escape(&chart.id),
            chart.svg
        );
    }
    html.push_str("</div>\n");
    if let Some(pq) = &s.pq_events {
        pq_table(html, pq, zone);
    }
    html.push_str("</section>\n");
}

fn pq_table(html: &mut String, pq: &PqEvents, zone: Tz) {
    if pq.rows.is_empty() {
        html.push_str("<p class=\"note\">No power-quality events in the span.</p>\n");
        return;
    }
    let table = super::pq_table::pq_table(pq, zone, PQ_TABLE_ROWS);
    html.push_str("<table class=\"pq\">\n<tr>");
    for (k, header) in table.headers.iter().enumerate() {
        // Long column names may break after their underscores.
        let header = escape(header).replace('_', "_<wbr>");
        let class = if k == 0 { " class=\"name\"" } else { "" };
        let _ = write!(html, "<th{class}>{header}</th>");
    }
    html.push_str("</tr>\n");
    for row in &table.rows {
        html.push_str("<tr>");
        for (k, cell) in row.iter().enumerate() {
            let class = if k == 0 { " class=\"name\"" } else { "" };
            let _ = write!(html, "<td{class}>{}</td>", escape(cell));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
    if pq.rows.len() > PQ_TABLE_ROWS {
        let _ = writeln!(
            html,
            "<p class=\"note\">and {} more (the timeline shows all).</p>",
            pq.rows.len() - PQ_TABLE_ROWS
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_distinct_and_url_safe() {
        let names = ["a%41", "aA", "a b", "a/b", "..x", "zähler"];
        let anchors: std::collections::HashSet<String> = names.iter().map(|n| anchor(n)).collect();
        assert_eq!(anchors.len(), names.len());
        assert!(anchors.iter().all(|a| a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))));
    }
}
