//! `meterflow report DATASET --out FILE.html`: the HTML report of a Parquet
//! dataset (see `meterflow::report`), optionally with each chart as PNG.

use std::path::PathBuf;
use std::time::Instant;

use meterflow::report::timeaxis::{parse_time, parse_zone};
use meterflow::report::{write_report, ReportOptions, DEFAULT_DETAIL};

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The dataset: a Parquet root (`out/parquet`) or the run folder holding it.
    pub dataset: PathBuf,
    /// Only this device (repeat for several); default all.
    #[arg(long = "device")]
    pub devices: Vec<String>,
    /// Start of the span: RFC 3339, Unix seconds, or local `YYYY-MM-DD[ HH:MM[:SS]]` in --tz.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the span (exclusive), same forms as --from.
    #[arg(long)]
    pub to: Option<String>,
    /// Time zone of the labels and of local --from/--to (IANA name).
    #[arg(long, default_value = "UTC")]
    pub tz: String,
    /// The HTML file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write every chart as PNG into this folder.
    #[arg(long)]
    pub png_dir: Option<PathBuf>,
    /// Devices drawn with all their charts. With more devices than this the
    /// page is the fleet table (a sparkline per device) and full charts for
    /// this many, those needing attention most.
    #[arg(long, default_value_t = DEFAULT_DETAIL)]
    pub detail: usize,
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let zone = parse_zone(&args.tz)?;
    let options = ReportOptions {
        dataset: args.dataset,
        devices: args.devices,
        from: args
            .from
            .as_deref()
            .map(|t| parse_time(t, zone))
            .transpose()?,
        to: args
            .to
            .as_deref()
            .map(|t| parse_time(t, zone))
            .transpose()?,
        zone,
        out: args.out,
        png_dir: args.png_dir,
        detail: args.detail,
    };
    let started = Instant::now();
    let summary = write_report(&options)?;
    let sources: Vec<String> = summary
        .sources
        .iter()
        .map(|(s, n)| format!("{n} from {s}"))
        .collect();
    println!(
        "report: {} ({:.1} MB): {} device(s), {} in full ({}), {} charts, in {:.1} s",
        summary.out.display(),
        summary.bytes as f64 / 1e6,
        summary.devices,
        summary.detailed,
        sources.join(", "),
        summary.charts,
        started.elapsed().as_secs_f64()
    );
    if !summary.skipped_files.is_empty() {
        println!(
            "skipped {} damaged file(s) (named on the page): {}",
            summary.skipped_files.len(),
            summary
                .skipped_files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !summary.pngs.is_empty() {
        if let Some(dir) = &options.png_dir {
            println!("png: {} charts in {}", summary.pngs.len(), dir.display());
        }
    }
    Ok(())
}
