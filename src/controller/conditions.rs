//! Pure helpers for `metav1.Condition` lists: a condition keeps its `lastTransitionTime` while its
//! status stays the same, so a status write that changes nothing writes the same bytes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A condition as a reconciler computes it, before times are filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired<'a> {
    /// Condition type, e.g. `Ready`.
    pub type_: &'a str,
    /// `True`, `False` or `Unknown`.
    pub status: &'a str,
    /// CamelCase reason.
    pub reason: &'a str,
    /// What a person should know.
    pub message: String,
}

/// Merges `desired` into `current` for an object at `generation`, at time `now`: a condition whose
/// status is unchanged keeps its transition time; conditions of other types are kept as they are.
/// Returns the new list, sorted by type so that the output is stable.
pub fn merge(
    current: &[Condition],
    desired: &[Desired<'_>],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = current
        .iter()
        .filter(|c| !desired.iter().any(|d| d.type_ == c.type_))
        .cloned()
        .collect();
    for d in desired {
        let previous = current.iter().find(|c| c.type_ == d.type_);
        let last_transition_time = match previous {
            Some(p) if p.status == d.status => p.last_transition_time.clone(),
            _ => Time(now),
        };
        out.push(Condition {
            type_: d.type_.to_string(),
            status: d.status.to_string(),
            reason: d.reason.to_string(),
            message: truncate(&d.message, 1024),
            observed_generation: generation,
            last_transition_time,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn ready(status: &'static str, reason: &'static str) -> Desired<'static> {
        Desired {
            type_: "Ready",
            status,
            reason,
            message: format!("{reason} message"),
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let first = merge(&[], &[ready("False", "Pending")], Some(1), at(100));
        assert_eq!(first[0].last_transition_time, Time(at(100)));
        let same = merge(&first, &[ready("False", "StillPending")], Some(2), at(200));
        assert_eq!(
            same[0].last_transition_time,
            Time(at(100)),
            "same status keeps the time"
        );
        assert_eq!(same[0].reason, "StillPending");
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(&same, &[ready("True", "Running")], Some(2), at(300));
        assert_eq!(flipped[0].last_transition_time, Time(at(300)));
    }

    #[test]
    fn other_types_are_kept_and_output_is_sorted() {
        let mut current = merge(
            &[],
            &[Desired {
                type_: "Submitted",
                status: "True",
                reason: "Submitted",
                message: String::new(),
            }],
            Some(1),
            at(1),
        );
        current = merge(&current, &[ready("True", "Running")], Some(1), at(2));
        let types: Vec<&str> = current.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Submitted"]);
        assert!(is_true(&current, "Submitted"));
        assert!(!is_true(&current, "Degraded"));
    }

    #[test]
    fn unchanged_input_gives_identical_output() {
        let a = merge(&[], &[ready("True", "Running")], Some(3), at(5));
        let b = merge(&a, &[ready("True", "Running")], Some(3), at(99));
        assert_eq!(
            a, b,
            "a steady state reconcile computes the same conditions"
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let text = "é".repeat(600);
        let cut = truncate(&text, 1024);
        assert!(cut.len() <= 1024 && cut.ends_with("..."));
        assert_eq!(truncate("short", 1024), "short");
    }
}
