//! member list, add, remove, update, promote.

use etcd_client::MemberAddOptions;
use etcd_client::proto::{PbMember, PbMemberListResponse, PbResponseHeader};

use super::{Ctx, parse_hex_u64};
use crate::cli::{Format, MemberCommand};
use crate::client::{CtlError, Result};
use crate::json;
use crate::output::{Printer, fields_header, go_quote, table};

fn member_id(s: &str) -> Result<u64> {
    parse_hex_u64(s)
        .map_err(|e| CtlError::bad_args(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

pub async fn run(ctx: &Ctx, cmd: MemberCommand) -> Result<()> {
    let p = ctx.printer;
    match cmd {
        MemberCommand::List => {
            let mut c = ctx.client().await?;
            let r = ctx.timed(c.member_list()).await?.0;
            print_member_list(&p, &r);
        }
        MemberCommand::Add {
            name,
            peer_urls,
            learner,
        } => {
            if peer_urls.is_empty() {
                return Err(CtlError::bad_args("member peer urls not provided"));
            }
            p.no_table()?;
            let urls: Vec<String> = peer_urls.split(',').map(str::to_string).collect();
            let mut c = ctx.client().await?;
            let opts = learner.then(|| MemberAddOptions::new().with_is_learner());
            let r = ctx.timed(c.member_add(urls, opts)).await?.0;
            let new_id = r.member.as_ref().map_or(0, |m| m.id);
            let cluster = r.header.unwrap_or_default().cluster_id;
            match p.format {
                Format::Json => println!("{}", json::member_add(&r)),
                Format::Fields => fields_header(&r.header),
                _ => {
                    println!("Member {new_id:16x} added to cluster {cluster:16x}");
                    let mut conf = Vec::new();
                    for m in &r.members {
                        let n = if m.id == new_id { &name } else { &m.name };
                        for u in &m.peer_ur_ls {
                            conf.push(format!("{n}={u}"));
                        }
                    }
                    println!();
                    println!("ETCD_NAME={}", go_quote(name.as_bytes()));
                    println!(
                        "ETCD_INITIAL_CLUSTER={}",
                        go_quote(conf.join(",").as_bytes())
                    );
                    println!(
                        "ETCD_INITIAL_ADVERTISE_PEER_URLS={}",
                        go_quote(peer_urls.as_bytes())
                    );
                    println!("ETCD_INITIAL_CLUSTER_STATE=\"existing\"");
                }
            }
        }
        MemberCommand::Remove { id } => {
            let id = member_id(&id)?;
            p.no_table()?;
            let mut c = ctx.client().await?;
            let r = ctx.timed(c.member_remove(id)).await?.0;
            print_changed(&p, &r.header, &r.members, id, "removed from");
        }
        MemberCommand::Update { id, peer_urls } => {
            let id = member_id(&id)?;
            if peer_urls.is_empty() {
                return Err(CtlError::bad_args("member peer urls not provided"));
            }
            p.no_table()?;
            let urls: Vec<String> = peer_urls.split(',').map(str::to_string).collect();
            let mut c = ctx.client().await?;
            let r = ctx.timed(c.member_update(id, urls)).await?.0;
            print_changed(&p, &r.header, &r.members, id, "updated in");
        }
        MemberCommand::Promote { id } => {
            let id = member_id(&id)?;
            p.no_table()?;
            let mut c = ctx.client().await?;
            let r = ctx.timed(c.member_promote(id)).await?.0;
            print_changed(&p, &r.header, &r.members, id, "promoted in");
        }
    }
    Ok(())
}

/// What remove, update and promote print: the header and the members left, or one line.
fn print_changed(
    p: &Printer,
    header: &Option<PbResponseHeader>,
    members: &[PbMember],
    id: u64,
    done: &str,
) {
    match p.format {
        Format::Json => println!("{}", json::members_changed(header, members)),
        Format::Fields => fields_header(header),
        _ => {
            let cluster = header.unwrap_or_default().cluster_id;
            println!("Member {id:16x} {done} cluster {cluster:16x}");
        }
    }
}

fn print_member_list(p: &Printer, r: &PbMemberListResponse) {
    let rows: Vec<Vec<String>> = r
        .members
        .iter()
        .map(|m| {
            vec![
                format!("{:x}", m.id),
                if m.name.is_empty() {
                    "unstarted"
                } else {
                    "started"
                }
                .to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect();
    match p.format {
        Format::Json => println!("{}", json::member_list(r)),
        Format::Table => print!(
            "{}",
            table(
                &[
                    "ID",
                    "Status",
                    "Name",
                    "Peer Addrs",
                    "Client Addrs",
                    "Is Learner"
                ],
                &rows
            )
        ),
        Format::Fields => {
            fields_header(&r.header);
            for m in &r.members {
                println!("\"ID\" : {}", m.id);
                println!("\"Name\" : {}", go_quote(m.name.as_bytes()));
                for u in &m.peer_ur_ls {
                    println!("\"PeerURL\" : {}", go_quote(u.as_bytes()));
                }
                for u in &m.client_ur_ls {
                    println!("\"ClientURL\" : {}", go_quote(u.as_bytes()));
                }
                println!("\"IsLearner\" : {}", m.is_learner);
                println!();
            }
        }
        Format::Simple => {
            for row in rows {
                println!("{}", row.join(", "));
            }
        }
    }
}
