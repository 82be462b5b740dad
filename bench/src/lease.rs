//! The `lease-keepalive` workload: each client grants itself a lease, then keeps it alive
//! over its own keep-alive stream, one request and its answer at a time.

use etcd_client::{LeaseClient, LeaseKeepAliveStream, LeaseKeeper};

use crate::cli::{Common, LeaseArgs};
use crate::driver::{self, Budget, Worker};
use crate::error::Error;
use crate::pool::Pool;
use crate::report::Summary;

struct KeepAliveWorker {
    keeper: LeaseKeeper,
    answers: LeaseKeepAliveStream,
}

impl Worker for KeepAliveWorker {
    async fn request(&mut self, _seq: u64) -> Result<(), etcd_client::Error> {
        self.keeper.keep_alive().await?;
        match self.answers.message().await? {
            Some(answer) if answer.ttl() > 0 => Ok(()),
            Some(_) => Err(etcd_client::Error::LeaseKeepAliveError(
                "lease expired".into(),
            )),
            None => Err(etcd_client::Error::LeaseKeepAliveError(
                "keep-alive stream ended".into(),
            )),
        }
    }
}

pub async fn lease_keepalive(common: &Common, args: &LeaseArgs) -> Result<Summary, Error> {
    let pool = Pool::connect(common).await?;
    let clients = common.clients.max(1);
    let mut workers = Vec::with_capacity(clients);
    let mut leases: Vec<(LeaseClient, i64)> = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut lease = pool.client(i).lease_client();
        let id = lease.grant(args.ttl, None).await?.id();
        let (keeper, answers) = lease.keep_alive(id).await?;
        workers.push(KeepAliveWorker { keeper, answers });
        leases.push((lease, id));
    }
    let measured = driver::run(
        workers,
        Budget::from_common(common),
        "lease-keepalive",
        pool.loops(),
    )
    .await;
    for (mut lease, id) in leases {
        let _ = lease.revoke(id).await;
    }
    Ok(Summary::new(
        "lease-keepalive",
        &pool.endpoints,
        pool.conns(),
        clients,
        &measured,
    ))
}
