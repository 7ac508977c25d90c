//! API errors, rendered as `metav1.Status` JSON bodies with the codes, reasons and messages of
//! contract §1.9.

use bytes::Bytes;
use serde::Serialize;

/// An error answered to the client as a `Status` object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 404 `NotFound`; `route` adds `details: {}` as Go does for unknown routes.
    #[error("{message}")]
    NotFound {
        /// The message.
        message: String,
        /// Whether the route itself does not exist.
        route: bool,
    },
    /// 400 `BadRequest` (a selector that does not parse, an ambiguous single-object read).
    #[error("{0}")]
    BadRequest(String),
    /// 401 `Unauthorized`.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403 `Forbidden`; `details` is `(name, group, kind)` for resource requests.
    #[error("{message}")]
    Forbidden {
        /// The full message.
        message: String,
        /// `(name, group, kind)` of the forbidden resource; `None` for non-resource paths.
        details: Option<(String, String, String)>,
    },
    /// 405 `MethodNotAllowed`.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 406 `NotAcceptable`.
    #[error("only the following media types are accepted: application/json")]
    NotAcceptable,
    /// 429 `TooManyRequests`, with `Retry-After: 1`.
    #[error("Too many requests, please try again later.")]
    TooManyRequests,
    /// 500 `InternalError`; the text is the short cause.
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// 503 `ServiceUnavailable` (deliberate fast fail, e.g. stale data). No `Retry-After`.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// 504 `Timeout`: the server-side deadline passed.
    #[error("Timeout: request did not complete within the allotted timeout")]
    Timeout,
}

#[derive(Serialize)]
struct StatusBody<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Empty,
    status: &'static str,
    message: &'a str,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
    code: u16,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Details<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    causes: Vec<Cause<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_seconds: Option<u32>,
}

#[derive(Serialize)]
struct Cause<'a> {
    message: &'a str,
}

impl ApiError {
    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } => 404,
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized => 401,
            ApiError::Forbidden { .. } => 403,
            ApiError::MethodNotAllowed => 405,
            ApiError::NotAcceptable => 406,
            ApiError::TooManyRequests => 429,
            ApiError::Internal(_) => 500,
            ApiError::ServiceUnavailable(_) => 503,
            ApiError::Timeout => 504,
        }
    }

    /// The `reason` of the Status.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::NotAcceptable => "NotAcceptable",
            ApiError::TooManyRequests => "TooManyRequests",
            ApiError::Internal(_) => "InternalError",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::Timeout => "Timeout",
        }
    }

    /// A 404 for a route that does not exist.
    pub fn route_not_found() -> ApiError {
        ApiError::NotFound {
            message: "the server could not find the requested resource".into(),
            route: true,
        }
    }

    /// A 404 for a metric or object without data.
    pub fn not_found(message: String) -> ApiError {
        ApiError::NotFound {
            message,
            route: false,
        }
    }

    /// The `Status` JSON body.
    pub fn to_body(&self) -> Bytes {
        let message = self.to_string();
        let details = match self {
            ApiError::NotFound { route: true, .. }
            | ApiError::MethodNotAllowed
            | ApiError::Timeout => Some(Details::default()),
            ApiError::Forbidden {
                details: Some((name, group, kind)),
                ..
            } => Some(Details {
                name,
                group,
                kind,
                ..Details::default()
            }),
            ApiError::Forbidden { details: None, .. } => Some(Details::default()),
            ApiError::Internal(cause) => Some(Details {
                causes: vec![Cause { message: cause }],
                ..Details::default()
            }),
            ApiError::TooManyRequests => Some(Details {
                retry_after_seconds: Some(1),
                ..Details::default()
            }),
            _ => None,
        };
        let body = StatusBody {
            kind: "Status",
            api_version: "v1",
            metadata: Empty {},
            status: "Failure",
            message: &message,
            reason: self.reason(),
            details,
            code: self.code(),
        };
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn body(e: &ApiError) -> Value {
        serde_json::from_slice(&e.to_body()).unwrap()
    }

    #[test]
    fn exact_bodies() {
        let nf = ApiError::not_found(
            "the server could not find the metric m for stormtopologies.storm.apache.org wc".into(),
        );
        assert_eq!(
            String::from_utf8(nf.to_body().to_vec()).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the metric m for stormtopologies.storm.apache.org wc","reason":"NotFound","code":404}"#
        );
        assert_eq!(body(&ApiError::route_not_found())["details"], json!({}));
        assert_eq!(
            body(&ApiError::TooManyRequests)["details"],
            json!({"retryAfterSeconds": 1})
        );
        assert_eq!(
            body(&ApiError::TooManyRequests)["message"],
            "Too many requests, please try again later."
        );
        let i = body(&ApiError::Internal("boom".into()));
        assert_eq!(i["message"], "Internal error occurred: boom");
        assert_eq!(i["reason"], "InternalError");
        assert_eq!(i["details"], json!({"causes": [{"message": "boom"}]}));
        let f = body(&ApiError::Forbidden {
            message: "x".into(),
            details: Some(("*".into(), "custom.metrics.k8s.io".into(), "pods".into())),
        });
        assert_eq!(
            f["details"],
            json!({"name": "*", "group": "custom.metrics.k8s.io", "kind": "pods"})
        );
        assert_eq!(body(&ApiError::Unauthorized)["message"], "Unauthorized");
        assert_eq!(body(&ApiError::MethodNotAllowed)["code"], 405);
        assert!(
            body(&ApiError::ServiceUnavailable("stale".into()))
                .get("details")
                .is_none()
        );
    }
}
