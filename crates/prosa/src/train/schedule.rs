//! Learning-rate schedules: a multiplier of the base learning rate for each optimisation step.

use serde::{Deserialize, Serialize};

/// The shape of the learning rate over training, as Hugging Face's `lr_scheduler_type` (plus
/// ULMFiT's slanted triangular rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// The base rate throughout (after optional warmup).
    #[default]
    Constant,
    /// Linear warmup, then linear decay to 0.
    Linear,
    /// Linear warmup, then half a cosine down to 0.
    Cosine,
    /// Howard & Ruder's slanted triangular rate: a short linear rise (`warmup`, by default 10%
    /// of steps) and a long linear fall to 1/32 of the peak.
    SlantedTriangular,
    /// "Attention is all you need" (§5.3; transformers' `inverse_sqrt`): linear warmup, then
    /// the rate falls as `√(warmup / step)`.
    InverseSqrt,
}

impl std::str::FromStr for ScheduleKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "constant" => Ok(Self::Constant),
            "linear" => Ok(Self::Linear),
            "cosine" => Ok(Self::Cosine),
            "slanted_triangular" | "stlr" => Ok(Self::SlantedTriangular),
            "inverse_sqrt" | "noam" => Ok(Self::InverseSqrt),
            other => Err(format!(
                "unknown schedule '{other}' (use constant, linear, cosine, slanted_triangular or inverse_sqrt)"
            )),
        }
    }
}

/// A schedule resolved against the run's length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// The shape.
    pub kind: ScheduleKind,
    /// Steps of linear warmup.
    pub warmup_steps: usize,
    /// Total optimisation steps of the run.
    pub total_steps: usize,
}

impl Schedule {
    /// The multiplier of the base learning rate at `step` (0-based: the first update is step 0).
    pub fn factor(&self, step: usize) -> f64 {
        let total = self.total_steps.max(1) as f64;
        let s = step as f64;
        if self.kind == ScheduleKind::SlantedTriangular {
            let cut = if self.warmup_steps > 0 {
                self.warmup_steps as f64
            } else {
                (0.1 * total).floor().max(1.0)
            };
            let ratio = 32.0;
            let p = if s < cut {
                s / cut
            } else {
                1.0 - (s - cut) / (total - cut).max(1.0)
            };
            return (1.0 + p.max(0.0) * (ratio - 1.0)) / ratio;
        }
        let warm = self.warmup_steps as f64;
        if s < warm {
            return s / warm.max(1.0);
        }
        let progress = ((s - warm) / (total - warm).max(1.0)).clamp(0.0, 1.0);
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => 1.0 - progress,
            ScheduleKind::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            // transformers' get_inverse_sqrt_schedule with timescale = warmup.
            ScheduleKind::InverseSqrt => (warm.max(1.0) / s.max(1.0)).sqrt(),
            ScheduleKind::SlantedTriangular => unreachable!("handled above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_sqrt_warms_up_then_falls_as_the_paper_says() {
        let s = sched(ScheduleKind::InverseSqrt, 100);
        assert!((s.factor(50) - 0.5).abs() < 1e-12);
        assert!((s.factor(100) - 1.0).abs() < 1e-12);
        assert!((s.factor(400) - 0.5).abs() < 1e-12, "√(100/400)");
    }

    fn sched(kind: ScheduleKind, warmup: usize) -> Schedule {
        Schedule {
            kind,
            warmup_steps: warmup,
            total_steps: 100,
        }
    }

    #[test]
    fn linear_warmup_then_decay_matches_transformers() {
        // get_linear_schedule_with_warmup: step/warmup, then (total-step)/(total-warmup).
        let s = sched(ScheduleKind::Linear, 10);
        assert_eq!(s.factor(0), 0.0);
        assert!((s.factor(5) - 0.5).abs() < 1e-12);
        assert!((s.factor(10) - 1.0).abs() < 1e-12);
        assert!((s.factor(55) - 0.5).abs() < 1e-12);
        assert!(s.factor(100).abs() < 1e-12);
    }

    #[test]
    fn cosine_is_half_way_at_mid_point() {
        let s = sched(ScheduleKind::Cosine, 0);
        assert!((s.factor(50) - 0.5).abs() < 1e-12);
        assert!((s.factor(0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn slanted_triangular_peaks_at_cut() {
        let s = sched(ScheduleKind::SlantedTriangular, 0);
        assert!((s.factor(10) - 1.0).abs() < 1e-12);
        assert!((s.factor(0) - 1.0 / 32.0).abs() < 1e-12);
        assert!(s.factor(5) < 1.0 && s.factor(50) < 1.0);
    }
}
