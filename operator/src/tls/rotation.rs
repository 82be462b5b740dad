//! Rotating the CA of `auto` TLS with no member restart and no moment when a member and its
//! peers or clients disagree on whom to trust. One step per pass, each recorded in status
//! and taken only once the previous one has had time to reach every pod's files:
//!
//! 1. **TrustBoth**: a new CA is made (kept beside the old one in `<cluster>-ca`); every
//!    member and the operator trust both, their certificates still from the old CA.
//! 2. **Reissued**: every certificate is issued again by the new CA; both still trusted.
//! 3. **Done**: the new CA alone is trusted and becomes the one in force; the old one is
//!    deleted, and a client with a certificate of the old CA is refused.
//!
//! A rotation starts when the annotation `oxcd.io/rotate-ca` takes a new value, or when the
//! CA itself is due for renewal (`renewBefore` ahead of its expiry).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::{CA_CERT, CERT, Cas, KEY, Tls, field, member_of, operator_secret_name, tls_secret};
use crate::act::Transition;
use crate::certs::{self, Authority};
use crate::crd::{CaRotation, CaRotationStep, EtcdClusterStatus};
use crate::error::{Error, Result};
use crate::status::ExtraCondition;

/// Asks for a CA rotation: a new value starts one.
pub const ROTATE_ANNOTATION: &str = "oxcd.io/rotate-ca";

/// How long a step waits before the next: the kubelet updates a Secret's mounted files
/// within its sync period (a minute by default) plus its cache's time to live.
pub const PROPAGATION: Duration = Duration::from_secs(120);

/// The CA that issues, and the `ca.crt` everyone holds, at `rotation`'s step.
pub fn in_force(cas: &Cas, rotation: Option<&CaRotation>) -> (Authority, String) {
    let step = rotation.map(|r| r.step);
    match (&cas.next, step) {
        (Some(next), Some(CaRotationStep::TrustBoth)) => (
            cas.current.clone(),
            certs::bundle(&cas.current.cert_pem, &next.cert_pem),
        ),
        (Some(next), Some(CaRotationStep::Reissued)) => (
            next.clone(),
            certs::bundle(&cas.current.cert_pem, &next.cert_pem),
        ),
        _ => (cas.current.clone(), cas.current.cert_pem.clone()),
    }
}

/// CARotation: True while a rotation is under way, with its step as the reason.
pub fn condition(rotation: Option<&CaRotation>) -> Option<ExtraCondition> {
    let rotation = rotation?;
    Some(match rotation.step {
        CaRotationStep::TrustBoth => (
            "CARotation",
            "True".into(),
            "TrustBoth",
            "members and the operator trust the old and the new CA".into(),
        ),
        CaRotationStep::Reissued => (
            "CARotation",
            "True".into(),
            "Reissued",
            "every certificate is issued by the new CA; the old one is still trusted".into(),
        ),
        CaRotationStep::Done => (
            "CARotation",
            "False".into(),
            "Done",
            format!("the CA was rotated ({})", rotation.trigger),
        ),
    })
}

/// Why a rotation should start now, if it should.
fn requested(
    tls: &Tls<'_>,
    cas: &Cas,
    status: &EtcdClusterStatus,
    renew_before: Duration,
    now: time::OffsetDateTime,
) -> Option<String> {
    let last = status.ca_rotation.as_ref().map(|r| r.trigger.as_str());
    if let Some(asked) = tls.ec.annotations().get(ROTATE_ANNOTATION)
        && Some(asked.as_str()) != last
    {
        return Some(asked.clone());
    }
    let due = certs::renew_at(&cas.current.cert_pem, renew_before).is_none_or(|at| at <= now);
    due.then(|| format!("expiry of the CA on {}", now.date()))
}

/// Takes the rotation's next step if its time has come; the transitions to report.
pub async fn step(
    tls: &Tls<'_>,
    cas: &mut Cas,
    status: &mut EtcdClusterStatus,
    now: time::OffsetDateTime,
    validity: Duration,
    renew_before: Duration,
) -> Result<Vec<Transition>> {
    let stamp = Timestamp::from_second(now.unix_timestamp())
        .map_err(|e| Error::Other(format!("time: {e}")))?;
    let settled = status.ca_rotation.as_ref().is_some_and(|r| {
        let since = time::OffsetDateTime::from_unix_timestamp(r.since.0.as_second()).unwrap_or(now);
        since + PROPAGATION <= now
    });
    let step = status.ca_rotation.as_ref().map(|r| r.step);
    let transition = |reason: &'static str, note: &str| Transition {
        reason,
        note: note.to_string(),
    };
    let next_step = |status: &mut EtcdClusterStatus, step: CaRotationStep| {
        if let Some(r) = &mut status.ca_rotation {
            r.step = step;
            r.since = Time(stamp);
        }
    };
    match step {
        None | Some(CaRotationStep::Done) => {
            let Some(trigger) = requested(tls, cas, status, renew_before, now) else {
                return Ok(Vec::new());
            };
            let next = cas.next.clone().map_or_else(
                || Authority::new(&tls.ec.name_any(), super::CA_VALIDITY),
                Ok,
            )?;
            tls.apply(&tls.ca_secret(&cas.current, Some(&next))).await?;
            cas.next = Some(next.clone());
            let trust = certs::bundle(&cas.current.cert_pem, &next.cert_pem);
            rewrite(tls, &cas.current, &trust, None).await?;
            status.ca_rotation = Some(CaRotation {
                step: CaRotationStep::TrustBoth,
                since: Time(stamp),
                trigger: trigger.clone(),
            });
            let note = format!("CA rotation ({trigger}): the old and the new CA are trusted");
            Ok(vec![transition("CARotationStarted", &note)])
        }
        Some(CaRotationStep::TrustBoth) if settled => {
            let next = cas.next.clone().ok_or_else(|| {
                Error::Invalid("a CA rotation is recorded but the new CA is missing".into())
            })?;
            let trust = certs::bundle(&cas.current.cert_pem, &next.cert_pem);
            rewrite(tls, &next, &trust, Some(validity)).await?;
            next_step(status, CaRotationStep::Reissued);
            let note = "CA rotation: every certificate is issued by the new CA";
            Ok(vec![transition("CARotationReissued", note)])
        }
        Some(CaRotationStep::Reissued) if settled => {
            let Some(next) = cas.next.take() else {
                return Err(Error::Invalid(
                    "a CA rotation is recorded but the new CA is missing".into(),
                ));
            };
            tls.apply(&tls.ca_secret(&next, None)).await?;
            rewrite(tls, &next, &next.cert_pem, None).await?;
            cas.current = next;
            next_step(status, CaRotationStep::Done);
            let note = "CA rotation done: the new CA alone is trusted";
            Ok(vec![transition("CARotated", note)])
        }
        Some(_) => Ok(Vec::new()),
    }
}

/// Every member certificate Secret and the operator's: `ca.crt` becomes `trust`; with
/// `reissue`, each certificate is issued again by `issuing` for that long.
async fn rewrite(
    tls: &Tls<'_>,
    issuing: &Authority,
    trust: &str,
    reissue: Option<Duration>,
) -> Result<()> {
    for secret in tls.member_secrets().await? {
        let Some(member) = member_of(&secret) else {
            continue;
        };
        match reissue {
            Some(validity) => tls.issue_member(issuing, trust, &member, validity).await?,
            None => retrust(tls, &secret, trust, true).await?,
        }
    }
    if let Some(validity) = reissue {
        return tls.issue_operator(issuing, trust, validity).await.map(drop);
    }
    match tls.secrets().get_opt(&operator_secret_name(tls.ec)).await? {
        Some(secret) => retrust(tls, &secret, trust, false).await,
        None => Ok(()),
    }
}

/// The Secret with its certificate and key kept and `ca.crt` replaced.
async fn retrust(tls: &Tls<'_>, secret: &Secret, trust: &str, member: bool) -> Result<()> {
    let (cert, key) = (field(secret, CERT)?, field(secret, KEY)?);
    let files = [(CA_CERT, trust), (CERT, cert.as_str()), (KEY, key.as_str())];
    tls.apply(&tls_secret(tls.ec, secret.name_any(), &files, member))
        .await
        .map(drop)
}
