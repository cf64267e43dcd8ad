//! The fold from a delivery's log to its current state: the definition the projection table must
//! agree with. `hookd projection check` applies it to every delivery and reports differences.

use chrono::{DateTime, Utc};

use crate::delivery::{DeliveryState, LogEntry, LogKind};

/// The projected columns of one delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Projected {
    pub state: DeliveryState,
    pub attempts: i32,
    pub budget_start: i32,
    pub due_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub last_http_status: Option<i32>,
    pub last_error: Option<String>,
}

/// A log that no valid sequence of state changes produces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("the log is empty")]
    Empty,
    #[error("the log does not start with `created` (seq {seq} is `{kind}`)")]
    NotCreatedFirst { seq: i64, kind: LogKind },
    #[error("`created` appears again at seq {seq}")]
    CreatedTwice { seq: i64 },
    #[error("`{kind}` at seq {seq} is not allowed in state `{state}`")]
    IllegalTransition {
        seq: i64,
        kind: LogKind,
        state: DeliveryState,
    },
}

/// Folds a delivery's log, oldest first, into the state the projection must hold.
pub fn fold<'a>(entries: impl IntoIterator<Item = &'a LogEntry>) -> Result<Projected, FoldError> {
    let mut entries = entries.into_iter();
    let first = entries.next().ok_or(FoldError::Empty)?;
    if first.kind != LogKind::Created {
        return Err(FoldError::NotCreatedFirst {
            seq: first.seq,
            kind: first.kind,
        });
    }
    let mut p = Projected {
        state: DeliveryState::Pending,
        attempts: first.attempt,
        budget_start: 0,
        due_at: first.next_attempt_at,
        lease_owner: None,
        last_http_status: None,
        last_error: None,
    };
    for entry in entries {
        apply(&mut p, entry)?;
    }
    Ok(p)
}

fn apply(p: &mut Projected, e: &LogEntry) -> Result<(), FoldError> {
    use DeliveryState as S;
    use LogKind as K;
    let allowed = match e.kind {
        K::Created => return Err(FoldError::CreatedTwice { seq: e.seq }),
        K::Claimed => matches!(p.state, S::Pending | S::InFlight),
        K::AttemptSucceeded | K::AttemptFailed | K::Released => p.state == S::InFlight,
        K::RetryScheduled => p.state == S::InFlight,
        // From pending when an endpoint is disabled for failing too long.
        K::DeadLettered => matches!(p.state, S::InFlight | S::Pending),
        K::Deferred => matches!(p.state, S::Pending | S::InFlight),
        K::Resumed => p.state == S::Pending,
        K::Redriven => matches!(p.state, S::Dead | S::Succeeded),
        K::Cancelled => matches!(p.state, S::Pending | S::InFlight),
    };
    if !allowed {
        return Err(FoldError::IllegalTransition {
            seq: e.seq,
            kind: e.kind,
            state: p.state,
        });
    }
    p.attempts = e.attempt;
    match e.kind {
        K::Created => {}
        K::Claimed => {
            p.state = S::InFlight;
            p.due_at = e.lease_expires_at;
            p.lease_owner.clone_from(&e.worker_id);
        }
        K::AttemptSucceeded => {
            p.state = S::Succeeded;
            p.due_at = None;
            p.lease_owner = None;
            p.last_http_status = e.http_status;
            p.last_error = None;
        }
        K::AttemptFailed => {
            p.last_http_status = e.http_status;
            if e.error_message.is_some() {
                p.last_error.clone_from(&e.error_message);
            }
        }
        K::RetryScheduled | K::Released | K::Deferred | K::Resumed => {
            p.state = S::Pending;
            p.due_at = e.next_attempt_at;
            p.lease_owner = None;
        }
        K::DeadLettered => {
            p.state = S::Dead;
            p.due_at = None;
            p.lease_owner = None;
            if e.error_message.is_some() {
                p.last_error.clone_from(&e.error_message);
            }
        }
        K::Redriven => {
            p.state = S::Pending;
            p.budget_start = e.attempt;
            p.due_at = e.next_attempt_at;
            p.lease_owner = None;
        }
        K::Cancelled => {
            p.state = S::Cancelled;
            p.due_at = None;
            p.lease_owner = None;
            if e.error_message.is_some() {
                p.last_error.clone_from(&e.error_message);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, kind: LogKind, attempt: i32) -> LogEntry {
        LogEntry {
            seq,
            kind,
            at: Utc::now(),
            attempt,
            worker_id: None,
            http_status: None,
            latency_ms: None,
            error_class: None,
            error_message: None,
            response_excerpt: None,
            next_attempt_at: None,
            lease_expires_at: None,
        }
    }

    #[test]
    fn folds_a_retry_then_dead_letter_then_redrive_then_success() {
        use LogKind as K;
        let mut failed = entry(3, K::AttemptFailed, 1);
        failed.http_status = Some(500);
        failed.error_message = Some("HTTP 500".into());
        let log = [
            entry(1, K::Created, 0),
            entry(2, K::Claimed, 1),
            failed,
            entry(4, K::DeadLettered, 1),
            entry(5, K::Redriven, 1),
            entry(6, K::Claimed, 2),
        ];
        let p = fold(&log).unwrap();
        assert_eq!(p.state, DeliveryState::InFlight);
        assert_eq!(p.attempts, 2);
        assert_eq!(p.budget_start, 1);
        assert_eq!(p.last_http_status, Some(500));
        assert_eq!(p.last_error.as_deref(), Some("HTTP 500"));

        let mut ok = entry(7, K::AttemptSucceeded, 2);
        ok.http_status = Some(204);
        let p = fold(log.iter().chain([&ok])).unwrap();
        assert_eq!(p.state, DeliveryState::Succeeded);
        assert_eq!(p.last_error, None);
        assert_eq!(p.last_http_status, Some(204));
    }

    #[test]
    fn refuses_impossible_histories() {
        use LogKind as K;
        assert_eq!(fold(&[]), Err(FoldError::Empty));
        assert!(matches!(
            fold(&[entry(1, K::Claimed, 1)]),
            Err(FoldError::NotCreatedFirst { .. })
        ));
        assert!(matches!(
            fold(&[entry(1, K::Created, 0), entry(2, K::AttemptSucceeded, 1)]),
            Err(FoldError::IllegalTransition { .. })
        ));
        assert!(matches!(
            fold(&[entry(1, K::Created, 0), entry(2, K::Redriven, 0)]),
            Err(FoldError::IllegalTransition { .. })
        ));
    }
}
