//! Typed errors of the Nimbus client.

use std::time::Duration;

use thrift::{ApplicationErrorKind, ProtocolErrorKind};

use super::generated::storm::{
    AlreadyAliveException, AuthorizationException, InvalidTopologyException, NotAliveException,
};

/// Everything that can go wrong when talking to Nimbus.
///
/// The first group mirrors Storm's declared Thrift exceptions and carries Storm's own message; the
/// rest are transport-level failures raised by this client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NimbusError {
    /// `NotAliveException`: no such (live) topology.
    #[error("not alive: {0}")]
    NotAlive(String),
    /// `AlreadyAliveException`: a topology with that name is already running.
    #[error("already alive: {0}")]
    AlreadyAlive(String),
    /// `InvalidTopologyException` with Storm's message.
    #[error("invalid topology: {0}")]
    InvalidTopology(String),
    /// `AuthorizationException` (only with `nimbus.authorizer` configured).
    #[error("not authorized: {0}")]
    Authorization(String),
    /// `TApplicationException(INTERNAL_ERROR)`: a Java exception inside Nimbus, e.g. a write sent to a
    /// non-leader or an action with no transition from the current status.
    #[error("Nimbus internal error: {0}")]
    Internal(String),
    /// `TApplicationException(UNKNOWN_METHOD)`: the server predates the method (e.g. `*ByName` before 2.3).
    #[error("Nimbus does not know method {0}")]
    UnknownMethod(String),
    /// No seed led to a reachable leader.
    #[error("no Nimbus leader found: {0}")]
    NoLeader(String),
    /// Connection refused/reset/closed, including a peer that closed in the middle of a frame.
    #[error("transport error with {endpoint}: {message}")]
    Transport {
        /// `host:port` of the peer.
        endpoint: String,
        /// What happened.
        message: String,
    },
    /// The call did not finish within its deadline.
    #[error("{method} timed out after {after:?}")]
    Timeout {
        /// Thrift method name.
        method: &'static str,
        /// The deadline that expired.
        after: Duration,
    },
    /// A response frame announced more bytes than the configured cap; nothing was allocated for it.
    #[error("response frame of {size} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge {
        /// Announced frame length.
        size: u64,
        /// Configured cap.
        limit: u64,
    },
    /// A request would exceed Nimbus's `nimbus.thrift.max_buffer_size` (1 MiB), which Nimbus answers by
    /// closing the connection.
    #[error("request frame of {size} bytes exceeds Nimbus's limit of {limit} bytes")]
    RequestTooLarge {
        /// Encoded request length.
        size: u64,
        /// Limit.
        limit: u64,
    },
    /// Malformed response (bad lengths, wrong types, missing required fields, other application errors).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A caller-side argument that cannot be sent (bad JSON, empty name, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Result alias for Nimbus calls.
pub type Result<T, E = NimbusError> = std::result::Result<T, E>;

impl NimbusError {
    /// A short stable name for the error class, usable as an Event reason or a metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Self::NotAlive(_) => "NotAlive",
            Self::AlreadyAlive(_) => "AlreadyAlive",
            Self::InvalidTopology(_) => "InvalidTopology",
            Self::Authorization(_) => "Authorization",
            Self::Internal(_) => "Internal",
            Self::UnknownMethod(_) => "UnknownMethod",
            Self::NoLeader(_) => "NoLeader",
            Self::Transport { .. } => "Transport",
            Self::Timeout { .. } => "Timeout",
            Self::FrameTooLarge { .. } => "FrameTooLarge",
            Self::RequestTooLarge { .. } => "RequestTooLarge",
            Self::Protocol(_) => "Protocol",
            Self::InvalidArgument(_) => "InvalidArgument",
        }
    }

    /// Whether trying again later may succeed (connection trouble, timeouts, leader changes).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Transport { .. } | Self::Timeout { .. } | Self::NoLeader(_) | Self::Internal(_)
        )
    }

    pub(crate) fn transport(endpoint: &str, message: impl std::fmt::Display) -> Self {
        Self::Transport {
            endpoint: endpoint.to_string(),
            message: message.to_string(),
        }
    }

    /// Maps a `thrift::Error` produced while decoding a reply.
    pub(crate) fn from_thrift(method: &str, err: thrift::Error) -> Self {
        match err {
            thrift::Error::User(e) => {
                if let Some(e) = e.downcast_ref::<NotAliveException>() {
                    Self::NotAlive(e.msg.clone())
                } else if let Some(e) = e.downcast_ref::<AlreadyAliveException>() {
                    Self::AlreadyAlive(e.msg.clone())
                } else if let Some(e) = e.downcast_ref::<InvalidTopologyException>() {
                    Self::InvalidTopology(e.msg.clone())
                } else if let Some(e) = e.downcast_ref::<AuthorizationException>() {
                    Self::Authorization(e.msg.clone())
                } else {
                    Self::Protocol(format!("{method}: unexpected user exception: {e}"))
                }
            }
            thrift::Error::Application(e) => match e.kind {
                ApplicationErrorKind::InternalError => Self::Internal(e.message),
                ApplicationErrorKind::UnknownMethod => Self::UnknownMethod(method.to_string()),
                ApplicationErrorKind::MissingResult => {
                    Self::NoLeader(format!("{method} returned no result: {}", e.message))
                }
                ApplicationErrorKind::Unknown if e.message.contains("AuthorizationException") => {
                    Self::Authorization(e.message)
                }
                kind => Self::Protocol(format!("{method}: {kind:?}: {}", e.message)),
            },
            thrift::Error::Protocol(e) if e.kind == ProtocolErrorKind::SizeLimit => {
                Self::Protocol(format!("{method}: {}", e.message))
            }
            thrift::Error::Protocol(e) => Self::Protocol(format!("{method}: {}", e.message)),
            thrift::Error::Transport(e) => Self::Protocol(format!(
                "{method}: truncated or malformed reply: {}",
                e.message
            )),
        }
    }
}
