//! Pictures of a run: line charts and labelled heat maps drawn with plotters into PNG (and
//! SVG).

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

/// Makes the bundled DejaVu Sans the plots' `sans-serif` font (no system fonts needed).
fn ensure_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        if register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
            tracing::warn!("the bundled font could not be loaded; plots will lack text");
        }
    });
}

/// One named line of (x, y) points.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

/// A line chart with a title, axis labels, y range and any number of series.
pub struct LineChart<'a> {
    /// Title on top.
    pub title: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// Y axis label.
    pub y_label: &'a str,
    /// X axis range (whole-number ticks when it spans 20 or more); `None`: rounds (1 to the
    /// largest x, whole-number ticks, a dot per point).
    pub x_range: Option<(f64, f64)>,
    /// Y axis range.
    pub y_range: (f64, f64),
    /// The lines.
    pub series: Vec<Series<'a>>,
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];

/// A picture plotters can draw on any backend; [`Figure::draw`] writes it to a file.
pub trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);

    /// Draws on `root`.
    fn draw_on<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()>
    where
        DB::ErrorType: 'static;

    /// Draws to a PNG (`.png`) or SVG (any other extension) file, atomically.
    fn draw(&self, path: &Path) -> Result<()> {
        ensure_font();
        let size = self.size();
        let is_png = path.extension().is_some_and(|e| e == "png");
        // The encoder picks the format from the extension, which the temporary keeps.
        let tmp = fl_data::atomic::temp_path(path);
        let drawn = if is_png {
            self.draw_on(BitMapBackend::new(&tmp, size).into_drawing_area())
        } else {
            self.draw_on(SVGBackend::new(&tmp, size).into_drawing_area())
        };
        let done = drawn.and_then(|()| Ok(std::fs::rename(&tmp, path)?));
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        done
    }
}

/// A plotters error as an `anyhow` one.
pub fn plot_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

impl Figure for LineChart<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 560)
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
        let x_max = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(1.0f64, f64::max);
        let rounds = self.x_range.is_none();
        let (x0, x1) = self.x_range.unwrap_or((0.5, x_max + 0.5));
        // A given range of 20 or more (rounds of a long run) is labelled in whole numbers too.
        let whole = rounds || x1 - x0 >= 20.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 26))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, self.y_range.0..self.y_range.1)
            .map_err(err)?;
        let round_ticks = |x: &f64| format!("{x:.0}");
        let fraction_ticks = |x: &f64| format!("{x:.2}");
        chart
            .configure_mesh()
            // Rounds are whole numbers: at most ~12 ticks, labelled without decimals.
            .x_labels(if rounds {
                (x_max as usize).clamp(2, 12)
            } else {
                11
            })
            .x_label_formatter(if whole { &round_ticks } else { &fraction_ticks })
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .label_style(("sans-serif", 16))
            .draw()
            .map_err(err)?;
        for (i, s) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(s.label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            if rounds {
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                    .map_err(err)?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
        Ok(())
    }
}

/// Viridis, by linear interpolation between five of its colours (`x` clamped to [0, 1]).
pub fn viridis(x: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let x = x.clamp(0.0, 1.0) * 4.0;
    let i = (x.floor() as usize).min(3);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A table of values in [0, 1] as coloured, annotated cells (viridis); a missing value is a
/// grey cell marked with its note (e.g. "stopped").
pub struct TableHeatMap {
    /// Title on top.
    pub title: String,
    /// What the rows are.
    pub row_label: String,
    /// What the columns are.
    pub col_label: String,
    /// Row names.
    pub rows: Vec<String>,
    /// Column names.
    pub cols: Vec<String>,
    /// `values[r][c]`, or the note shown instead.
    pub values: Vec<Vec<Result<f64, String>>>,
}

impl Figure for TableHeatMap {
    fn size(&self) -> (u32, u32) {
        let (left, cw, ch) = (180, 110, 56);
        (
            (left + cw * self.cols.len() + 140) as u32,
            (110 + ch * self.rows.len() + 70) as u32,
        )
    }

    fn draw_on<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        use plotters::style::text_anchor::{HPos, Pos, VPos};
        let err = plot_err::<DB::ErrorType>;
        root.fill(&WHITE).map_err(err)?;
        let (left, top, cw, ch) = (180i32, 90i32, 110i32, 56i32);
        let font = |size: i32| ("sans-serif", size).into_font();
        let anchored = |size: i32, h: HPos| {
            font(size)
                .into_text_style(&root)
                .pos(Pos::new(h, VPos::Center))
        };
        root.draw(&Text::new(self.title.clone(), (20, 24), font(22)))
            .map_err(err)?;
        root.draw(&Text::new(
            format!("rows: {}, columns: {}", self.row_label, self.col_label),
            (20, 52),
            font(15),
        ))
        .map_err(err)?;
        for (r, name) in self.rows.iter().enumerate() {
            let y0 = top + r as i32 * ch;
            root.draw(&Text::new(
                name.clone(),
                (left - 10, y0 + ch / 2),
                anchored(15, HPos::Right),
            ))
            .map_err(err)?;
            for c in 0..self.cols.len() {
                let x0 = left + c as i32 * cw;
                let (fill, label, ink) = match &self.values[r][c] {
                    Ok(v) => (
                        viridis(*v),
                        format!("{v:.2}"),
                        if *v > 0.6 { BLACK } else { WHITE },
                    ),
                    Err(note) => (RGBColor(225, 225, 225), note.clone(), BLACK),
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
                root.draw(&Text::new(
                    label,
                    (x0 + cw / 2, y0 + ch / 2),
                    anchored(16, HPos::Center).color(&ink),
                ))
                .map_err(err)?;
            }
        }
        let bottom = top + self.rows.len() as i32 * ch;
        for (c, name) in self.cols.iter().enumerate() {
            root.draw(&Text::new(
                name.clone(),
                (left + c as i32 * cw + cw / 2, bottom + 16),
                anchored(14, HPos::Center),
            ))
            .map_err(err)?;
        }
        // Colour bar.
        let (bx, height) = (left + self.cols.len() as i32 * cw + 30, bottom - top);
        for i in 0..100 {
            let y = top + i * height / 100;
            let y1 = top + (i + 1) * height / 100;
            root.draw(&Rectangle::new(
                [(bx, y), (bx + 22, y1)],
                viridis(1.0 - i as f64 / 100.0).filled(),
            ))
            .map_err(err)?;
        }
        for v in [0.0, 0.5, 1.0] {
            let y = top + ((1.0 - v) * height as f64) as i32;
            root.draw(&Text::new(format!("{v:.1}"), (bx + 28, y), font(13)))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
        Ok(())
    }
}
