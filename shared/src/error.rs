//! One error type for the shared crate: a kind a caller can branch on, a message, and the
//! context it happened in (outermost last), in the style of iceberg-rust's `Error`.

use std::fmt;

/// What went wrong, coarsely; callers branch on this, humans read the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input (an event, a pipeline file, a request) is malformed or invalid.
    InvalidInput,
    /// The fold function failed to compile, raised, or exceeded a limit.
    Fold,
    /// A configuration value (environment, settings) is missing or wrong.
    Config,
    /// A compare-and-set lost against a concurrent writer; retrying may succeed.
    CommitConflict,
    /// Storage, catalog or network I/O failed.
    Io,
    /// An invariant of refold itself does not hold: a bug.
    Internal,
}

#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    context: Vec<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            context: Vec::new(),
            source: None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Adds where the error happened, e.g. `with_context("table domain.orders")`.
    #[must_use]
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context.push(context.into());
        self
    }

    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// A spawned task or blocking thread that panicked or was cancelled: an `Internal`
    /// error saying which (`message`), with the join error as its source.
    pub fn task_failed(message: impl Into<String>, e: tokio::task::JoinError) -> Self {
        Self::new(ErrorKind::Internal, message).with_source(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.context.iter().rev() {
            write!(f, "{c}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}
