//! Plotters' SVG without what it repeats on every element: attributes
//! that state the SVG default (`opacity="1"`, `stroke-width="1"`, black
//! text, unstroked rectangles), the font family (set once on the root,
//! where text inherits it), and points of a line that lie on the straight
//! segment between their neighbours. The picture is the same; a chart is
//! about a third smaller, which is most of a large report's size.

/// Attributes dropped from every element: their values are SVG's defaults.
const DEFAULTS: [&str; 2] = [" opacity=\"1\"", " stroke-width=\"1\""];

/// `svg` as plotters wrote it, compacted; `font` is the family of its text.
pub fn compact_svg(svg: &str, font: &str) -> String {
    let mut out = String::with_capacity(svg.len() / 2);
    let mut lines = svg.lines().peekable();
    while let Some(line) = lines.next() {
        let mut line = line.to_string();
        for default in DEFAULTS {
            line = line.replace(default, "");
        }
        if line.starts_with("<svg ") {
            line = line.replacen("<svg ", &format!("<svg font-family=\"{font}\" "), 1);
        } else if line.starts_with("<text ") {
            line = line
                .replace(&format!(" font-family=\"{font}\""), "")
                .replace(" fill=\"#000000\"", "");
            // Plotters puts the text and the closing tag on lines of their own.
            out.push_str(&line);
            while let Some(next) = lines.next() {
                let closes = next == "</text>";
                out.push_str(next);
                if closes {
                    break;
                }
                if lines.peek() != Some(&"</text>") {
                    out.push('\n');
                }
            }
            out.push('\n');
            continue;
        } else if line.starts_with("<rect ") || line.starts_with("<circle ") {
            line = line.replace(" stroke=\"none\"", "");
        }
        if let Some(pruned) = prune_points(&line) {
            line = pruned;
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The element with its `points` list pruned; `None` if it has none.
fn prune_points(line: &str) -> Option<String> {
    const KEY: &str = " points=\"";
    let start = line.find(KEY)? + KEY.len();
    let end = start + line[start..].find('"')?;
    let points: Option<Vec<(i64, i64)>> = line[start..end]
        .split_whitespace()
        .map(|pair| {
            let (x, y) = pair.split_once(',')?;
            Some((x.parse().ok()?, y.parse().ok()?))
        })
        .collect();
    let points = points?;
    let kept = straight_pruned(&points);
    let mut text = String::with_capacity(kept.len() * 8);
    for (k, (x, y)) in kept.iter().enumerate() {
        if k > 0 {
            text.push(' ');
        }
        text.push_str(&format!("{x},{y}"));
    }
    Some(format!("{}{}{}", &line[..start], text, &line[end..]))
}

/// Drops repeated points and points on the segment between the last kept
/// point and the next one (exactly, in the integer pixel grid).
fn straight_pruned(points: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut kept: Vec<(i64, i64)> = Vec::with_capacity(points.len());
    for (k, &p) in points.iter().enumerate() {
        if kept.last() == Some(&p) {
            continue;
        }
        if let (Some(&a), Some(&next)) = (kept.last(), points.get(k + 1)) {
            let (ux, uy) = (p.0 - a.0, p.1 - a.1);
            let (vx, vy) = (next.0 - p.0, next.1 - p.1);
            // Collinear and going on in the same direction: p adds nothing.
            if ux * vy == uy * vx && ux * vx + uy * vy > 0 {
                continue;
            }
        }
        kept.push(p);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_go_and_straight_runs_shrink() {
        let svg = "<svg width=\"10\" height=\"10\" viewBox=\"0 0 10 10\" xmlns=\"http://www.w3.org/2000/svg\">\n\
<rect x=\"0\" y=\"0\" width=\"10\" height=\"10\" opacity=\"1\" fill=\"#FFFFFF\" stroke=\"none\"/>\n\
<text x=\"1\" y=\"2\" dy=\"0.76em\" text-anchor=\"end\" font-family=\"sans-serif\" font-size=\"8\" opacity=\"1\" fill=\"#000000\">\n\
a &lt; b\n\
</text>\n\
<polyline fill=\"none\" opacity=\"1\" stroke=\"#1F77B4\" stroke-width=\"1\" points=\"0,5 1,5 2,5 2,5 3,4 4,3 5,5 \"/>\n\
</svg>\n";
        let compact = compact_svg(svg, "sans-serif");
        assert_eq!(
            compact,
            "<svg font-family=\"sans-serif\" width=\"10\" height=\"10\" viewBox=\"0 0 10 10\" xmlns=\"http://www.w3.org/2000/svg\">\n\
<rect x=\"0\" y=\"0\" width=\"10\" height=\"10\" fill=\"#FFFFFF\"/>\n\
<text x=\"1\" y=\"2\" dy=\"0.76em\" text-anchor=\"end\" font-size=\"8\">a &lt; b</text>\n\
<polyline fill=\"none\" stroke=\"#1F77B4\" points=\"0,5 2,5 4,3 5,5\"/>\n\
</svg>\n"
        );
    }

    #[test]
    fn turning_back_is_kept() {
        // A spike that returns along its own line is not straight on.
        assert_eq!(
            straight_pruned(&[(0, 0), (0, 5), (0, 2)]),
            vec![(0, 0), (0, 5), (0, 2)]
        );
        assert_eq!(
            straight_pruned(&[(0, 0), (1, 1), (2, 2)]),
            vec![(0, 0), (2, 2)]
        );
    }
}
