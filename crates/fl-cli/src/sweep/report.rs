//! `fl sweep report`: the rendering of a sweep's [`analysis`](super::analysis): the matrices
//! as CSV, heat maps and a histogram, the generator's drawings, and `report.md` with the
//! published observations (`published.toml`) beside this sweep's figures.

use super::K;
pub use super::analysis::{Analysis, ClassRow, Grid10, Matrix, Symmetry, analyse};
use super::analysis::{Published, published_observations};
use super::stats::TestResult;
use super::store::{CellResult, SAMPLE_ROW, SweepDir};
use crate::plot::{Figure, plot_err, viridis};
use anyhow::Result;
use fl_data::DatasetKind;
use fl_data::atomic::write_atomic;
use fl_gan::generator::IMAGE;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Writes the report of the cells in `dir` into `dir/report/`; `expected` is the number of
/// cells of the grid, when known. Returns the path of `report.md`.
pub fn write(dir: &SweepDir, name: &str, expected: Option<usize>) -> Result<PathBuf> {
    let cells = dir.all()?;
    let out = dir.root().join("report");
    std::fs::create_dir_all(&out)?;
    let matrices = Matrix::from_cells(&cells);
    let analyses: Vec<Analysis> = matrices.iter().map(analyse).collect();
    let mut reconstructions = Vec::new();
    for m in &matrices {
        let slug = m.dataset.name();
        write_atomic(
            &out.join(format!("{slug}-matrix.csv")),
            csv(m, &m.mean).as_bytes(),
        )?;
        write_atomic(
            &out.join(format!("{slug}-std.csv")),
            csv(m, &m.std).as_bytes(),
        )?;
        let heat = HeatMap { matrix: m };
        heat.draw(&out.join(format!("{slug}-heatmap.png")))?;
        heat.draw(&out.join(format!("{slug}-heatmap.svg")))?;
        reconstructions.push(write_reconstructions(&out, m.dataset, &cells)?);
    }
    if !matrices.is_empty() {
        let hist = Histogram {
            matrices: &matrices,
        };
        hist.draw(&out.join("histogram.png"))?;
        hist.draw(&out.join("histogram.svg"))?;
    }
    let text = markdown(
        name,
        &matrices,
        &analyses,
        &reconstructions,
        cells.len(),
        expected,
    );
    let md = out.join("report.md");
    write_atomic(&md, text.as_bytes())?;
    let json = serde_json::json!({ "matrices": matrices, "analyses": analyses });
    write_atomic(
        &out.join("report.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    Ok(md)
}

/// Per class G: the T and fidelity of the cell whose images represent it (none without cells).
pub type Reconstruction = Option<(usize, Option<f64>)>;

/// `<dataset>-reconstructions.png`: per class G, the images of its cell whose generator the
/// oracle recognised best (first seed, lowest T on ties). Returns each row's (T, fidelity).
fn write_reconstructions(
    out: &Path,
    dataset: DatasetKind,
    cells: &BTreeMap<String, CellResult>,
) -> Result<Vec<Reconstruction>> {
    let mut rows = Vec::new();
    let mut images = Vec::new();
    for g in 0..K {
        let best = cells
            .values()
            .filter(|c| c.dataset == dataset && c.generate == g && c.samples.is_some())
            .min_by(|a, b| {
                let f = |c: &CellResult| c.summary.attack.fidelity.unwrap_or(-1.0);
                f(b).total_cmp(&f(a))
                    .then(a.seed.cmp(&b.seed))
                    .then(a.target.cmp(&b.target))
            });
        match best.and_then(|c| c.images().map(|i| (c, i))) {
            Some((c, img)) => {
                images.extend_from_slice(&img[..SAMPLE_ROW * IMAGE.pixels()]);
                rows.push(Some((c.target, c.summary.attack.fidelity)));
            }
            None => {
                images.extend(std::iter::repeat_n(-1.0, SAMPLE_ROW * IMAGE.pixels()));
                rows.push(None);
            }
        }
    }
    if rows.iter().any(Option::is_some) {
        fl_gan::grid::write_png(
            &out.join(format!("{}-reconstructions.png", dataset.name())),
            &images,
            IMAGE,
            K,
            SAMPLE_ROW,
            3,
        )?;
    }
    Ok(rows)
}

/// The matrix as CSV: rows G, columns T, class names in the header and first column.
pub fn csv(m: &Matrix, values: &Grid10) -> String {
    let names = m.dataset.class_names();
    let mut s = String::from("G \\ T");
    for n in names {
        let _ = write!(s, ",{n}");
    }
    s.push('\n');
    for (g, row) in values.iter().enumerate() {
        s.push_str(names[g]);
        for v in row {
            match v {
                Some(v) => {
                    let _ = write!(s, ",{v:.4}");
                }
                None => s.push(','),
            }
        }
        s.push('\n');
    }
    s
}

/// "3" for MNIST, "3 Dress" for Fashion-MNIST.
fn class_label(d: DatasetKind, c: usize) -> String {
    let name = d.class_names()[c];
    if name == c.to_string() {
        name.to_string()
    } else {
        format!("{c} {name}")
    }
}

fn p(t: &TestResult) -> String {
    if t.p_value < 0.001 {
        "p < 0.001".into()
    } else {
        format!("p = {:.3}", t.p_value)
    }
}

/// The text of `report.md`.
pub fn markdown(
    name: &str,
    matrices: &[Matrix],
    analyses: &[Analysis],
    reconstructions: &[Vec<Reconstruction>],
    cells: usize,
    expected: Option<usize>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# GAN-poisoning sweep `{name}`\n");
    match expected {
        Some(e) if e > cells => {
            let _ = writeln!(
                s,
                "{cells} of {e} cells finished ({} missing).\n",
                e - cells
            );
        }
        _ => {
            let _ = writeln!(s, "{cells} cells.\n");
        }
    }
    s.push_str(
        "Each cell is one run of `fl attack gan-poison` for a pair (G, T); its value is the \
         attack accuracy (the share of G's test images the global model calls T) averaged over \
         the attack period. Matrices show the mean over seeds: rows G, columns T. Tests are \
         permutation tests with 20000 seeded permutations.\n\n",
    );
    if matrices.len() > 1 {
        s.push_str("![Histogram of the pair values per dataset](histogram.png)\n\n");
    }
    for (i, (m, a)) in matrices.iter().zip(analyses).enumerate() {
        let names = m.dataset.class_names();
        let slug = m.dataset.name();
        let _ = writeln!(
            s,
            "## {} ({} pairs, {} seed{})\n",
            m.dataset.title(),
            a.n,
            a.seeds,
            if a.seeds == 1 { "" } else { "s" }
        );
        let _ = writeln!(s, "![{} heat map]({slug}-heatmap.png)\n", m.dataset.title());
        s.push_str("| G \\ T |");
        for t in 0..K {
            let _ = write!(s, " {t} |");
        }
        s.push_str("\n|---|");
        s.push_str(&"---:|".repeat(K));
        s.push('\n');
        for g in 0..K {
            let _ = write!(s, "| {} |", class_label(m.dataset, g));
            for t in 0..K {
                match m.mean[g][t] {
                    Some(v) => {
                        let _ = write!(s, " {v:.3} |");
                    }
                    None => s.push_str(" – |"),
                }
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "\nValues (CSV: `{slug}-matrix.csv`, spread over seeds: `{slug}-std.csv`): \
             min {:.3}, median {:.3}, mean {:.3}, max {:.3}; {} of {} below 0.1, {} in \
             [0.2, 0.5], {} above 0.5.",
            a.min, a.median, a.mean, a.max, a.below_01, a.n, a.within_02_05, a.above_05
        );
        let mut ranked = m.pairs();
        ranked.sort_by(|x, y| y.2.total_cmp(&x.2).then((x.0, x.1).cmp(&(y.0, y.1))));
        let show = |v: &[(usize, usize, f64)]| -> String {
            v.iter()
                .map(|(g, t, x)| format!("{} -> {} ({x:.3})", names[*g], names[*t]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let k = ranked.len().min(3);
        let _ = writeln!(
            s,
            "Highest: {}. Lowest: {}.\n",
            show(&ranked[..k]),
            show(&ranked[ranked.len() - k..])
        );

        s.push_str("### Symmetry: is G -> T as easy as T -> G?\n\n");
        match &a.symmetry {
            None => s.push_str("No pair has both directions.\n\n"),
            Some(y) => {
                let _ = writeln!(
                    s,
                    "Over the {} pairs with both directions, |M[g][t] - M[t][g]| has mean {:.3}, \
                     median {:.3} and maximum {:.3} ({} vs {}). The correlation of M[g][t] with \
                     M[t][g] is {:.2}.",
                    y.pairs,
                    y.mean_gap,
                    y.median_gap,
                    y.max_gap,
                    names[y.max_pair.0],
                    names[y.max_pair.1],
                    y.correlation
                );
                let _ = writeln!(
                    s,
                    "- Paired test of M against its transpose (Wilcoxon signed-rank on \
                     M[g][t] - M[t][g], g < t): W = {:.1}, {}. A small p means one orientation \
                     (the lower class index as G) is systematically easier.",
                    y.signed_rank.statistic,
                    p(&y.signed_rank)
                );
                match &y.beyond_seed_noise {
                    Some(t) => {
                        let _ = writeln!(
                            s,
                            "- Gaps beyond seed noise (the seeds' differences may flip sign \
                             under symmetry): sum of |mean difference| = {:.3}, {}. A small p \
                             means the matrix is not symmetric.",
                            t.statistic,
                            p(t)
                        );
                    }
                    None => s.push_str(
                        "- Gaps beyond seed noise: not testable with one seed (run more \
                         seeds to separate asymmetry from run-to-run variation).\n",
                    ),
                }
                s.push('\n');
            }
        }

        s.push_str("### Class vulnerability\n\n");
        s.push_str(
            "| class | as G (row mean) | ± over seeds | as T (column mean) | ± over seeds |\n\
             |---|---:|---:|---:|---:|\n",
        );
        for c in &a.classes {
            let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
            let _ = writeln!(
                s,
                "| {} | {} | {:.3} | {} | {:.3} |",
                class_label(m.dataset, c.class),
                f(c.as_generate),
                c.as_generate_std,
                f(c.as_target),
                c.as_target_std
            );
        }
        s.push('\n');
        let extreme = |get: fn(&ClassRow) -> Option<f64>| -> String {
            let present: Vec<(usize, f64)> = a
                .classes
                .iter()
                .filter_map(|c| get(c).map(|v| (c.class, v)))
                .collect();
            let hi = present.iter().max_by(|x, y| x.1.total_cmp(&y.1));
            let lo = present.iter().min_by(|x, y| x.1.total_cmp(&y.1));
            match (hi, lo) {
                (Some(h), Some(l)) => format!(
                    "highest {} ({:.3}), lowest {} ({:.3})",
                    names[h.0], h.1, names[l.0], l.1
                ),
                _ => "–".into(),
            }
        };
        if let Some(t) = &a.rows_test {
            let _ = writeln!(
                s,
                "- Do classes differ as G? Variance of the row means {:.4}, {}; {}.",
                t.statistic,
                p(t),
                extreme(|c| c.as_generate)
            );
        }
        if let Some(t) = &a.columns_test {
            let _ = writeln!(
                s,
                "- Do classes differ as T? Variance of the column means {:.4}, {}; {}.",
                t.statistic,
                p(t),
                extreme(|c| c.as_target)
            );
        }
        s.push('\n');

        if let Some(rows) = reconstructions.get(i)
            && rows.iter().any(Option::is_some)
        {
            s.push_str("### What the generator drew\n\n");
            let _ = writeln!(
                s,
                "![Reconstructions, one row per class G]({slug}-reconstructions.png)\n"
            );
            s.push_str(
                "One row per class G (0 at the top), from the cell whose generator the oracle \
                 recognised best: ",
            );
            let parts: Vec<String> = rows
                .iter()
                .enumerate()
                .map(|(g, r)| match r {
                    Some((t, Some(f))) => format!("{g} (T = {t}, fidelity {f:.2})"),
                    Some((t, None)) => format!("{g} (T = {t})"),
                    None => format!("{g} (none)"),
                })
                .collect();
            let _ = writeln!(s, "{}.\n", parts.join(", "));
        }
    }
    if !matrices.is_empty() {
        s.push_str(&published(matrices, analyses));
    }
    s
}

/// The published observations (`published.toml`: a blog study of this attack) beside this
/// sweep's numbers; a dataset the study did not cover gets no rows.
fn published(matrices: &[Matrix], analyses: &[Analysis]) -> String {
    let claims = published_observations();
    let of = |d: DatasetKind| -> Option<&Published> { claims.iter().find(|c| c.dataset == d) };
    let mut s = String::from("## Against the published observations\n\n");
    s.push_str("| observation | this sweep |\n|---|---|\n");
    for (m, a) in matrices.iter().zip(analyses) {
        let Some(c) = of(m.dataset) else { continue };
        let _ = writeln!(
            s,
            "| {}: {} | {:.3} to {:.3}; {} of {} in [0.2, 0.5], {} above 0.5, {} under 0.1 |",
            m.dataset.title(),
            c.range,
            a.min,
            a.max,
            a.within_02_05,
            a.n,
            a.above_05,
            a.below_01
        );
    }
    for (m, a) in matrices.iter().zip(analyses) {
        let Some(c) = of(m.dataset) else { continue };
        if let Some(y) = &a.symmetry {
            let seeds = y
                .beyond_seed_noise
                .as_ref()
                .map_or("not testable with one seed".to_string(), |t| {
                    format!("gaps beyond seed noise {}", p(t))
                });
            let _ = writeln!(
                s,
                "| {}: {} | mean gap {:.3}, largest {:.3}; correlation with the \
                 transpose {:.2}; {seeds} |",
                m.dataset.title(),
                c.symmetry,
                y.mean_gap,
                y.max_gap,
                y.correlation
            );
        }
        let t = |x: &Option<TestResult>| x.as_ref().map_or("–".to_string(), p);
        let _ = writeln!(
            s,
            "| {}: {} | classes as G: {}; as T: {} |",
            m.dataset.title(),
            c.classes,
            t(&a.rows_test),
            t(&a.columns_test)
        );
    }
    s
}

/// The heat map of one matrix: rows G, columns T, annotated values (and spread over seeds).
struct HeatMap<'a> {
    matrix: &'a Matrix,
}

impl Figure for HeatMap<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 960)
    }

    fn draw_on<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let err = plot_err::<DB::ErrorType>;
        let m = self.matrix;
        let names = m.dataset.class_names();
        root.fill(&WHITE).map_err(err)?;
        let (left, top, cw, ch) = (150i32, 90i32, 82i32, 72i32);
        let title = format!(
            "{}: average attack accuracy (mean over {} seed{})",
            m.dataset.title(),
            m.per_seed.len(),
            if m.per_seed.len() == 1 { "" } else { "s" }
        );
        let font = |size: i32| ("sans-serif", size).into_font();
        root.draw(&Text::new(title, (left, 24), font(26)))
            .map_err(err)?;
        let centred = |size: i32| {
            font(size)
                .into_text_style(&root)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ))
        };
        let right = |size: i32| {
            font(size)
                .into_text_style(&root)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Right,
                    plotters::style::text_anchor::VPos::Center,
                ))
        };
        let several = m.per_seed.len() > 1;
        for (g, name) in names.iter().enumerate() {
            let y0 = top + g as i32 * ch;
            root.draw(&Text::new(*name, (left - 10, y0 + ch / 2), right(16)))
                .map_err(err)?;
            for t in 0..K {
                let x0 = left + t as i32 * cw;
                let (fill, label) = match m.mean[g][t] {
                    Some(v) => (viridis(v), Some(v)),
                    None => (RGBColor(235, 235, 235), None),
                };
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cw, y0 + ch)],
                    fill.filled(),
                ))
                .map_err(err)?;
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cw, y0 + ch)],
                    WHITE.stroke_width(1),
                ))
                .map_err(err)?;
                if let Some(v) = label {
                    let ink = if v > 0.6 { BLACK } else { WHITE };
                    let vy = if several {
                        y0 + ch / 2 - 9
                    } else {
                        y0 + ch / 2
                    };
                    root.draw(&Text::new(
                        format!("{v:.2}"),
                        (x0 + cw / 2, vy),
                        centred(18).color(&ink),
                    ))
                    .map_err(err)?;
                    if several && let Some(sd) = m.std[g][t] {
                        root.draw(&Text::new(
                            format!("±{sd:.2}"),
                            (x0 + cw / 2, y0 + ch / 2 + 12),
                            centred(13).color(&ink),
                        ))
                        .map_err(err)?;
                    }
                }
            }
        }
        let bottom = top + K as i32 * ch;
        for (t, name) in names.iter().enumerate() {
            let x = left + t as i32 * cw + cw / 2;
            root.draw(&Text::new(*name, (x, bottom + 16), centred(14)))
                .map_err(err)?;
        }
        root.draw(&Text::new(
            "T (the class G's images should be called)",
            (left + K as i32 * cw / 2, bottom + 48),
            centred(18),
        ))
        .map_err(err)?;
        root.draw(&Text::new("G (rows)", (left - 10, top - 16), right(18)))
            .map_err(err)?;
        // Colour bar.
        let bx = left + K as i32 * cw + 30;
        let steps = 100;
        for i in 0..steps {
            let v = 1.0 - i as f64 / steps as f64;
            let y = top + (i * K as i32 * ch) / steps;
            let y1 = top + ((i + 1) * K as i32 * ch) / steps;
            root.draw(&Rectangle::new(
                [(bx, y), (bx + 24, y1)],
                viridis(v).filled(),
            ))
            .map_err(err)?;
        }
        for v in [0.0, 0.25, 0.5, 0.75, 1.0] {
            let y = top + ((1.0 - v) * (K as i32 * ch) as f64) as i32;
            root.draw(&Text::new(format!("{v:.2}"), (bx + 30, y), font(14)))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
        Ok(())
    }
}

/// Histograms of the pair values, one panel per dataset side by side.
struct Histogram<'a> {
    matrices: &'a [Matrix],
}

/// Bin width of the histogram.
const BIN: f64 = 0.05;

impl Figure for Histogram<'_> {
    fn size(&self) -> (u32, u32) {
        (560 * self.matrices.len().max(1) as u32, 460)
    }

    fn draw_on<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let err = plot_err::<DB::ErrorType>;
        root.fill(&WHITE).map_err(err)?;
        let bins = (1.0 / BIN).round() as usize;
        let counts: Vec<Vec<usize>> = self
            .matrices
            .iter()
            .map(|m| {
                let mut c = vec![0usize; bins];
                for v in m.values() {
                    c[((v / BIN) as usize).min(bins - 1)] += 1;
                }
                c
            })
            .collect();
        let y_max = counts.iter().flatten().copied().max().unwrap_or(1) + 1;
        let panels = root.split_evenly((1, self.matrices.len().max(1)));
        for ((m, c), area) in self.matrices.iter().zip(&counts).zip(&panels) {
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("{} ({} pairs)", m.dataset.title(), m.values().len()),
                    ("sans-serif", 22),
                )
                .margin(14)
                .x_label_area_size(44)
                .y_label_area_size(48)
                .build_cartesian_2d(0.0f64..1.0, 0usize..y_max)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("average attack accuracy")
                .y_desc("pairs")
                .label_style(("sans-serif", 15))
                .draw()
                .map_err(err)?;
            chart
                .draw_series(c.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| {
                    let x0 = i as f64 * BIN;
                    Rectangle::new(
                        [(x0 + 0.002, 0), (x0 + BIN - 0.002, *n)],
                        RGBColor(31, 119, 180).filled(),
                    )
                }))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::needless_range_loop)] // g and t are matrix coordinates
    /// A fixed matrix with some structure: G -> T easier when T = G + 1, one strong pair.
    fn synthetic(seed: u64) -> Grid10 {
        let mut m = [[None; K]; K];
        for g in 0..K {
            for t in 0..K {
                if g != t {
                    let base = 0.2 + 0.03 * ((g * 7 + t * 3) % 10) as f64;
                    let bump = if t == (g + 1) % K { 0.1 } else { 0.0 };
                    let noise = 0.01 * ((g + t + seed as usize) % 3) as f64;
                    m[g][t] = Some(base + bump + noise);
                }
            }
        }
        m[4][9] = Some(0.62);
        m
    }

    fn matrices() -> Vec<Matrix> {
        vec![
            Matrix::new(
                DatasetKind::Mnist,
                [(1, synthetic(1)), (2, synthetic(2)), (3, synthetic(3))].into(),
            ),
            Matrix::new(DatasetKind::FashionMnist, [(1, synthetic(5))].into()),
        ]
    }

    #[test]
    fn report_text_of_a_fixed_matrix() {
        let m = matrices();
        let a: Vec<Analysis> = m.iter().map(analyse).collect();
        insta::assert_snapshot!(markdown("synthetic", &m, &a, &[], 180, Some(540)));
    }

    #[test]
    fn csv_has_names_and_holes() {
        let m = &matrices()[1];
        let text = csv(m, &m.mean);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 11);
        assert!(lines[0].starts_with("G \\ T,T-shirt/top,Trouser"));
        assert!(lines[1].starts_with("T-shirt/top,,0."), "{}", lines[1]);
        assert_eq!(lines[5].split(',').nth(10), Some("0.6200"));
    }

    #[test]
    fn pictures_are_drawn() {
        let dir = fl_data::scratch::ScratchDir::new("heatmap").unwrap();
        let m = matrices();
        for ext in ["png", "svg"] {
            let p = dir.path().join(format!("h.{ext}"));
            HeatMap { matrix: &m[0] }.draw(&p).unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() > 10_000, "{ext}");
            let p = dir.path().join(format!("hist.{ext}"));
            Histogram { matrices: &m }.draw(&p).unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() > 5_000, "{ext}");
        }
    }
}
