//! Errors of the server and their one translation into etcd's wire errors.
//!
//! etcd clients match on the gRPC code *and* the message text, so both are API:
//! every variant below carries etcd's exact string, and `From<Error> for Status` is
//! the only place an internal error becomes a wire error.

use tonic::{Code, Status};

/// Everything that can go wrong while serving a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    #[error("etcdserver: not leader")]
    NotLeader,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: unhealthy cluster")]
    UnhealthyCluster,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    #[error("etcdserver: member ID already exist")]
    MemberExists,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    #[error("etcdserver: the member has been permanently removed from the cluster")]
    MemberRemoved,
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    #[error("etcdserver: wrong downgrade target version format")]
    WrongDowngradeVersionFormat,
    #[error("etcdserver: invalid downgrade target version")]
    InvalidDowngradeTargetVersion,
    #[error("etcdserver: no inflight downgrade job")]
    NoInflightDowngrade,
    #[error("etcdserver: unknown method")]
    UnknownMethod,
    #[error("election: no leader")]
    ElectionNoLeader,
    #[error("election: not leader")]
    ElectionNotLeader,
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
    #[error("mutex: session is expired")]
    SessionExpired,
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// An error another member answered a forwarded request with, passed on unchanged.
    #[error("{message}")]
    Remote { code: Code, message: String },
    /// A storage or consensus failure; the text is ours, not etcd's.
    #[error("etcdserver: {0}")]
    Internal(String),
}

impl Error {
    /// The gRPC code etcd uses for this error (see etcd's `api/v3rpc/rpctypes`).
    pub fn code(&self) -> Code {
        use Error::*;
        match self {
            EmptyKey
            | KeyNotFound
            | ValueProvided
            | LeaseProvided
            | TooManyOps
            | DuplicateKey
            | InvalidSortOption
            | RequestTooLarge
            | InvalidArgument(_)
            | WrongDowngradeVersionFormat
            | InvalidDowngradeTargetVersion
            | UserEmpty
            | RoleEmpty
            | AuthFailed
            | PermissionNotGiven
            | InvalidAuthMgmt
            | AuthOldRevision => Code::InvalidArgument,
            NoInflightDowngrade | RootUserNotExist | RootRoleNotExist | UserAlreadyExist
            | UserNotFound | RoleAlreadyExist | RoleNotFound | RoleNotGranted
            | PermissionNotGranted | AuthNotEnabled => Code::FailedPrecondition,
            PermissionDenied => Code::PermissionDenied,
            InvalidAuthToken => Code::Unauthenticated,
            LeaseNotFound | MemberNotFound => Code::NotFound,
            PeerUrlExists
            | MemberExists
            | MemberNotLearner
            | LearnerNotReady
            | TooManyLearners
            | NotEnoughStartedMembers
            | NotLeader
            | BadLeaderTransferee => Code::FailedPrecondition,
            LeaseExist => Code::FailedPrecondition,
            LeaseTtlTooLarge | Compacted | FutureRev => Code::OutOfRange,
            NoSpace => Code::ResourceExhausted,
            NoLeader
            | LeaderChanged
            | Timeout
            | Stopped
            | UnhealthyCluster
            | NotSupportedForLearner => Code::Unavailable,
            // etcd has no wire error for it: a removed etcd member stops, and its clients see
            // it unavailable, then go to another endpoint. Ours answer that way in the moment
            // between learning of the removal and closing the port.
            MemberRemoved => Code::Unavailable,
            Unimplemented(_) => Code::Unimplemented,
            Corrupt => Code::DataLoss,
            Remote { code, .. } => *code,
            // etcd's own plain Go errors, which gRPC sends with code Unknown.
            ElectionNoLeader | ElectionNotLeader | MissingLeaderKey | SessionExpired
            | UnknownMethod => Code::Unknown,
            Internal(_) => Code::Unknown,
        }
    }

    /// Stable numbers for errors produced while applying a committed entry; they travel in
    /// `InternalResponse.error` so every member reports the same outcome.
    pub fn apply_code(&self) -> u32 {
        match self {
            Error::KeyNotFound => 1,
            Error::LeaseNotFound => 2,
            Error::LeaseExist => 3,
            Error::Compacted => 4,
            Error::FutureRev => 5,
            Error::NoSpace => 6,
            Error::LeaseTtlTooLarge => 7,
            Error::Corrupt => 8,
            Error::RootUserNotExist => 10,
            Error::RootRoleNotExist => 11,
            Error::UserAlreadyExist => 12,
            Error::UserEmpty => 13,
            Error::UserNotFound => 14,
            Error::RoleAlreadyExist => 15,
            Error::RoleNotFound => 16,
            Error::RoleEmpty => 17,
            Error::AuthFailed => 18,
            Error::PermissionNotGiven => 19,
            Error::PermissionDenied => 20,
            Error::RoleNotGranted => 21,
            Error::PermissionNotGranted => 22,
            Error::AuthNotEnabled => 23,
            Error::InvalidAuthMgmt => 24,
            Error::AuthOldRevision => 25,
            _ => 99,
        }
    }

    /// Inverse of [`Error::apply_code`].
    pub fn from_apply_code(code: u32) -> Error {
        match code {
            1 => Error::KeyNotFound,
            2 => Error::LeaseNotFound,
            3 => Error::LeaseExist,
            4 => Error::Compacted,
            5 => Error::FutureRev,
            6 => Error::NoSpace,
            7 => Error::LeaseTtlTooLarge,
            8 => Error::Corrupt,
            10 => Error::RootUserNotExist,
            11 => Error::RootRoleNotExist,
            12 => Error::UserAlreadyExist,
            13 => Error::UserEmpty,
            14 => Error::UserNotFound,
            15 => Error::RoleAlreadyExist,
            16 => Error::RoleNotFound,
            17 => Error::RoleEmpty,
            18 => Error::AuthFailed,
            19 => Error::PermissionNotGiven,
            20 => Error::PermissionDenied,
            21 => Error::RoleNotGranted,
            22 => Error::PermissionNotGranted,
            23 => Error::AuthNotEnabled,
            24 => Error::InvalidAuthMgmt,
            25 => Error::AuthOldRevision,
            other => Error::Internal(format!("apply failed with code {other}")),
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> Error {
        Error::Internal(e.to_string())
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

impl Error {
    /// The wire form of an error of etcd's Lock and Election services: etcd serves them
    /// through an in-process client that keeps only the message, so every error, theirs and
    /// those of the KV and Lease calls they make, reaches the client with code Unknown (seen
    /// with etcd 3.4.23: a lock on an unknown lease answers Unknown "etcdserver: requested
    /// lease not found").
    pub fn recipe_status(self) -> Status {
        Status::new(Code::Unknown, self.to_string())
    }
}

impl From<Status> for Error {
    fn from(s: Status) -> Error {
        Error::Remote {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Internal(e.to_string())
    }
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Error {
        Error::Internal(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_errors_match_etcd() {
        let cases = [
            (
                Error::Compacted,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                Error::FutureRev,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                Error::RequestTooLarge,
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                Error::LeaseNotFound,
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                Error::DuplicateKey,
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                Error::EmptyKey,
                Code::InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                Error::TooManyOps,
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (
                Error::KeyNotFound,
                Code::InvalidArgument,
                "etcdserver: key not found",
            ),
            (
                Error::LeaseExist,
                Code::FailedPrecondition,
                "etcdserver: lease already exists",
            ),
            (
                Error::AuthFailed,
                Code::InvalidArgument,
                "etcdserver: authentication failed, invalid user ID or password",
            ),
            (
                Error::InvalidAuthToken,
                Code::Unauthenticated,
                "etcdserver: invalid auth token",
            ),
            (
                Error::PermissionDenied,
                Code::PermissionDenied,
                "etcdserver: permission denied",
            ),
            (
                Error::UserEmpty,
                Code::InvalidArgument,
                "etcdserver: user name is empty",
            ),
            (
                Error::RootUserNotExist,
                Code::FailedPrecondition,
                "etcdserver: root user does not exist",
            ),
            (
                Error::AuthOldRevision,
                Code::InvalidArgument,
                "etcdserver: revision of auth store is old",
            ),
        ];
        for (err, code, msg) in cases {
            let status = Status::from(err);
            assert_eq!(status.code(), code, "{msg}");
            assert_eq!(status.message(), msg);
        }
    }

    #[test]
    fn apply_codes_round_trip() {
        for e in [
            Error::KeyNotFound,
            Error::LeaseNotFound,
            Error::LeaseExist,
            Error::Compacted,
            Error::FutureRev,
            Error::NoSpace,
            Error::LeaseTtlTooLarge,
            Error::Corrupt,
            Error::RootUserNotExist,
            Error::RootRoleNotExist,
            Error::UserAlreadyExist,
            Error::UserEmpty,
            Error::UserNotFound,
            Error::RoleAlreadyExist,
            Error::RoleNotFound,
            Error::RoleEmpty,
            Error::AuthFailed,
            Error::PermissionNotGiven,
            Error::PermissionDenied,
            Error::RoleNotGranted,
            Error::PermissionNotGranted,
            Error::AuthNotEnabled,
            Error::InvalidAuthMgmt,
            Error::AuthOldRevision,
        ] {
            assert_eq!(Error::from_apply_code(e.apply_code()), e);
        }
    }
}
