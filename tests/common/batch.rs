//! `meterflow batch` of one capture file, as the library runs it for the
//! command: the tests that check what batch writes start here.
#![allow(dead_code)]

use std::path::Path;

use meterflow::model::run_report::RunReport;
use meterflow::pipeline::batch::run_batch;
use meterflow::pipeline::batch_request::BatchRequest;
use meterflow::source::capture::RawParams;

/// Batches `file` into `out`; `pipeline` is a pipeline file's text (written
/// beside the capture as `<stem>.toml`) or none at all. Every file must be
/// read; any failure panics with its cause.
pub async fn batch_file(file: &Path, out: &Path, pipeline: Option<&str>) -> RunReport {
    let pipeline = pipeline.map(|text| {
        let path = file.with_extension("toml");
        std::fs::write(&path, text).unwrap();
        path
    });
    let args = BatchRequest {
        inputs: vec![file.to_path_buf()],
        out: out.to_path_buf(),
        pipeline,
        ..BatchRequest::default()
    };
    let config = args.config().unwrap_or_else(|e| panic!("{e:#}"));
    let report = run_batch(&config, &[file.to_path_buf()], &RawParams::default(), false)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(report.failed_files(), 0, "{:?}", report.files);
    report
}
