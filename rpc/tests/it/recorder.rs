//! A test service whose methods echo, sleep, fail or block, and which records
//! every message it is handed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use stratus_rpc::handler::{decode_args, encode_result, null};
use stratus_rpc::{Handler, HandlerError, RemoteError, RequestContext};
use tokio::sync::Semaphore;

/// Arguments of `sleep`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Sleep {
    pub ms: u64,
    pub value: String,
}

/// Records calls per method and implements the test methods.
pub struct Recorder {
    pub name: String,
    calls: Mutex<HashMap<String, usize>>,
    pub active: AtomicUsize,
    pub max_active: AtomicUsize,
    /// `block` waits for a permit here.
    pub gate: Semaphore,
    /// `flaky` fails with a retryable error this many times first.
    pub flaky_failures: AtomicUsize,
}

impl Recorder {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            calls: Mutex::new(HashMap::new()),
            active: AtomicUsize::new(0),
            max_active: AtomicUsize::new(0),
            gate: Semaphore::new(0),
            flaky_failures: AtomicUsize::new(0),
        })
    }

    /// How many times `method` was handed to this service.
    pub fn count(&self, method: &str) -> usize {
        self.calls
            .lock()
            .expect("lock")
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// Total messages handed to this service.
    pub fn total(&self) -> usize {
        self.calls.lock().expect("lock").values().sum()
    }
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(
        &self,
        _ctx: &RequestContext,
        method: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, HandlerError> {
        *self
            .calls
            .lock()
            .expect("lock")
            .entry(method.to_owned())
            .or_default() += 1;
        match method {
            "echo" => encode_result(&decode_args::<serde_json::Value>(method, args)?),
            "whoami" => encode_result(&self.name),
            "sleep" => {
                let sleep: Sleep = decode_args(method, args)?;
                tokio::time::sleep(Duration::from_millis(sleep.ms)).await;
                encode_result(&sleep.value)
            }
            "fail" => Err(HandlerError::Permanent(RemoteError::new(
                "Boom",
                "the test asked for it",
            ))),
            "flaky" => {
                let left = self.flaky_failures.load(Ordering::SeqCst);
                if left > 0 {
                    self.flaky_failures.store(left - 1, Ordering::SeqCst);
                    return Err(HandlerError::Retryable(RemoteError::new(
                        "Busy",
                        "try later",
                    )));
                }
                Ok(null())
            }
            "block" => {
                let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_active.fetch_max(now, Ordering::SeqCst);
                let permit = self.gate.acquire().await.expect("gate open");
                permit.forget();
                self.active.fetch_sub(1, Ordering::SeqCst);
                Ok(null())
            }
            other => Err(HandlerError::UnknownMethod(other.to_owned())),
        }
    }
}
