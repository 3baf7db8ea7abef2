//! Effort variance: how far `used` landed from `estimate`, and when that is worth a learning.

use serde::Serialize;

use super::model::{Task, Tokens};

/// How notable a variance is, per the protocol's ±50% / ±100% thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Within ±50%.
    Ok,
    /// Beyond ±50%: record it as a learning.
    Learning,
    /// Beyond ±100%.
    Critical,
}

/// One task's variance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variance {
    pub id: String,
    pub estimate: Tokens,
    pub used: Tokens,
    /// `(used − estimate) / estimate`, e.g. `0.25` for 25% over.
    pub variance: f64,
    pub level: Level,
}

/// `(used − estimate) / estimate`; `None` for a zero estimate, where no ratio exists.
pub fn ratio(estimate: Tokens, used: Tokens) -> Option<f64> {
    (estimate.0 > 0).then(|| (used.0 as f64 - estimate.0 as f64) / estimate.0 as f64)
}

/// Classifies a ratio; the thresholds are exclusive ("beyond").
pub fn level(ratio: f64) -> Level {
    let a = ratio.abs();
    if a > 1.0 {
        Level::Critical
    } else if a > 0.5 {
        Level::Learning
    } else {
        Level::Ok
    }
}

/// Variance of every task that has both a non-zero `estimate` and a `used`.
pub fn variances(tasks: &[Task]) -> Vec<Variance> {
    tasks
        .iter()
        .filter_map(|t| {
            let (estimate, used) = (t.estimate?, t.used?);
            let variance = ratio(estimate, used)?;
            Some(Variance {
                id: t.id.clone(),
                estimate,
                used,
                variance,
                level: level(variance),
            })
        })
        .collect()
}

/// The learnings-file entry for a task that used `used` against `estimate`, when the variance
/// is beyond ±50%; `None` within it.
pub fn learning_entry(
    id: &str,
    estimate: Tokens,
    used: Tokens,
    now: &str,
) -> Option<serde_json::Value> {
    let variance = ratio(estimate, used)?;
    (variance.abs() > 0.5).then(|| {
        serde_json::json!({
            "task": id,
            "estimate": estimate.0,
            "actual": used.0,
            "variance": (variance * 1000.0).round() / 1000.0,
            "when": now,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_exclusive() {
        assert_eq!(ratio(Tokens(8_000), Tokens(6_100)), Some(-0.2375));
        assert_eq!(ratio(Tokens(0), Tokens(5)), None);
        assert_eq!(level(0.5), Level::Ok);
        assert_eq!(level(-0.51), Level::Learning);
        assert_eq!(level(1.0), Level::Learning);
        assert_eq!(level(1.01), Level::Critical);
        assert_eq!(level(-1.5), Level::Critical);
    }
}
