//! Reading a submit Job: running, done, or failed and why. Pure functions of the Job and its pods.
//!
//! The reason of a failure comes from the pods' termination messages: `fetch-jar` writes
//! `<Reason>: <detail>` (see the `REASON_*` constants of [`super::build`]), and `submit` runs with
//! `terminationMessagePolicy: FallbackToLogsOnError`, so the kubelet puts the tail of its log in
//! the termination message. The operator therefore needs no `pods/log` permission.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;

use super::build::{REASON_CHECKSUM_MISMATCH, REASON_JAR_COPY_FAILED, REASON_JAR_DOWNLOAD_FAILED};

/// Condition and Event reason when `storm jar` fails.
pub const REASON_SUBMIT_FAILED: &str = "SubmitFailed";
/// Log lines of the `submit` container kept in a condition message.
pub const LOG_TAIL_LINES: usize = 8;

/// Where a submit Job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Still running (or not started).
    Running,
    /// `storm jar` exited 0.
    Succeeded {
        /// When the Job completed.
        at: Option<Timestamp>,
    },
    /// The Job failed for good (backoff limit or deadline).
    Failed {
        /// The Job condition's reason, e.g. `BackoffLimitExceeded`.
        reason: String,
        /// The Job condition's message.
        message: String,
    },
}

/// The state of `job` from its conditions.
pub fn job_state(job: &Job) -> JobState {
    let status = job.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let holds = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if let Some(c) = holds("Failed") {
        return JobState::Failed {
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        };
    }
    if holds("Complete").is_some() || status.and_then(|s| s.succeeded).unwrap_or(0) > 0 {
        return JobState::Succeeded {
            at: status.and_then(|s| s.completion_time.as_ref()).map(|t| t.0),
        };
    }
    JobState::Running
}

/// Why a submit Job failed, for a condition and an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// `JarDownloadFailed`, `ChecksumMismatch`, `JarCopyFailed` or `SubmitFailed`.
    pub reason: &'static str,
    /// What happened, with the tail of the `submit` log when that is what failed.
    pub message: String,
    /// `storm jar` failed because Storm already runs a topology of that name: information, not
    /// a failure of the spec.
    pub already_alive: bool,
}

fn terminated_failure(status: &ContainerStatus) -> Option<(i32, String)> {
    let terminated = status
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .or_else(|| {
            status
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
        })?;
    (terminated.exit_code != 0).then(|| {
        (
            terminated.exit_code,
            terminated.message.clone().unwrap_or_default(),
        )
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Why the Job `job_name` failed, from its pods (newest first wins) and its own condition.
pub fn diagnose(job_name: &str, job_reason: &str, job_message: &str, pods: &[Pod]) -> Failure {
    let mut pods: Vec<&Pod> = pods.iter().collect();
    pods.sort_by_key(|p| std::cmp::Reverse(p.metadata.creation_timestamp.clone()));
    for pod in pods {
        let status = pod.status.as_ref();
        let init = status
            .and_then(|s| s.init_container_statuses.as_deref())
            .unwrap_or_default();
        if let Some((code, message)) = init
            .iter()
            .filter(|c| c.name == "fetch-jar")
            .find_map(terminated_failure)
        {
            let first = message.lines().next().unwrap_or_default().trim();
            let reason = [
                REASON_CHECKSUM_MISMATCH,
                REASON_JAR_DOWNLOAD_FAILED,
                REASON_JAR_COPY_FAILED,
            ]
            .into_iter()
            .find(|r| first.starts_with(&format!("{r}:")))
            .unwrap_or(REASON_JAR_DOWNLOAD_FAILED);
            let detail = if first.is_empty() {
                format!("fetch-jar exited with code {code}")
            } else {
                first.to_string()
            };
            return Failure {
                reason,
                message: format!("submit Job {job_name}: {detail}"),
                already_alive: false,
            };
        }
        let containers = status
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default();
        if let Some((code, log)) = containers
            .iter()
            .filter(|c| c.name == "submit")
            .find_map(terminated_failure)
        {
            let already_alive = log.contains("AlreadyAliveException");
            let log = tail(&log, LOG_TAIL_LINES);
            return Failure {
                reason: REASON_SUBMIT_FAILED,
                message: format!(
                    "submit Job {job_name}: storm jar exited with code {code}; its log ends with:\n{log}"
                ),
                already_alive,
            };
        }
    }
    let why = match (job_reason, job_message) {
        ("", "") => "failed".to_string(),
        (r, "") => r.to_string(),
        (r, m) => format!("{r}: {m}"),
    };
    Failure {
        reason: REASON_SUBMIT_FAILED,
        message: format!("submit Job {job_name}: {why}"),
        already_alive: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"}, "status": status})).unwrap()
    }

    #[test]
    fn states_come_from_the_job_conditions() {
        assert_eq!(job_state(&job(json!({"active": 1}))), JobState::Running);
        assert!(matches!(
            job_state(&job(
                json!({"succeeded": 1, "completionTime": "2026-01-01T00:00:00Z",
                "conditions": [{"type": "Complete", "status": "True"}]})
            )),
            JobState::Succeeded { at: Some(_) }
        ));
        assert_eq!(
            job_state(&job(json!({"failed": 3, "conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}))),
            JobState::Failed {
                reason: "BackoffLimitExceeded".into(),
                message: "Job has reached the specified backoff limit".into()
            }
        );
    }

    #[test]
    fn a_checksum_mismatch_is_named_by_fetch_jar() {
        let p = pod(
            json!({"metadata": {"name": "p"}, "status": {"initContainerStatuses": [{
            "name": "fetch-jar", "image": "curl", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 3, "message": "ChecksumMismatch: expected aa, got bb\n"}}}]}}),
        );
        let f = diagnose("j", "BackoffLimitExceeded", "", &[p]);
        assert_eq!(f.reason, "ChecksumMismatch");
        assert_eq!(
            f.message,
            "submit Job j: ChecksumMismatch: expected aa, got bb"
        );
    }

    #[test]
    fn a_failed_storm_jar_reports_the_tail_of_its_log() {
        let log: String = (1..=20).map(|i| format!("line {i}\n")).collect::<String>()
            + "Exception in thread main org.apache.storm.generated.AlreadyAliveException: wc is already alive\n";
        let p = pod(
            json!({"metadata": {"name": "p"}, "status": {"containerStatuses": [{
            "name": "submit", "image": "storm", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "message": log}}}]}}),
        );
        let f = diagnose("j", "BackoffLimitExceeded", "", &[p]);
        assert_eq!(f.reason, "SubmitFailed");
        assert!(f.already_alive);
        assert!(
            f.message.contains("line 20") && !f.message.contains("line 12\n"),
            "{}",
            f.message
        );
        assert!(f.message.contains("code 1"));
    }

    #[test]
    fn without_pods_the_job_condition_explains() {
        let f = diagnose(
            "j",
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
            &[],
        );
        assert_eq!(f.reason, "SubmitFailed");
        assert!(
            f.message
                .contains("DeadlineExceeded: Job was active longer"),
            "{}",
            f.message
        );
    }
}
