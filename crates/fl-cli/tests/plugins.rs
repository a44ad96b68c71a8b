//! A new attack and a new stateful server rule, written here and nowhere else, run through the
//! CLI's run loop and through a 2x2 grid of the grid engine: an attack is one type
//! implementing `fl_core::Attack`, a rule one type implementing `fl_core::Aggregator`, and an
//! experiment over them one type implementing `fl_cli::grid::Experiment`.

use fl_cli::run_dir::RunDir;
use fl_cli::runner::{Accuracy, run_rounds};
use fl_core::data::LocalData;
use fl_core::experiment::Prepared;
use fl_core::geometry::norm;
use fl_core::update::weighted_mean;
use fl_core::{
    Aggregate, Aggregator, Attack, FedAvg, FedConfig, Federation, MaliciousClients, RoundContext,
    RoundMetrics, ServerRound, Update,
};
use fl_data::scratch::ScratchDir;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Sign flipping with a boost: the attacker trains honestly on its data, then sends the
/// negated update scaled by `scale`.
struct FlipBoost {
    client: usize,
    data: LocalData,
    scale: f32,
}

/// A round's record: the federated round, and whether the server kept the attacker.
#[derive(Clone, Serialize, Deserialize)]
struct FlipRound {
    #[serde(flatten)]
    base: RoundMetrics,
    attacker_kept: bool,
}

impl MaliciousClients for FlipBoost {
    fn clients(&self) -> Vec<usize> {
        vec![self.client]
    }

    fn update(&mut self, client: usize, ctx: &RoundContext<'_>) -> fl_core::Result<Update> {
        let (local, stats) = ctx.train_from_global(client, &self.data);
        let mut u = ctx.update_from(client, &local, stats, self.data.len());
        u.delta.iter_mut().for_each(|d| *d *= -self.scale);
        Ok(u)
    }
}

impl Attack for FlipBoost {
    type Round = FlipRound;
    type Summary = usize;

    fn observe(&mut self, _f: &Federation, base: RoundMetrics) -> fl_core::Result<FlipRound> {
        Ok(FlipRound {
            attacker_kept: base.kept.contains(&self.client),
            base,
        })
    }

    fn base(round: &FlipRound) -> &RoundMetrics {
        &round.base
    }

    /// Rounds in which the attacker got through.
    fn summary(&self, _f: &Federation, rounds: &[FlipRound]) -> fl_core::Result<usize> {
        Ok(rounds.iter().filter(|r| r.attacker_kept).count())
    }
}

/// Probation: a client whose update was once longer than `factor` times the round's median
/// norm is left out of every later average too (state across rounds).
struct Probation {
    factor: f64,
    barred: BTreeSet<usize>,
}

impl Aggregator for Probation {
    fn state(&self) -> Option<Vec<u8>> {
        fl_core::checkpoint::encode(&self.barred).ok()
    }

    fn set_state(&mut self, state: &[u8]) -> fl_core::Result<()> {
        self.barred = fl_core::checkpoint::decode(state)?;
        Ok(())
    }

    fn aggregate(
        &mut self,
        _round: &ServerRound<'_>,
        updates: &[Update],
    ) -> fl_core::Result<Aggregate> {
        let mut norms: Vec<f64> = updates.iter().map(|u| norm(&u.delta)).collect();
        norms.sort_by(f64::total_cmp);
        let median = norms[norms.len() / 2];
        for u in updates {
            if norm(&u.delta) > self.factor * median {
                self.barred.insert(u.client);
            }
        }
        let kept: Vec<&Update> = updates
            .iter()
            .filter(|u| !self.barred.contains(&u.client))
            .collect();
        let ids = kept.iter().map(|u| u.client).collect();
        Ok(Aggregate::new(weighted_mean(&kept)?, ids)
            .with_metric("barred", self.barred.len() as f64))
    }
}

fn config() -> FedConfig {
    let mut cfg: FedConfig = toml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../configs/tiny/train.toml"
        ))
        .unwrap(),
    )
    .unwrap();
    cfg.data_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures").into();
    cfg.rounds = 3;
    cfg
}

/// Runs the attack against `rule` through the CLI's loop into `dir`; returns the records,
/// the summary and the written `metrics.jsonl`.
fn attacked(rule: Box<dyn Aggregator>, dir: &std::path::Path) -> (Vec<FlipRound>, usize, String) {
    let prepared = Prepared::load(&config()).unwrap();
    let mut attack = FlipBoost {
        client: 0,
        data: prepared.client_data(0),
        scale: 5.0,
    };
    let mut fed = prepared
        .federation(prepared.seated(&attack.clients()), rule)
        .unwrap();
    let run_dir = RunDir::create(dir).unwrap();
    let rows = run_rounds(
        &mut fed,
        &mut attack,
        &run_dir,
        "plugin",
        false,
        &mut Accuracy,
        0,
    )
    .unwrap();
    let summary = attack.summary(&fed, &rows).unwrap();
    let written = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    (rows, summary, written)
}

#[test]
fn an_attack_and_a_stateful_rule_written_outside_the_crates_run_through_the_runner() {
    let tmp = ScratchDir::new("plugins").unwrap();
    let (open, kept_open, _) = attacked(Box::new(FedAvg), &tmp.path().join("fedavg"));
    let (guarded, kept_guarded, written) = attacked(
        Box::new(Probation {
            factor: 3.0,
            barred: BTreeSet::new(),
        }),
        &tmp.path().join("probation"),
    );
    // FedAvg keeps everyone; the attacker's 5x flipped update is over 3x the median norm in
    // round 1, so probation bars it then and keeps it out of the later rounds.
    assert_eq!((kept_open, kept_guarded), (3, 0));
    for r in &guarded {
        assert_eq!(r.base.kept, [1, 2, 3], "round {}", r.base.round);
        assert_eq!(r.base.server["barred"], 1.0);
    }
    // What the rule bought: the guarded model is the better one.
    let acc = |rows: &[FlipRound]| rows.last().unwrap().base.test.as_ref().unwrap().accuracy;
    // (Measured: 0.41 against 0.08 under FedAvg.)
    assert!(
        acc(&guarded) > acc(&open) + 0.2,
        "{} vs {}",
        acc(&guarded),
        acc(&open)
    );
    // Both parts of the record reach metrics.jsonl: the attack's field and the rule's figure.
    let lines: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["round"], i + 1);
        assert_eq!(l["attacker_kept"], false);
        assert_eq!(l["server"]["barred"], 1.0);
    }
    // The attacker's seat is never asked: a round run without the attack says so.
    let prepared = Prepared::load(&config()).unwrap();
    let mut fed = prepared
        .federation(prepared.seated(&[0]), Box::new(FedAvg))
        .unwrap();
    let err = fed.run_round().unwrap_err().to_string();
    assert!(err.contains("client 0 is played by an attack"), "{err}");
}

/// The 2x2 study of the two plug-ins: attack (none, flip-boost) x rule (fedavg, probation),
/// each cell a run folder under `root/runs/`.
struct PlugInStudy {
    root: std::path::PathBuf,
}

#[derive(Clone)]
struct StudyCell {
    id: String,
    attack: bool,
    probation: bool,
}

impl fl_cli::grid::CellSpec for StudyCell {
    fn id(&self) -> &str {
        &self.id
    }

    fn hash(&self) -> &str {
        // Nothing but the two axes decides the numbers.
        &self.id
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct StudyRecord {
    id: String,
    config_hash: String,
    final_accuracy: f64,
    attacker_kept_rounds: Option<usize>,
}

impl fl_cli::grid::Record for StudyRecord {
    fn id(&self) -> &str {
        &self.id
    }

    fn config_hash(&self) -> &str {
        &self.config_hash
    }

    fn without_times(&self) -> Self {
        self.clone()
    }

    fn headline(&self) -> String {
        format!("{:.3}", self.final_accuracy)
    }
}

impl fl_cli::grid::Experiment for PlugInStudy {
    type Cell = StudyCell;
    type Record = StudyRecord;

    fn run_group(
        &self,
        cells: &[StudyCell],
        _ctx: fl_cli::grid::GroupContext,
        done: &mut dyn FnMut(&StudyCell, anyhow::Result<StudyRecord>),
    ) {
        for c in cells {
            let rule: Box<dyn Aggregator> = if c.probation {
                Box::new(Probation {
                    factor: 3.0,
                    barred: BTreeSet::new(),
                })
            } else {
                Box::new(FedAvg)
            };
            let dir = self.root.join("runs").join(&c.id);
            let (final_accuracy, kept) = if c.attack {
                let (rows, kept, _) = attacked(rule, &dir);
                (
                    rows.last().unwrap().base.test.as_ref().unwrap().accuracy,
                    Some(kept),
                )
            } else {
                let prepared = Prepared::load(&config()).unwrap();
                let mut fed = prepared.federation(prepared.seated(&[]), rule).unwrap();
                let run_dir = RunDir::create(&dir).unwrap();
                let rows = run_rounds(
                    &mut fed,
                    &mut fl_core::NoAttack,
                    &run_dir,
                    "plugin",
                    false,
                    &mut Accuracy,
                    0,
                )
                .unwrap();
                (rows.last().unwrap().test.as_ref().unwrap().accuracy, None)
            };
            done(
                c,
                Ok(StudyRecord {
                    id: c.id.clone(),
                    config_hash: c.id.clone(),
                    final_accuracy,
                    attacker_kept_rounds: kept,
                }),
            );
        }
    }
}

#[test]
fn the_plug_ins_run_as_a_two_by_two_grid() {
    use fl_cli::grid::{Axis, GridDir, GridOptions, Manifest, expand};
    let tmp = ScratchDir::new("plugins-grid").unwrap();
    let axes = [
        Axis::key("attack", vec!["none".into(), "flip-boost".into()]),
        Axis::key("rule", vec!["fedavg".into(), "probation".into()]),
    ];
    let cells: Vec<StudyCell> = expand(&toml::Table::new(), &axes)
        .unwrap()
        .into_iter()
        .map(|e| StudyCell {
            attack: e.table["attack"].as_str() == Some("flip-boost"),
            probation: e.table["rule"].as_str() == Some("probation"),
            id: e.id,
        })
        .collect();
    let dir = GridDir::<StudyRecord>::create(
        tmp.path(),
        &Manifest {
            name: "plug-ins".into(),
            base_hash: "tiny".into(),
        },
    )
    .unwrap();
    let opts = GridOptions {
        out: tmp.path().to_path_buf(),
        jobs: 2,
        threads: 1,
        shard: None,
        warm_start: false,
        progress: false,
        device_memory: None,
    };
    let mut study = PlugInStudy {
        root: tmp.path().to_path_buf(),
    };
    let r = fl_cli::grid::run(&mut study, "plug-ins", cells.clone(), &dir, &opts).unwrap();
    assert_eq!((r.cells, r.ran, r.failed.len()), (4, 4, 0));
    let all = dir.all().unwrap();
    let acc = |id: &str| all[id].final_accuracy;
    // Without the attack, probation bars nobody: the same model as FedAvg.
    assert_eq!(acc("none-fedavg"), acc("none-probation"));
    assert_eq!(all["none-probation"].attacker_kept_rounds, None);
    // With it, FedAvg keeps the attacker all 3 rounds and probation none; what the rule buys.
    assert_eq!(all["flip-boost-fedavg"].attacker_kept_rounds, Some(3));
    assert_eq!(all["flip-boost-probation"].attacker_kept_rounds, Some(0));
    assert!(acc("flip-boost-probation") > acc("flip-boost-fedavg") + 0.2);
    // Each cell left its run folder; a second run finds them all finished.
    assert!(
        tmp.path()
            .join("runs/flip-boost-probation/metrics.jsonl")
            .exists()
    );
    let again = fl_cli::grid::run(&mut study, "plug-ins", cells, &dir, &opts).unwrap();
    assert_eq!((again.ran, again.skipped), (0, 4));
}
