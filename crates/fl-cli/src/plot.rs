//! Pictures of a run: line charts drawn with plotters into PNG (and SVG).

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
