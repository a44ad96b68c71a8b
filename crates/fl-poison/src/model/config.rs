//! The `[attack]` section of a model-poisoning run (`kind = "model-poison"`).

use super::Craft;
use super::adaptive::{AdaptiveAttack, Scaled, SearchParams};
use super::alie::Alie;
use super::fang::{FangKrum, FangParams, FangTrim};
use super::gaussian::Gaussian;
use super::ipm::Ipm;
use super::min_max::{Bound, MinMax, MinMaxParams};
use super::sign_flip::SignFlip;
use fl_core::FedConfig;
use fl_core::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// Which vector the malicious clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PoisonMethod {
    /// The malicious clients train honestly: the baseline of the same run.
    None,
    /// The negated benign mean.
    SignFlip,
    /// Inner-product manipulation, `[attack.ipm]`.
    Ipm,
    /// A little is enough, `[attack.alie]`.
    #[default]
    Alie,
    /// Gaussian noise, `[attack.gaussian]`.
    Gaussian,
    /// Min-Max, `[attack.min-max]`.
    MinMax,
    /// Min-Sum, `[attack.min-max]`.
    MinSum,
    /// IPM with the tau that moves the server's rule farthest, `[attack.adaptive]`.
    IpmAdaptive,
    /// ALIE with the tau that moves the server's rule farthest, `[attack.adaptive]`.
    AlieAdaptive,
    /// Fang et al.'s attack on trimmed mean, `[attack.fang]`.
    FangTrim,
    /// Fang et al.'s attack on Krum, `[attack.fang]`.
    FangKrum,
}

impl PoisonMethod {
    /// Every method, in the order tables list them.
    pub const ALL: [PoisonMethod; 11] = [
        PoisonMethod::None,
        PoisonMethod::SignFlip,
        PoisonMethod::Ipm,
        PoisonMethod::Alie,
        PoisonMethod::Gaussian,
        PoisonMethod::MinMax,
        PoisonMethod::MinSum,
        PoisonMethod::IpmAdaptive,
        PoisonMethod::AlieAdaptive,
        PoisonMethod::FangTrim,
        PoisonMethod::FangKrum,
    ];

    /// The name in configs.
    pub fn name(self) -> &'static str {
        match self {
            PoisonMethod::None => "none",
            PoisonMethod::SignFlip => "sign-flip",
            PoisonMethod::Ipm => "ipm",
            PoisonMethod::Alie => "alie",
            PoisonMethod::Gaussian => "gaussian",
            PoisonMethod::MinMax => "min-max",
            PoisonMethod::MinSum => "min-sum",
            PoisonMethod::IpmAdaptive => "ipm-adaptive",
            PoisonMethod::AlieAdaptive => "alie-adaptive",
            PoisonMethod::FangTrim => "fang-trim",
            PoisonMethod::FangKrum => "fang-krum",
        }
    }
}

/// Unchecked parameters of a model-poisoning run (the `[attack]` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelPoisonConfig {
    /// What the malicious clients send (default `alie`).
    pub method: PoisonMethod,
    /// Malicious clients: clients `0..malicious` (default 2).
    pub malicious: usize,
    /// First round they attack (default 1); before it they train honestly on their data.
    pub start_round: usize,
    /// Inner-product manipulation.
    pub ipm: Ipm,
    /// A little is enough.
    pub alie: Alie,
    /// Gaussian noise.
    pub gaussian: Gaussian,
    /// Min-Max and Min-Sum.
    #[serde(rename = "min-max")]
    pub min_max: MinMaxParams,
    /// The strength search of the adaptive methods.
    pub adaptive: SearchParams,
    /// Fang et al.'s attacks.
    pub fang: FangParams,
}

impl Default for ModelPoisonConfig {
    fn default() -> Self {
        Self {
            method: PoisonMethod::default(),
            malicious: 2,
            start_round: 1,
            ipm: Ipm::default(),
            alie: Alie::default(),
            gaussian: Gaussian::default(),
            min_max: MinMaxParams::default(),
            adaptive: SearchParams::default(),
            fang: FangParams::default(),
        }
    }
}

impl ModelPoisonConfig {
    /// Refuses what cannot run on `fed`: no malicious client, no benign one left, a start
    /// outside the run, bad parameters of the chosen method.
    pub fn validate(&self, fed: &FedConfig) -> Result<()> {
        let bad = |m: String| Err(CoreError::Config(m));
        if self.malicious == 0 || self.malicious >= fed.clients {
            return bad(format!(
                "attack.malicious must be in 1..{} (clients 0..m are malicious, at least one \
                 benign), got {}",
                fed.clients, self.malicious
            ));
        }
        if self.start_round == 0 || self.start_round > fed.rounds {
            return bad(format!(
                "attack.start_round must be in 1..={}, got {}",
                fed.rounds, self.start_round
            ));
        }
        match self.method {
            PoisonMethod::Ipm => self.ipm.validate(),
            PoisonMethod::Alie => self.alie.validate(),
            PoisonMethod::Gaussian => self.gaussian.validate(),
            PoisonMethod::MinMax | PoisonMethod::MinSum => self.min_max.validate(),
            PoisonMethod::IpmAdaptive | PoisonMethod::AlieAdaptive => self.adaptive.validate(),
            PoisonMethod::FangTrim | PoisonMethod::FangKrum => self.fang.validate(),
            PoisonMethod::None | PoisonMethod::SignFlip => Ok(()),
        }
    }

    /// The crafting attack of the method (`None` for the honest baseline); the adaptive
    /// methods simulate `rule`, the attacker's copy of the server's.
    pub fn craft(&self, rule: Box<dyn fl_core::Aggregator>) -> Result<Option<Box<dyn Craft>>> {
        Ok(Some(match self.method {
            PoisonMethod::None => return Ok(None),
            PoisonMethod::SignFlip => Box::new(SignFlip),
            PoisonMethod::Ipm => Box::new(self.ipm),
            PoisonMethod::Alie => Box::new(self.alie),
            PoisonMethod::Gaussian => Box::new(self.gaussian),
            PoisonMethod::MinMax => Box::new(MinMax::new(Bound::MinMax, self.min_max)),
            PoisonMethod::MinSum => Box::new(MinMax::new(Bound::MinSum, self.min_max)),
            PoisonMethod::IpmAdaptive => {
                Box::new(AdaptiveAttack::new(Scaled::Ipm, self.adaptive, rule)?)
            }
            PoisonMethod::AlieAdaptive => {
                Box::new(AdaptiveAttack::new(Scaled::Alie, self.adaptive, rule)?)
            }
            PoisonMethod::FangTrim => Box::new(FangTrim { params: self.fang }),
            PoisonMethod::FangKrum => Box::new(FangKrum::new(self.fang, rule)?),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_parse_and_bad_values_are_refused_with_the_key() {
        let c: ModelPoisonConfig =
            toml::from_str("method = \"ipm\"\nmalicious = 3\n[ipm]\ntau = 0.1\n").unwrap();
        assert_eq!(
            (c.method, c.malicious, c.ipm.tau),
            (PoisonMethod::Ipm, 3, 0.1)
        );
        assert!(toml::from_str::<ModelPoisonConfig>("methd = \"ipm\"").is_err());
        let fed = FedConfig {
            clients: 10,
            rounds: 5,
            ..FedConfig::default()
        };
        c.validate(&fed).unwrap();
        let err = |c: ModelPoisonConfig| c.validate(&fed).unwrap_err().to_string();
        assert!(
            err(ModelPoisonConfig {
                malicious: 10,
                ..c.clone()
            })
            .contains("attack.malicious")
        );
        assert!(
            err(ModelPoisonConfig {
                start_round: 6,
                ..c.clone()
            })
            .contains("start_round")
        );
        let mut bad = c.clone();
        bad.ipm.tau = -1.0;
        assert!(err(bad).contains("attack.ipm.tau"));
        let names: Vec<&str> = PoisonMethod::ALL.iter().map(|m| m.name()).collect();
        for n in names {
            let m: PoisonMethod = toml::Value::String(n.into()).try_into().unwrap();
            assert_eq!(m.name(), n);
        }
    }
}
