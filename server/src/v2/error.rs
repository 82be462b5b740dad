//! etcd's v2 errors: a numeric code with a fixed message, the cause (usually the key), and
//! the store index when it happened, answered as `{"errorCode":…,"message":…,"cause":…,
//! "index":…}` with the HTTP status etcd gives the code.

use http::StatusCode;
use serde::Serialize;

pub const KEY_NOT_FOUND: u32 = 100;
pub const TEST_FAILED: u32 = 101;
pub const NOT_FILE: u32 = 102;
pub const NOT_DIR: u32 = 104;
pub const NODE_EXIST: u32 = 105;
pub const ROOT_READ_ONLY: u32 = 107;
pub const UNAUTHORIZED: u32 = 110;
pub const DIR_NOT_EMPTY: u32 = 108;
pub const PREV_VALUE_REQUIRED: u32 = 201;
pub const TTL_NAN: u32 = 202;
pub const INDEX_NAN: u32 = 203;
pub const INVALID_FIELD: u32 = 209;
pub const INVALID_FORM: u32 = 210;
pub const REFRESH_VALUE: u32 = 211;
pub const REFRESH_TTL_REQUIRED: u32 = 212;
pub const RAFT_INTERNAL: u32 = 300;
pub const LEADER_ELECT: u32 = 301;
pub const EVENT_INDEX_CLEARED: u32 = 401;

/// etcd's message for each v2 error code.
fn message(code: u32) -> &'static str {
    match code {
        100 => "Key not found",
        101 => "Compare failed",
        102 => "Not a file",
        103 => "Reached the max number of peers in the cluster",
        104 => "Not a directory",
        105 => "Key already exists",
        106 => "The prefix of given key is a keyword in etcd",
        107 => "Root is read only",
        108 => "Directory not empty",
        109 => "Peer address has existed",
        110 => "The request requires user authentication",
        200 => "Value is Required in POST form",
        201 => "PrevValue is Required in POST form",
        202 => "The given TTL in POST form is not a number",
        203 => "The given index in POST form is not a number",
        204 => "Value or TTL is required in POST form",
        205 => "The given timeout in POST form is not a number",
        206 => "Name is required in POST form",
        207 => "Index or value is required",
        208 => "Index and value cannot both be specified",
        209 => "Invalid field",
        210 => "Invalid POST form",
        211 => "Value provided on refresh",
        212 => "A TTL must be provided on refresh",
        300 => "Raft Internal Error",
        301 => "During Leader Election",
        400 => "watcher is cleared due to etcd recovery",
        401 => "The event in requested index is outdated and cleared",
        402 => "Standby Internal Error",
        403 => "Invalid active size",
        404 => "Standby remove delay",
        _ => "Client Internal Error",
    }
}

/// A v2 error, serialized in etcd's field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct V2Error {
    #[serde(rename = "errorCode")]
    pub code: u32,
    pub message: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cause: String,
    pub index: i64,
}

impl V2Error {
    pub fn new(code: u32, cause: impl Into<String>, index: i64) -> V2Error {
        V2Error {
            code,
            message: message(code),
            cause: cause.into(),
            index,
        }
    }

    /// The HTTP status etcd answers this error with.
    pub fn status(&self) -> StatusCode {
        match self.code {
            KEY_NOT_FOUND => StatusCode::NOT_FOUND,
            NOT_FILE | DIR_NOT_EMPTY => StatusCode::FORBIDDEN,
            UNAUTHORIZED => StatusCode::UNAUTHORIZED,
            TEST_FAILED | NODE_EXIST => StatusCode::PRECONDITION_FAILED,
            RAFT_INTERNAL | LEADER_ELECT => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A failure of the member itself (a timeout, no leader, a stopped store), as etcd
    /// reports such errors on the v2 API: 300 with the error's text as the cause.
    pub fn internal(e: &crate::error::Error) -> V2Error {
        V2Error::new(RAFT_INTERNAL, e.to_string(), 0)
    }
}

impl std::fmt::Display for V2Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} ({}) [{}]",
            self.code, self.message, self.cause, self.index
        )
    }
}

impl std::error::Error for V2Error {}

pub type V2Result<T> = std::result::Result<T, V2Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialize_as_etcd_writes_them() {
        let e = V2Error::new(KEY_NOT_FOUND, "/foo", 7);
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"errorCode":100,"message":"Key not found","cause":"/foo","index":7}"#
        );
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        let e = V2Error::new(EVENT_INDEX_CLEARED, "", 3);
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"errorCode":401,"message":"The event in requested index is outdated and cleared","index":3}"#
        );
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            V2Error::new(NODE_EXIST, "/a", 1).status(),
            StatusCode::PRECONDITION_FAILED
        );
    }
}
