//! `fl experiment mia-report DIR`: the membership runs in DIR's sub-folders (each with
//! `summary.json` and `metrics.jsonl`) side by side: `table.csv` (dataset, aggregator,
//! variant, the authors' settled figure and both kinds of best, main accuracy, rounds),
//! `report.md` (the same with means per 100 rounds, the final local training loss, and the
//! published curves where DIR holds them), and per run `curve-<run>.png`: membership
//! accuracy per round (means over 10 rounds), beside the reference curve
//! `DIR/authors/<run>.csv` (columns `round,attack_accuracy`) when there is one.

use crate::mia::MiaRunSummary;
use crate::plot::{Figure, LineChart, Series};
use anyhow::{Context, Result};
use fl_data::atomic::write_atomic;
use fl_mia::MiaRoundMetrics;
use std::fmt::Write as _;
use std::path::Path;

/// One run's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFigures {
    /// The run's folder name.
    pub run: String,
    /// Dataset.
    pub dataset: String,
    /// Aggregation rule.
    pub aggregator: String,
    /// The attack (`fedpoisonmia` is the angle constraint, `agrevader` the Euclidean one;
    /// `-adaptive` for the defense-aware attacker).
    pub variant: String,
    /// Mean membership accuracy over the last 50 attack rounds.
    pub last50_mean: f64,
    /// Best over the attack rounds.
    pub best_attack_rounds: f64,
    /// Best over every round (the authors' "best").
    pub best_all_rounds: f64,
    /// Main-task test accuracy at the end.
    pub main_accuracy: f64,
    /// Rounds run.
    pub rounds: usize,
    /// Mean membership accuracy per 100 rounds.
    pub per_100: Vec<f64>,
    /// Mean local training loss of the last round's clients.
    pub final_train_loss: f64,
}

/// A published per-round curve: (round, attack accuracy).
pub type Curve = Vec<(usize, f64)>;

/// Mean of each run of `width` values (the last one may be shorter).
pub fn window_means(values: &[f64], width: usize) -> Vec<f64> {
    values
        .chunks(width.max(1))
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect()
}

/// The figures of one run from its records and summary.
pub fn figures(run: &str, s: &MiaRunSummary, rows: &[MiaRoundMetrics]) -> RunFigures {
    let acc: Vec<f64> = rows.iter().map(|r| r.membership.accuracy).collect();
    RunFigures {
        run: run.to_string(),
        dataset: s.run.dataset.clone(),
        aggregator: s.mia.aggregator.clone(),
        variant: match s.mia.adaptive_scales {
            Some(_) => format!("{}-adaptive", s.mia.method.name()),
            None => s.mia.method.name().to_string(),
        },
        last50_mean: s.mia.last50_mean_accuracy.unwrap_or(s.mia.mean_accuracy),
        best_attack_rounds: s.mia.best_accuracy,
        best_all_rounds: s
            .mia
            .best_accuracy_all_rounds
            .unwrap_or(s.mia.best_accuracy),
        main_accuracy: s.mia.main_accuracy,
        rounds: rows.len(),
        per_100: window_means(&acc, 100),
        final_train_loss: rows.last().map_or(f64::NAN, |r| r.base.train_loss),
    }
}

/// Reads a reference curve (`round,attack_accuracy[,...]` with a header line).
pub fn read_curve(path: &Path) -> Result<Curve> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split(',');
            let round = f.next().unwrap_or_default().trim().parse::<usize>();
            let acc = f.next().unwrap_or_default().trim().parse::<f64>();
            match (round, acc) {
                (Ok(r), Ok(a)) => Ok((r, a)),
                _ => anyhow::bail!("{}: cannot read the line `{l}`", path.display()),
            }
        })
        .collect()
}

/// The figures a reference curve gives when its attack starts at `start` (rounds from 1).
pub fn curve_figures(curve: &Curve, start: usize) -> (f64, f64, f64, Vec<f64>) {
    let acc: Vec<f64> = curve.iter().map(|p| p.1).collect();
    let attack: Vec<f64> = curve.iter().filter(|p| p.0 >= start).map(|p| p.1).collect();
    let last = &attack[attack.len().saturating_sub(50)..];
    let max = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
    (
        last.iter().sum::<f64>() / last.len().max(1) as f64,
        max(&attack),
        max(&acc),
        window_means(&acc, 100),
    )
}

/// `table.csv`.
pub fn csv(rows: &[RunFigures]) -> String {
    let mut out = String::from(
        "dataset,aggregator,variant,last50_mean,best_attack_rounds,best_all_rounds,main_accuracy,rounds\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{:.4},{:.4},{:.4},{:.4},{}",
            r.dataset,
            r.aggregator,
            r.variant,
            r.last50_mean,
            r.best_attack_rounds,
            r.best_all_rounds,
            r.main_accuracy,
            r.rounds
        );
    }
    out
}

/// `report.md`: the table, means per 100 rounds, and the published curves beside ours.
pub fn markdown(rows: &[RunFigures], references: &[(String, usize, Curve)]) -> String {
    let mut out = String::from("# Membership inference in the FedPoisonMIA authors' protocol\n\n");
    out.push_str(
        "| run | dataset | aggregator | variant | mean, last 50 attack rounds | best, attack \
         rounds | best, all rounds | main accuracy | final local loss | rounds |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.4} | {:.2e} | {} |",
            r.run,
            r.dataset,
            r.aggregator,
            r.variant,
            r.last50_mean,
            r.best_attack_rounds,
            r.best_all_rounds,
            r.main_accuracy,
            r.final_train_loss,
            r.rounds
        );
    }
    for (run, start, curve) in references {
        let (last50, best_attack, best_all, _) = curve_figures(curve, *start);
        let _ = writeln!(
            out,
            "| {run}, authors' log | | | | {last50:.3} | {best_attack:.3} | {best_all:.3} | | | {} |",
            curve.len()
        );
    }
    out.push_str("\nMean membership accuracy per 100 rounds:\n\n");
    for r in rows {
        let _ = writeln!(out, "- {}: {}", r.run, spaced(&r.per_100));
    }
    for (run, start, curve) in references {
        let _ = writeln!(
            out,
            "- {run}, authors' log: {}",
            spaced(&curve_figures(curve, *start).3)
        );
    }
    out
}

fn spaced(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.3}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes the report of the runs in `dir`; returns its figures.
pub fn report(dir: &Path) -> Result<Vec<RunFigures>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("summary.json").is_file() && p.join("metrics.jsonl").is_file())
        .collect();
    entries.sort();
    if entries.is_empty() {
        anyhow::bail!(
            "{} holds no finished membership run (a folder with summary.json)",
            dir.display()
        );
    }
    let mut figs = Vec::new();
    let mut references = Vec::new();
    for path in &entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let s: MiaRunSummary = serde_json::from_str(
            &std::fs::read_to_string(path.join("summary.json"))
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{}: not a membership run's summary", path.display()))?;
        let rows: Vec<MiaRoundMetrics> = std::fs::read_to_string(path.join("metrics.jsonl"))?
            .lines()
            .map(serde_json::from_str)
            .collect::<std::result::Result<_, _>>()
            .with_context(|| format!("reading {}/metrics.jsonl", path.display()))?;
        let f = figures(&name, &s, &rows);
        let reference = dir.join("authors").join(format!("{name}.csv"));
        let theirs = if reference.is_file() {
            let c = read_curve(&reference)?;
            references.push((name.clone(), s.mia.start_round, c.clone()));
            Some(c)
        } else {
            None
        };
        draw_curve(
            &dir.join(format!("curve-{name}.png")),
            &name,
            &rows,
            theirs.as_ref(),
        )?;
        figs.push(f);
    }
    write_atomic(&dir.join("table.csv"), csv(&figs).as_bytes())?;
    write_atomic(
        &dir.join("report.md"),
        markdown(&figs, &references).as_bytes(),
    )?;
    Ok(figs)
}

/// Membership accuracy per round, as means over 10 rounds, with the reference beside it.
fn draw_curve(
    path: &Path,
    name: &str,
    rows: &[MiaRoundMetrics],
    theirs: Option<&Curve>,
) -> Result<()> {
    let points = |acc: &[f64]| -> Vec<(f64, f64)> {
        window_means(acc, 10)
            .into_iter()
            .enumerate()
            .map(|(i, m)| ((i * 10 + 5) as f64, m))
            .collect()
    };
    let ours: Vec<f64> = rows.iter().map(|r| r.membership.accuracy).collect();
    let mut series = vec![Series {
        label: "this lab (mean per 10 rounds)",
        points: points(&ours),
    }];
    let mut hi = ours.iter().copied().fold(0.6f64, f64::max);
    if let Some(c) = theirs {
        let acc: Vec<f64> = c.iter().map(|p| p.1).collect();
        hi = acc.iter().copied().fold(hi, f64::max);
        series.push(Series {
            label: "authors' log (mean per 10 rounds)",
            points: points(&acc),
        });
    }
    let rounds = rows.len().max(theirs.map_or(0, |c| c.len())) as f64;
    LineChart {
        title: &format!("{name}: membership accuracy per round"),
        x_label: "round",
        y_label: "membership accuracy",
        x_range: Some((0.0, rounds)),
        y_range: (0.4, (hi + 0.05).min(1.0)),
        series,
    }
    .draw(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_curve_by_hand() {
        // 300 rounds; the attack from round 201: the last 50 of rounds 201..=300 are
        // 251..=300, all at 0.75; rounds 201..=250 are at 0.5.
        let curve: Curve = (1..=300)
            .map(|r| (r, if r <= 250 { 0.5 } else { 0.75 }))
            .collect();
        let (last50, best_attack, best_all, per100) = curve_figures(&curve, 201);
        assert_eq!(last50, 0.75);
        assert_eq!((best_attack, best_all), (0.75, 0.75));
        assert_eq!(per100, [0.5, 0.5, 0.625]);
        let early: Curve = vec![(1, 0.9), (2, 0.5), (3, 0.6)];
        let (_, best_attack, best_all, _) = curve_figures(&early, 2);
        assert_eq!((best_attack, best_all), (0.6, 0.9));
    }

    #[test]
    fn curves_are_read_or_refused() {
        let dir = fl_data::scratch::ScratchDir::new("mia-report").unwrap();
        let p = dir.path().join("c.csv");
        std::fs::write(&p, "round,attack_accuracy,x\n1,0.5,0\n2,0.75,1\n").unwrap();
        assert_eq!(read_curve(&p).unwrap(), [(1, 0.5), (2, 0.75)]);
        std::fs::write(&p, "round,attack_accuracy\n1,abc\n").unwrap();
        assert!(read_curve(&p).unwrap_err().to_string().contains("`1,abc`"));
    }

    #[test]
    fn csv_has_the_columns_asked_for() {
        let r = RunFigures {
            run: "mnist-angle".into(),
            dataset: "mnist".into(),
            aggregator: "fedavg".into(),
            variant: "fedpoisonmia".into(),
            last50_mean: 0.57777,
            best_attack_rounds: 0.65,
            best_all_rounds: 0.66,
            main_accuracy: 0.98,
            rounds: 800,
            per_100: vec![0.5],
            final_train_loss: 1e-9,
        };
        assert_eq!(
            csv(&[r]),
            "dataset,aggregator,variant,last50_mean,best_attack_rounds,best_all_rounds,\
             main_accuracy,rounds\nmnist,fedavg,fedpoisonmia,0.5778,0.6500,0.6600,0.9800,800\n"
        );
    }
}
