//! lease grant, revoke, timetolive, list, keep-alive.

use etcd_client::LeaseTimeToLiveOptions;

use super::Ctx;
use crate::cli::{Format, LeaseCommand};
use crate::client::{CtlError, EXIT_BAD_CONNECTION, EXIT_ERROR, Result};
use crate::json;
use crate::output::fields_header;

/// etcdctl's exit for a lease request that failed on the way (timetolive, list, keep-alive).
fn bad_connection(e: CtlError) -> CtlError {
    CtlError::new(EXIT_BAD_CONNECTION, e.message)
}

fn lease_id(s: &str) -> Result<i64> {
    i64::from_str_radix(s, 16).map_err(|_| {
        CtlError::bad_args(format!(
            "bad lease ID arg (strconv.ParseInt: parsing {s:?}: invalid syntax), expecting ID in Hex"
        ))
    })
}

fn id_ttl_fields(h: &Option<etcd_client::proto::PbResponseHeader>, id: i64, ttl: i64) {
    fields_header(h);
    println!("\"ID\" : {id}");
    println!("\"TTL\" : {ttl}");
}

pub async fn run(ctx: &Ctx, cmd: LeaseCommand) -> Result<()> {
    ctx.printer.no_table()?;
    let p = ctx.printer;
    match cmd {
        LeaseCommand::Grant { ttl } => {
            let ttl: i64 = ttl
                .parse()
                .map_err(|_| CtlError::bad_args(format!("bad TTL ({ttl})")))?;
            let mut c = ctx.client().await?;
            let r = ctx
                .timed(c.lease_grant(ttl, None))
                .await
                .map_err(|e| {
                    CtlError::new(EXIT_ERROR, format!("failed to grant lease ({})", e.message))
                })?
                .0;
            match p.format {
                Format::Json => println!("{}", json::lease_grant(&r)),
                Format::Fields => id_ttl_fields(&r.header, r.id, r.ttl),
                _ => println!("lease {:016x} granted with TTL({}s)", r.id, r.ttl),
            }
        }
        LeaseCommand::Revoke { id } => {
            let id = lease_id(&id)?;
            let mut c = ctx.client().await?;
            let r = ctx
                .timed(c.lease_revoke(id))
                .await
                .map_err(|e| {
                    CtlError::new(
                        EXIT_ERROR,
                        format!("failed to revoke lease ({})", e.message),
                    )
                })?
                .0;
            match p.format {
                Format::Json => println!("{}", json::lease_revoke(&r)),
                Format::Fields => fields_header(&r.header),
                _ => println!("lease {id:016x} revoked"),
            }
        }
        LeaseCommand::Timetolive { id, keys } => {
            let id = lease_id(&id)?;
            let mut c = ctx.client().await?;
            let opts = keys.then(|| LeaseTimeToLiveOptions::new().with_keys());
            let r = ctx
                .timed(c.lease_time_to_live(id, opts))
                .await
                .map_err(bad_connection)?
                .0;
            match p.format {
                Format::Json => println!("{}", json::lease_time_to_live(&r)),
                Format::Fields => {
                    fields_header(&r.header);
                    println!("\"ID\" : {}", r.id);
                    println!("\"TTL\" : {}", r.ttl);
                    println!("\"GrantedTTL\" : {}", r.granted_ttl);
                    for k in &r.keys {
                        println!("\"Key\" : {}", crate::output::go_quote(k));
                    }
                }
                _ if r.granted_ttl == 0 && r.ttl == -1 => {
                    println!("lease {:016x} already expired", r.id)
                }
                _ => {
                    let mut txt = format!(
                        "lease {:016x} granted with TTL({}s), remaining({}s)",
                        r.id, r.granted_ttl, r.ttl
                    );
                    if keys {
                        let ks: Vec<String> = r
                            .keys
                            .iter()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                            .collect();
                        txt.push_str(&format!(", attached keys([{}])", ks.join(" ")));
                    }
                    println!("{txt}");
                }
            }
        }
        LeaseCommand::List => {
            let mut c = ctx.client().await?;
            let r = ctx.timed(c.leases()).await.map_err(bad_connection)?.0;
            match p.format {
                Format::Json => println!("{}", json::lease_leases(&r)),
                Format::Fields => {
                    fields_header(&r.header);
                    for l in &r.leases {
                        println!("\"ID\" : {}", l.id);
                    }
                }
                _ => {
                    println!("found {} leases", r.leases.len());
                    for l in &r.leases {
                        println!("{:016x}", l.id);
                    }
                }
            }
        }
        LeaseCommand::KeepAlive { id, once } => {
            let id = lease_id(&id)?;
            let mut c = ctx.client().await?;
            let (mut keeper, mut stream) = c
                .lease_keep_alive(id)
                .await
                .map_err(|e| bad_connection(e.into()))?;
            loop {
                ctx.timed(keeper.keep_alive())
                    .await
                    .map_err(bad_connection)?;
                let Some(r) = ctx.timed(stream.message()).await.map_err(bad_connection)? else {
                    break;
                };
                let r = r.0;
                if r.ttl <= 0 {
                    if once {
                        return Err(CtlError::new(
                            EXIT_BAD_CONNECTION,
                            "etcdserver: requested lease not found",
                        ));
                    }
                    break;
                }
                match p.format {
                    Format::Json => println!("{}", json::lease_keep_alive(&r)),
                    Format::Fields => id_ttl_fields(&r.header, r.id, r.ttl),
                    _ => println!("lease {:016x} keepalived with TTL({})", r.id, r.ttl),
                }
                if once {
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_secs((r.ttl as u64 / 3).max(1))).await;
            }
            if p.format == Format::Simple {
                println!("lease {id:016x} expired or revoked.");
            }
        }
    }
    Ok(())
}
