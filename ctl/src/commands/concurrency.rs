//! elect and lock, on the cluster's Election and Lock services, each held by a session: a
//! lease kept alive while the command runs, revoked when it ends.

use etcd_client::proto::PbRangeResponse;
use etcd_client::{Client, LockOptions};

use super::Ctx;
use super::kv::print_get;
use crate::cli::{ElectArgs, LockArgs};
use crate::client::{CtlError, EXIT_BAD_ARGS, EXIT_ERROR, Result};

/// etcd's default session TTL for elections, in seconds.
const ELECTION_TTL: i64 = 60;

/// A lease kept alive in the background: the session of a lock or a campaign. Ends with an
/// error when the lease is lost.
struct Session {
    lease: i64,
    lost: tokio::sync::oneshot::Receiver<()>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Session {
    async fn start(ctx: &Ctx, c: &mut Client, ttl: i64) -> Result<Session> {
        let lease = ctx.timed(c.lease_grant(ttl, None)).await?.id();
        let (mut keeper, mut answers) = c.lease_keep_alive(lease).await?;
        let (lost_tx, lost) = tokio::sync::oneshot::channel();
        let keeper = tokio::spawn(async move {
            let every = std::time::Duration::from_secs((ttl as u64 / 3).max(1));
            loop {
                let alive = match keeper.keep_alive().await {
                    Ok(()) => matches!(answers.message().await, Ok(Some(r)) if r.ttl() > 0),
                    Err(_) => false,
                };
                if !alive {
                    let _ = lost_tx.send(());
                    return;
                }
                tokio::time::sleep(every).await;
            }
        });
        Ok(Session {
            lease,
            lost,
            keeper,
        })
    }

    /// Waits for SIGINT or SIGTERM (`Ok`), or for the session to be lost (`Err`).
    async fn hold(&mut self) -> Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => Ok(()),
            _ = term.recv() => Ok(()),
            _ = &mut self.lost => Err(CtlError::new(EXIT_ERROR, "session expired")),
        }
    }

    async fn end(self, ctx: &Ctx, c: &mut Client) {
        self.keeper.abort();
        let _ = ctx.timed(c.lease_revoke(self.lease)).await;
    }
}

pub async fn elect(ctx: &Ctx, a: ElectArgs) -> Result<()> {
    let mut c = ctx.client().await?;
    if a.listen {
        let mut stream = c.observe(a.name.as_bytes()).await?;
        while let Some(r) = stream.message().await? {
            if let Some(kv) = r.kv() {
                let kv = etcd_client::proto::PbKeyValue {
                    key: kv.key().to_vec(),
                    value: kv.value().to_vec(),
                    create_revision: kv.create_revision(),
                    mod_revision: kv.mod_revision(),
                    version: kv.version(),
                    lease: kv.lease(),
                };
                // Printed as a get of the one key, as etcdctl prints what it observes.
                let got = PbRangeResponse {
                    kvs: vec![kv],
                    count: 1,
                    ..PbRangeResponse::default()
                };
                print_get(&ctx.printer, &got, false);
            }
        }
        return Ok(());
    }
    let Some(proposal) = &a.proposal else {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "no proposal argument but -l not set",
        ));
    };
    let mut session = Session::start(ctx, &mut c, ELECTION_TTL).await?;
    let campaign = c.campaign(a.name.as_bytes(), proposal.as_bytes(), session.lease);
    let leader = tokio::select! {
        won = campaign => won?,
        held = session.hold() => {
            session.end(ctx, &mut c).await;
            return held;
        }
    };
    let key = leader
        .leader()
        .map(|l| l.key().to_vec())
        .ok_or_else(|| CtlError::new(EXIT_ERROR, "campaign answered no leader key"))?;
    let got = ctx.timed(c.get(key, None)).await?;
    print_get(&ctx.printer, &got.0, false);
    let held = session.hold().await;
    if let Some(l) = leader.leader() {
        let opts = etcd_client::ResignOptions::new().with_leader(l.clone());
        let _ = ctx.timed(c.resign(Some(opts))).await;
    }
    session.end(ctx, &mut c).await;
    held
}

pub async fn lock(ctx: &Ctx, a: LockArgs) -> Result<()> {
    let mut c = ctx.client().await?;
    let mut session = Session::start(ctx, &mut c, a.ttl).await?;
    let locking = c.lock(
        a.name.as_bytes(),
        Some(LockOptions::new().with_lease(session.lease)),
    );
    let locked = tokio::select! {
        locked = locking => locked?,
        held = session.hold() => {
            session.end(ctx, &mut c).await;
            return held;
        }
    };
    let key = locked.key().to_vec();
    if let Some((program, args)) = a.command.split_first() {
        let rev = locked.header().map_or(0, |h| h.revision());
        let status = std::process::Command::new(program)
            .args(args)
            .env("ETCD_LOCK_KEY", String::from_utf8_lossy(&key).as_ref())
            .env("ETCD_LOCK_REV", rev.to_string())
            .status();
        let _ = ctx.timed(c.unlock(key)).await;
        session.end(ctx, &mut c).await;
        return match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(CtlError::new(
                EXIT_ERROR,
                match s.code() {
                    Some(code) => format!("exit status {code}"),
                    None => "signal: killed".to_string(),
                },
            )),
            Err(e) => Err(CtlError::new(EXIT_ERROR, e.to_string())),
        };
    }
    let got = ctx.timed(c.get(key.clone(), None)).await?;
    if got.kvs().is_empty() {
        session.end(ctx, &mut c).await;
        return Err(CtlError::new(EXIT_ERROR, "lock lost on init"));
    }
    print_get(&ctx.printer, &got.0, false);
    let held = session.hold().await;
    let _ = ctx.timed(c.unlock(key)).await;
    session.end(ctx, &mut c).await;
    held
}
