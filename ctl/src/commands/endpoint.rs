//! endpoint health, status, hashkv: each endpoint asked on its own connection.

use std::time::Instant;

use super::{Ctx, endpoints};
use crate::cli::{EndpointArgs, EndpointCommand, Format};
use crate::client::{self, CtlError, EXIT_ERROR, Result};
use crate::json::{self, Obj};
use crate::output::{fields_header, go_duration, go_quote, human_bytes, table};

/// Shows an endpoint as etcdctl does: as given (a member-list URL keeps its scheme).
fn shown(ep: &str) -> String {
    ep.to_string()
}

pub async fn run(ctx: &Ctx, a: EndpointArgs) -> Result<()> {
    let eps = endpoints(ctx, a.cluster).await?;
    match a.command {
        EndpointCommand::Health => health(ctx, &eps).await,
        EndpointCommand::Status => status(ctx, &eps).await,
        EndpointCommand::Hashkv { rev } => hashkv(ctx, &eps, rev).await,
    }
}

/// One endpoint's health: a read answered, and no alarm raised.
async fn check_health(ctx: &Ctx, ep: &str) -> (bool, String, String) {
    let started = Instant::now();
    let mut c = match client::connect_to(&ctx.global, &[ep.to_string()]).await {
        Ok(c) => c,
        Err(e) => return (false, go_duration(started.elapsed()), e.message),
    };
    let read = ctx.timed(c.get("health", None)).await;
    let took = go_duration(started.elapsed());
    if let Err(e) = read
        && e.message != "etcdserver: permission denied"
    {
        return (false, took, e.message);
    }
    match ctx
        .timed(c.alarm(
            etcd_client::AlarmAction::Get,
            etcd_client::AlarmType::None,
            None,
        ))
        .await
    {
        Ok(r) if !r.0.alarms.is_empty() => {
            let mut error = String::from("Active Alarm(s): ");
            for a in &r.0.alarms {
                error.push_str(match a.alarm {
                    1 => "NOSPACE ",
                    2 => "CORRUPT ",
                    _ => "UNKNOWN ",
                });
            }
            (false, took, error)
        }
        Ok(_) => (true, took, String::new()),
        Err(_) => (false, took, "Unable to fetch the alarm list".into()),
    }
}

async fn health(ctx: &Ctx, eps: &[String]) -> Result<()> {
    let checks = futures::future::join_all(eps.iter().map(|ep| check_health(ctx, ep))).await;
    let results: Vec<(String, bool, String, String)> = eps
        .iter()
        .zip(checks)
        .map(|(ep, (ok, took, error))| (shown(ep), ok, took, error))
        .collect();
    match ctx.printer.format {
        Format::Json => {
            let items = results
                .iter()
                .map(|(ep, ok, took, error)| {
                    Obj::new()
                        .str_always("endpoint", ep)
                        .raw("health", &ok.to_string())
                        .str_always("took", took)
                        .str("error", error)
                        .finish()
                })
                .collect();
            println!("{}", json::array(items));
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|(ep, ok, took, error)| {
                    vec![ep.clone(), ok.to_string(), took.clone(), error.clone()]
                })
                .collect();
            print!("{}", table(&["endpoint", "health", "took", "error"], &rows));
        }
        Format::Fields => {
            for (ep, ok, took, error) in &results {
                println!("\"Endpoint\" : {}", go_quote(ep.as_bytes()));
                println!("\"Health\" : {ok}");
                println!("\"Took\" : {took}");
                println!("\"Error\" : {error}");
                println!();
            }
        }
        Format::Simple => {
            for (ep, ok, took, error) in &results {
                if *ok {
                    eprintln!("{ep} is healthy: successfully committed proposal: took = {took}");
                } else {
                    eprintln!("{ep} is unhealthy: failed to commit proposal: {error}");
                }
            }
        }
    }
    if results.iter().any(|r| !r.1) {
        return Err(CtlError::new(EXIT_ERROR, "unhealthy cluster"));
    }
    Ok(())
}

/// Asks every endpoint, each on a connection of its own, with `ask`. A failure is printed
/// as etcdctl prints it (`Failed to get the <what> of endpoint ...`); the answers come with
/// the last failure, which etcdctl exits with once it has printed the others.
async fn ask_each<T, Fut>(
    ctx: &Ctx,
    eps: &[String],
    what: &str,
    ask: impl Fn(etcd_client::Client) -> Fut,
) -> (Vec<(String, T)>, Option<CtlError>)
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut answers = Vec::new();
    let mut failed = None;
    for ep in eps {
        let got = match client::connect_to(&ctx.global, std::slice::from_ref(ep)).await {
            Ok(c) => ask(c).await,
            Err(e) => Err(e),
        };
        match got {
            Ok(answer) => answers.push((shown(ep), answer)),
            Err(e) => {
                eprintln!("Failed to get the {what} of endpoint {ep} ({})", e.message);
                failed = Some(CtlError::new(EXIT_ERROR, e.message));
            }
        }
    }
    (answers, failed)
}

async fn status(ctx: &Ctx, eps: &[String]) -> Result<()> {
    let (statuses, failed) = ask_each(ctx, eps, "status", |mut c| async move {
        Ok(ctx.timed(c.status()).await?.0)
    })
    .await;
    match ctx.printer.format {
        Format::Json => {
            let items = statuses
                .iter()
                .map(|(ep, s)| {
                    Obj::new()
                        .str_always("Endpoint", ep)
                        .raw("Status", &json::status(s))
                        .finish()
                })
                .collect();
            println!("{}", json::array(items));
        }
        Format::Fields => {
            for (ep, s) in &statuses {
                fields_header(&s.header);
                println!("\"Version\" : {}", go_quote(s.version.as_bytes()));
                println!("\"DBSize\" : {}", s.db_size);
                println!("\"Leader\" : {}", s.leader);
                println!("\"IsLearner\" : {}", s.is_learner);
                println!("\"RaftIndex\" : {}", s.raft_index);
                println!("\"RaftTerm\" : {}", s.raft_term);
                println!("\"RaftAppliedIndex\" : {}", s.raft_applied_index);
                println!("\"Errors\" : [{}]", s.errors.join(" "));
                println!("\"Endpoint\" : {}", go_quote(ep.as_bytes()));
                println!();
            }
        }
        format => {
            let rows: Vec<Vec<String>> = statuses
                .iter()
                .map(|(ep, s)| {
                    let id = s.header.unwrap_or_default().member_id;
                    vec![
                        ep.clone(),
                        format!("{id:x}"),
                        s.version.clone(),
                        human_bytes(s.db_size as u64),
                        (s.leader == id).to_string(),
                        s.is_learner.to_string(),
                        s.raft_term.to_string(),
                        s.raft_index.to_string(),
                        s.raft_applied_index.to_string(),
                        s.errors.join(", "),
                    ]
                })
                .collect();
            if format == Format::Table {
                let headers = [
                    "endpoint",
                    "ID",
                    "version",
                    "db size",
                    "is leader",
                    "is learner",
                    "raft term",
                    "raft index",
                    "raft applied index",
                    "errors",
                ];
                print!("{}", table(&headers, &rows));
            } else {
                for row in rows {
                    println!("{}", row.join(", "));
                }
            }
        }
    }
    // etcdctl exits with the last endpoint's error.
    failed.map_or(Ok(()), Err)
}

async fn hashkv(ctx: &Ctx, eps: &[String], rev: i64) -> Result<()> {
    let (hashes, failed) = ask_each(ctx, eps, "hash", |mut c| async move {
        Ok(ctx.timed(c.hash_kv(rev)).await?.0)
    })
    .await;
    match ctx.printer.format {
        Format::Json => {
            let items = hashes
                .iter()
                .map(|(ep, h)| {
                    Obj::new()
                        .str_always("Endpoint", ep)
                        .raw("HashKV", &json::hash_kv(h))
                        .finish()
                })
                .collect();
            println!("{}", json::array(items));
        }
        Format::Fields => {
            for (ep, h) in &hashes {
                fields_header(&h.header);
                println!("\"Endpoint\" : {}", go_quote(ep.as_bytes()));
                println!("\"Hash\" : {}", h.hash);
                println!();
            }
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = hashes
                .iter()
                .map(|(ep, h)| vec![ep.clone(), h.hash.to_string()])
                .collect();
            print!("{}", table(&["endpoint", "hash"], &rows));
        }
        Format::Simple => {
            for (ep, h) in &hashes {
                println!("{ep}, {}", h.hash);
            }
        }
    }
    // etcdctl exits with the last endpoint's error.
    failed.map_or(Ok(()), Err)
}
