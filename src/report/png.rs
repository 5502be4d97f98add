//! PNG copies of charts for slides and issues: the very SVG the page shows,
//! rasterised by resvg (pure Rust), with the machine's fonts for the text.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use resvg::{tiny_skia, usvg};

use super::charts::Chart;
use super::error::{ReportError, Result};

/// Families tried, in order, for plotters' `sans-serif` text.
const SANS_SERIF: [&str; 4] = ["DejaVu Sans", "Liberation Sans", "Noto Sans", "Arial"];

/// Renders SVG charts to PNG; the font database is loaded once.
pub struct PngWriter {
    options: usvg::Options<'static>,
    /// Pixels per SVG pixel (2 makes slide-sharp images).
    scale: f32,
}

impl PngWriter {
    pub fn new(scale: f32) -> Self {
        let mut fonts = usvg::fontdb::Database::new();
        fonts.load_system_fonts();
        let available = |family: &str| {
            fonts
                .faces()
                .any(|f| f.families.iter().any(|(name, _)| name == family))
        };
        let family = SANS_SERIF
            .iter()
            .find(|f| available(f))
            .map(|f| f.to_string())
            .or_else(|| {
                fonts
                    .faces()
                    .next()
                    .and_then(|f| f.families.first())
                    .map(|(n, _)| n.clone())
            });
        if let Some(family) = &family {
            fonts.set_sans_serif_family(family.clone());
        } else {
            tracing::warn!("no system fonts found: PNG charts will have no text");
        }
        let mut options = usvg::Options::default();
        if let Some(family) = family {
            options.font_family = family;
        }
        options.fontdb = Arc::new(fonts);
        PngWriter {
            options,
            scale: scale.max(0.1),
        }
    }

    /// The PNG bytes of one chart.
    pub fn encode(&self, chart: &Chart) -> Result<Vec<u8>> {
        let fail = |message: String| ReportError::Png {
            chart: chart.id.clone(),
            message,
        };
        let tree =
            usvg::Tree::from_str(&chart.svg, &self.options).map_err(|e| fail(e.to_string()))?;
        let size = tree.size();
        let (w, h) = (
            (size.width() * self.scale).ceil() as u32,
            (size.height() * self.scale).ceil() as u32,
        );
        let mut pixmap = tiny_skia::Pixmap::new(w.max(1), h.max(1))
            .ok_or_else(|| fail(format!("cannot allocate a {w}×{h} image")))?;
        pixmap.fill(tiny_skia::Color::WHITE);
        resvg::render(
            &tree,
            tiny_skia::Transform::from_scale(self.scale, self.scale),
            &mut pixmap.as_mut(),
        );
        pixmap.encode_png().map_err(|e| fail(e.to_string()))
    }

    /// Writes `chart` as `<dir>/<stem>.png`.
    pub fn write(&self, chart: &Chart, dir: &Path, stem: &str) -> Result<PathBuf> {
        let path = dir.join(format!("{stem}.png"));
        let bytes = self.encode(chart)?;
        std::fs::write(&path, bytes).map_err(|e| ReportError::io("write", &path, e))?;
        Ok(path)
    }
}
