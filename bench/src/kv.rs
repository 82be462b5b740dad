//! The KV workloads: `put`, `range`, `txn-put` and `mixed`, one request per operation.

use etcd_client::{GetOptions, KvClient, Txn, TxnOp};

use crate::cli::{Common, Consistency, MixedArgs, PutArgs, RangeArgs, TxnPutArgs};
use crate::driver::{self, Budget, Worker};
use crate::error::Error;
use crate::keys::{KeySpace, value};
use crate::pool::Pool;
use crate::report::Summary;

/// Puts one key of the key space per request.
pub struct PutWorker {
    kv: KvClient,
    keys: KeySpace,
    value: Vec<u8>,
}

impl PutWorker {
    pub fn new(kv: KvClient, keys: KeySpace, value: Vec<u8>) -> PutWorker {
        PutWorker { kv, keys, value }
    }
}

impl Worker for PutWorker {
    async fn request(&mut self, seq: u64) -> Result<(), etcd_client::Error> {
        self.kv
            .put(self.keys.pick(seq), self.value.clone(), None)
            .await
            .map(drop)
    }
}

/// Ranges one key, or the whole prefix, per request.
struct RangeWorker {
    kv: KvClient,
    keys: KeySpace,
    prefix: bool,
    options: GetOptions,
}

impl Worker for RangeWorker {
    async fn request(&mut self, seq: u64) -> Result<(), etcd_client::Error> {
        let key = if self.prefix {
            self.keys.prefix().as_bytes().to_vec()
        } else {
            self.keys.pick(seq)
        };
        self.kv.get(key, Some(self.options.clone())).await.map(drop)
    }
}

/// One txn of `ops` puts on consecutive keys per request (distinct keys: etcd refuses a txn
/// that puts one key twice).
struct TxnPutWorker {
    kv: KvClient,
    keys: KeySpace,
    value: Vec<u8>,
    ops: usize,
}

impl Worker for TxnPutWorker {
    async fn request(&mut self, seq: u64) -> Result<(), etcd_client::Error> {
        let first = self.keys.pick_number(seq * self.ops as u64);
        let puts: Vec<TxnOp> = (0..self.ops as u64)
            .map(|i| TxnOp::put(self.keys.key(first + i), self.value.clone(), None))
            .collect();
        self.kv.txn(Txn::new().and_then(puts)).await.map(drop)
    }
}

/// A read with probability `read_ratio`, otherwise a put, on one key of the key space.
struct MixedWorker {
    kv: KvClient,
    keys: KeySpace,
    value: Vec<u8>,
    read_ratio: f64,
    read_options: GetOptions,
}

impl Worker for MixedWorker {
    async fn request(&mut self, seq: u64) -> Result<(), etcd_client::Error> {
        let key = self.keys.pick(seq);
        if rand::random::<f64>() < self.read_ratio {
            self.kv
                .get(key, Some(self.read_options.clone()))
                .await
                .map(drop)
        } else {
            self.kv.put(key, self.value.clone(), None).await.map(drop)
        }
    }
}

fn read_options(consistency: Consistency) -> GetOptions {
    match consistency {
        Consistency::L => GetOptions::new(),
        Consistency::S => GetOptions::new().with_serializable(),
    }
}

/// Connects, runs one worker per client, and sums up.
pub(crate) async fn run_workers<W: Worker>(
    common: &Common,
    workload: &str,
    make: impl Fn(&Pool, usize) -> W,
) -> Result<Summary, Error> {
    let pool = Pool::connect(common).await?;
    let workers = (0..common.clients.max(1)).map(|i| make(&pool, i)).collect();
    let measured = driver::run(workers, Budget::from_common(common), workload, pool.loops()).await;
    Ok(Summary::new(
        workload,
        &pool.endpoints,
        pool.conns(),
        common.clients.max(1),
        &measured,
    ))
}

pub async fn put(common: &Common, args: &PutArgs) -> Result<Summary, Error> {
    let keys = KeySpace::new(&args.keys);
    let value = value(args.val_size);
    run_workers(common, "put", |pool, i| {
        PutWorker::new(pool.client(i).kv_client(), keys.clone(), value.clone())
    })
    .await
}

pub async fn range(common: &Common, args: &RangeArgs) -> Result<Summary, Error> {
    let keys = KeySpace::new(&args.keys);
    let mut options = read_options(args.consistency);
    if args.prefix {
        options = options.with_prefix();
    }
    if args.limit > 0 {
        options = options.with_limit(args.limit);
    }
    run_workers(common, "range", |pool, i| RangeWorker {
        kv: pool.client(i).kv_client(),
        keys: keys.clone(),
        prefix: args.prefix,
        options: options.clone(),
    })
    .await
}

pub async fn txn_put(common: &Common, args: &TxnPutArgs) -> Result<Summary, Error> {
    let keys = KeySpace::new(&args.put.keys);
    let value = value(args.put.val_size);
    run_workers(common, "txn-put", |pool, i| TxnPutWorker {
        kv: pool.client(i).kv_client(),
        keys: keys.clone(),
        value: value.clone(),
        ops: args.txn_ops,
    })
    .await
}

pub async fn mixed(common: &Common, args: &MixedArgs) -> Result<Summary, Error> {
    let keys = KeySpace::new(&args.keys);
    let value = value(args.val_size);
    let read_options = read_options(args.consistency);
    run_workers(common, "mixed", |pool, i| MixedWorker {
        kv: pool.client(i).kv_client(),
        keys: keys.clone(),
        value: value.clone(),
        read_ratio: args.read_ratio,
        read_options: read_options.clone(),
    })
    .await
}
