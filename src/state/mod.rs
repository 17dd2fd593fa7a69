//! orch's own state beside pulumi's: the key/value [`store::Store`] (the state bucket or a
//! directory), the deployment [`record`]s and the deploy [`lock`]. Below both `deploy` (which
//! writes them) and `ops` (which reads them).
mod dirstore;
pub mod lock;
pub mod record;
pub mod store;

/// A failure reading or writing the state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{what}: {message}")]
    Aws { what: String, message: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Step { what: String, message: String },
    #[error("{0}")]
    Refused(String),
    #[error("environment `{env}` is locked by {}", .by.describe())]
    Locked { env: String, by: Box<lock::LockInfo> },
}

impl StateError {
    /// An AWS SDK failure, described for a person ([`crate::aws::describe`]).
    pub fn aws<E: std::error::Error + 'static>(
        what: impl Into<String>,
    ) -> impl FnOnce(E) -> StateError {
        let what = what.into();
        move |e| StateError::Aws { what, message: crate::aws::describe(&e) }
    }
    pub fn step(what: impl Into<String>, message: impl Into<String>) -> Self {
        StateError::Step { what: what.into(), message: message.into() }
    }
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StateError {
        let what = what.into();
        move |source| StateError::Io { what, source }
    }
}
