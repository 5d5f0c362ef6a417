//! The verdict: whether a trial passed, and if not, why in one sentence
//! (the lost process first, then each count that disagrees, then the failed
//! slots grouped by reason).

use super::{SlotFailure, TrialReport};
use crate::wire::HubKind;

impl TrialReport {
    /// Why the trial failed, or `None` when every count agrees, trunk is
    /// linear and no slot failed. Against a stock `fossil server` forks are
    /// what is measured, not a failure: there every task's check-in must
    /// reach the server, however many trunk leaves that makes.
    pub fn verdict(&self) -> Option<String> {
        // A process herd could not keep running is the cause; the counts
        // that follow from it are not.
        if let Some(cause) = &self.infra_failure {
            return Some(format!(
                "{cause}; herd stopped the trial with {} of {} tasks committed",
                self.committed, self.total
            ));
        }
        let mut why = Vec::new();
        match self.hub_commits {
            Some(n) if n != self.committed => why.push(format!(
                "hub has {n} trunk commits but leaves committed {}",
                self.committed
            )),
            Some(_) => {}
            None => why.push(match &self.hub_count_error {
                Some(e) => format!("the hub's count of trunk commits is unknown ({e})"),
                None => "the hub's count of trunk commits is unknown".into(),
            }),
        }
        if self.committed != self.claims_won {
            why.push(format!(
                "{} claims won but {} tasks committed",
                self.claims_won, self.committed
            ));
        }
        if self.committed != self.total {
            why.push(format!(
                "{} of {} tasks committed",
                self.committed, self.total
            ));
        }
        if self.hub_kind == HubKind::Herd {
            if let Some(n) = self.trunk_leaves.filter(|&n| n != 1) {
                why.push(format!("trunk has {n} leaves, not 1"));
            }
        }
        if let Some(failure) = self.edits.as_ref().and_then(|e| e.failure()) {
            why.push(failure);
        }
        why.extend(failed_groups(&self.failed_slots));
        if why.is_empty() {
            return None;
        }
        // What happened to the infrastructure comes first: it is the likely
        // cause of what follows.
        Some(
            self.infra_events
                .iter()
                .chain(why.iter())
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

/// Slots listed per failure reason before the rest are counted.
const SLOTS_NAMED: usize = 8;

/// One clause per failure reason, naming its slots: a trial of 128 agents
/// that times out reads as a few lines, not 128 clauses.
fn failed_groups(failed: &[SlotFailure]) -> Vec<String> {
    let mut groups: Vec<(&str, Vec<u32>)> = Vec::new();
    for f in failed {
        match groups.iter_mut().find(|(reason, _)| *reason == f.reason) {
            Some((_, slots)) => slots.push(f.slot),
            None => groups.push((&f.reason, vec![f.slot])),
        }
    }
    groups
        .into_iter()
        .map(|(reason, slots)| {
            let named: Vec<String> = slots.iter().take(SLOTS_NAMED).map(u32::to_string).collect();
            let more = slots.len().saturating_sub(SLOTS_NAMED);
            let (noun, tail) = match (slots.len(), more) {
                (1, _) => ("slot", String::new()),
                (_, 0) => ("slots", String::new()),
                (_, n) => ("slots", format!(" and {n} more")),
            };
            format!("{noun} {}{tail} failed: {reason}", named.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::summary::tests::{shape, slot};
    use crate::supervisor::summary::HubCount;

    #[test]
    fn a_missing_summary_or_a_short_hub_fails_the_trial() {
        let mut silent = slot(1, &[2.0], 0);
        silent.summary = None;
        let slots = [slot(0, &[1.0, 3.0], 0), silent];
        let hub = HubCount {
            trunk_commits: 2,
            trunk_leaves: 2,
            requests: Some(3),
            peak_rss_kb: None,
            hub_rebases: None,
            hub_merges: None,
            conflicts: None,
            bytes_out: None,
        };
        let r = TrialReport::build(shape(), &slots, hub);
        let why = r.verdict().expect("must fail");
        assert!(
            why.contains("slot 1 failed: exited without a summary line"),
            "{why}"
        );
        assert!(why.contains("trunk has 2 leaves"), "{why}");
        assert!(
            why.contains("hub has 2 trunk commits but leaves committed 3"),
            "{why}"
        );
    }

    #[test]
    fn failed_slots_are_grouped_by_reason() {
        let fail = |slot, reason: &str| SlotFailure {
            slot,
            reason: reason.to_string(),
        };
        let mut failed = vec![fail(3, "exit 1")];
        failed.extend((10..30).map(|s| fail(s, "killed")));
        let groups = failed_groups(&failed);
        assert_eq!(
            groups,
            [
                "slot 3 failed: exit 1".to_string(),
                "slots 10, 11, 12, 13, 14, 15, 16, 17 and 12 more failed: killed".to_string(),
            ]
        );
    }
}
