//! Talking to a hub that may not answer: which failures are worth another
//! try, the bounded retries at start-up, the deadline-bound retries during
//! the trial, and the random pause after a refused push.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::xfer::ClientError;

use super::error::LeafError;

/// Attempts at reaching the hub at start-up (clone or first pull) when it
/// does not answer, with doubling waits from [`RETRY_FIRST_WAIT`]: a hub
/// unreachable at start is a usage error, reported within seconds.
const START_ATTEMPTS: u32 = 6;
/// During the trial a push or pull retries a hub that does not answer
/// (down, restarting) for the slot's hub retry limit, waiting
/// [`RETRY_FIRST_WAIT`] at first, doubling up to [`RETRY_MAX_WAIT`], each
/// wait drawn from its upper half so leaves do not return in step.
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(100);
const RETRY_MAX_WAIT: Duration = Duration::from_secs(2);
/// After a refused push the leaf waits a random time below a bound that
/// doubles with each refusal of the same task (from [`JITTER_FIRST_US`] up to
/// [`JITTER_MAX_US`]): randomized exponential backoff, as on a shared
/// medium. Without it, every leaf that lost a race retries at once, the
/// hub sees the same herd again, and the refusals eat the CPU the winners
/// need.
const JITTER_FIRST_US: u64 = 1_000;
const JITTER_MAX_US: u64 = 64_000;

/// Whether an exchange failed because the hub did not answer (refused or
/// reset connection, a cut reply, an overloaded or failing server), so the
/// same request may succeed later. Protocol faults, `error` cards and the
/// local repository's errors would fail again.
pub(super) fn is_transient(e: &ClientError) -> bool {
    match e {
        ClientError::Transport { .. } | ClientError::Body { .. } => true,
        ClientError::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
        _ => false,
    }
}

/// Runs one start-up exchange with the hub, retrying while it does not
/// answer, [`START_ATTEMPTS`] times with doubling waits.
pub(super) fn with_start_retries<T>(
    mut f: impl FnMut() -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    let mut wait = RETRY_FIRST_WAIT;
    let mut attempt = 1;
    loop {
        match f() {
            Err(e) if is_transient(&e) && attempt < START_ATTEMPTS => {
                tracing::info!(error = %e, attempt, "hub exchange failed; retrying");
                std::thread::sleep(wait);
                wait *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Why [`retry_until`] stopped.
#[derive(Debug)]
pub(super) enum GaveUp {
    /// An error that retrying cannot fix.
    Failed(ClientError),
    /// The hub did not answer for the whole deadline.
    Deadline {
        attempts: u32,
        waited: Duration,
        last: ClientError,
    },
}

impl GaveUp {
    /// The leaf's error: `failed` wraps an error retrying cannot fix; a
    /// deadline becomes [`LeafError::HubUnreachable`] for `step`.
    pub(super) fn into_leaf_error(
        self,
        url: &str,
        step: String,
        failed: impl FnOnce(Box<ClientError>) -> LeafError,
    ) -> LeafError {
        match self {
            GaveUp::Failed(e) => failed(Box::new(e)),
            GaveUp::Deadline {
                attempts,
                waited,
                last,
            } => LeafError::HubUnreachable {
                step,
                url: url.to_string(),
                attempts,
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                source: Box::new(last),
            },
        }
    }
}

/// Runs one exchange with the hub, retrying while the hub does not answer
/// (see [`is_transient`]) for up to `limit`, with randomized waits doubling
/// from [`RETRY_FIRST_WAIT`] to [`RETRY_MAX_WAIT`]; the last wait is cut to
/// the deadline.
pub(super) fn retry_until<T>(
    limit: Duration,
    mut f: impl FnMut() -> Result<T, ClientError>,
) -> Result<T, GaveUp> {
    let start = Instant::now();
    let mut wait = RETRY_FIRST_WAIT;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let e = match f() {
            Ok(v) => {
                if attempts > 1 {
                    tracing::info!(attempts, "hub answers again");
                }
                return Ok(v);
            }
            Err(e) if is_transient(&e) => e,
            Err(e) => return Err(GaveUp::Failed(e)),
        };
        let waited = start.elapsed();
        let Some(left) = limit.checked_sub(waited).filter(|d| !d.is_zero()) else {
            return Err(GaveUp::Deadline {
                attempts,
                waited,
                last: e,
            });
        };
        if attempts == 1 {
            tracing::warn!(error = %e, "hub does not answer; retrying");
        } else {
            tracing::info!(error = %e, attempts, "hub still does not answer; retrying");
        }
        let half = wait / 2;
        let pause = half + rand::thread_rng().gen_range(Duration::ZERO..=half);
        std::thread::sleep(pause.min(left));
        wait = (wait * 2).min(RETRY_MAX_WAIT);
    }
}

/// A random pause after the `n`th refusal of one task.
pub(super) fn jitter(n: u32) {
    let bound = JITTER_FIRST_US
        .saturating_mul(1 << n.saturating_sub(1).min(20))
        .min(JITTER_MAX_US);
    let us = rand::thread_rng().gen_range(0..=bound);
    std::thread::sleep(Duration::from_micros(us));
}

#[cfg(test)]
mod tests {
    use super::super::error::chain;
    use super::*;

    fn status(status: u16) -> ClientError {
        ClientError::Status {
            url: "http://127.0.0.1:1/".into(),
            status,
        }
    }

    #[test]
    fn a_hub_that_never_answers_is_given_up_after_the_deadline() {
        let limit = Duration::from_millis(300);
        let start = Instant::now();
        let mut calls = 0;
        let result: Result<(), GaveUp> = retry_until(limit, || {
            calls += 1;
            Err(status(503))
        });
        let Err(GaveUp::Deadline {
            attempts, waited, ..
        }) = result
        else {
            panic!("expected the deadline, got {result:?}");
        };
        assert_eq!(attempts, calls);
        assert!(attempts >= 2, "retried before giving up: {attempts}");
        assert!(waited >= limit && start.elapsed() >= limit);
        let error = GaveUp::Deadline {
            attempts,
            waited,
            last: status(503),
        }
        .into_leaf_error("http://h/", "pull".into(), |_| LeafError::WorkerGone);
        let text = chain(&error);
        assert!(
            text.starts_with("pull: hub http://h/ did not answer for ")
                && text.contains("giving up: http://127.0.0.1:1/ answered HTTP 503"),
            "{text}"
        );
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let mut calls = 0;
        let result: Result<(), GaveUp> = retry_until(Duration::from_secs(30), || {
            calls += 1;
            Err(status(404))
        });
        assert!(matches!(
            result,
            Err(GaveUp::Failed(ClientError::Status { status: 404, .. }))
        ));
        assert_eq!(calls, 1);

        let mut calls = 0;
        let result = retry_until(Duration::from_secs(30), || {
            calls += 1;
            if calls < 3 {
                Err(status(502))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(result.unwrap(), 3);
    }
}
