//! snapshot save, defrag, alarm list|disarm, move-leader.

use std::io::Write;

use etcd_client::proto::PbAlarmResponse;
use etcd_client::{AlarmAction, AlarmOptions, AlarmType};
use sha2::Digest;

use super::{Ctx, endpoints, parse_hex_u64};
use crate::cli::{AlarmCommand, DefragArgs, Format, MoveLeaderArgs, SnapshotCommand};
use crate::client::{self, CtlError, EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR, Result};
use crate::json;
use crate::output::{Printer, fields_header, human_bytes};

/// The sha256 etcd appends to a snapshot.
const HASH_LEN: u64 = 32;

pub async fn snapshot(ctx: &Ctx, cmd: SnapshotCommand) -> Result<()> {
    let SnapshotCommand::Save { filename } = cmd;
    if ctx.global.endpoints.len() != 1 {
        return Err(CtlError::new(
            EXIT_BAD_FEATURE,
            format!(
                "snapshot must be requested to one selected node, not multiple [{}]",
                ctx.global.endpoints.join(" ")
            ),
        ));
    }
    let started = std::time::Instant::now();
    let part = format!("{filename}.part");
    let mut c = ctx.client().await?;
    let mut stream = c.snapshot().await?;
    let mut file = std::fs::File::create(&part)?;
    let mut hasher = sha2::Sha256::new();
    let mut written = 0u64;
    let mut expected_hash = Vec::new();
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} [{bar:30}] {bytes_per_sec} {eta}",
        )
        .expect("valid template"),
    );
    // The database's chunks, the last one with no bytes remaining, then its sha256.
    let mut data_done = false;
    while let Some(chunk) = stream.message().await? {
        let blob = chunk.blob();
        if bar.length().is_none() {
            bar.set_length(blob.len() as u64 + chunk.remaining_bytes());
        }
        file.write_all(blob)?;
        written += blob.len() as u64;
        if data_done {
            expected_hash.extend_from_slice(blob);
        } else {
            hasher.update(blob);
            data_done = chunk.remaining_bytes() == 0;
        }
        bar.set_position(written);
    }
    bar.finish_and_clear();
    if written % 512 != HASH_LEN || expected_hash.len() as u64 != HASH_LEN {
        let _ = std::fs::remove_file(&part);
        return Err(CtlError::new(EXIT_ERROR, "sha256 checksum not found"));
    }
    if hasher.finalize().as_slice() != expected_hash.as_slice() {
        let _ = std::fs::remove_file(&part);
        return Err(CtlError::new(EXIT_ERROR, "sha256 checksum mismatch"));
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(&part, &filename)?;
    eprintln!(
        "fetched snapshot from {} ({}, took {})",
        ctx.global.endpoints[0],
        human_bytes(written),
        crate::output::go_duration(started.elapsed())
    );
    println!("Snapshot saved at {filename}");
    Ok(())
}

pub async fn defrag(ctx: &Ctx, a: DefragArgs) -> Result<()> {
    let mut failed = false;
    for ep in endpoints(ctx, a.cluster).await? {
        let done = async {
            let mut c = client::connect_to(&ctx.global, std::slice::from_ref(&ep)).await?;
            ctx.timed(c.defragment()).await
        }
        .await;
        match done {
            Ok(_) => println!("Finished defragmenting etcd member[{ep}]"),
            Err(e) => {
                failed = true;
                eprintln!("Failed to defragment etcd member[{ep}] ({})", e.message);
            }
        }
    }
    if failed {
        return Err(CtlError::new(
            EXIT_ERROR,
            "failed to defragment some members",
        ));
    }
    Ok(())
}

pub async fn alarm(ctx: &Ctx, cmd: AlarmCommand) -> Result<()> {
    ctx.printer.no_table()?;
    let mut c = ctx.client().await?;
    let listed = ctx
        .timed(c.alarm(AlarmAction::Get, AlarmType::None, None))
        .await?
        .0;
    let r = match cmd {
        AlarmCommand::List => listed,
        AlarmCommand::Disarm => {
            // clientv3's AlarmDisarm of no member: every listed alarm, one by one.
            let mut disarmed = PbAlarmResponse::default();
            for a in &listed.alarms {
                let mut opts = AlarmOptions::new();
                opts.with_member(a.member_id);
                let alarm = AlarmType::try_from(a.alarm).unwrap_or(AlarmType::None);
                let r = ctx
                    .timed(c.alarm(AlarmAction::Deactivate, alarm, Some(opts)))
                    .await?
                    .0;
                disarmed.alarms.extend(r.alarms);
            }
            disarmed
        }
    };
    print_alarms(&ctx.printer, &r);
    Ok(())
}

fn alarm_name(a: i32) -> &'static str {
    match a {
        1 => "NOSPACE",
        2 => "CORRUPT",
        _ => "NONE",
    }
}

fn print_alarms(p: &Printer, r: &PbAlarmResponse) {
    match p.format {
        Format::Json => println!("{}", json::alarm(r)),
        Format::Fields => {
            fields_header(&r.header);
            for a in &r.alarms {
                println!("\"MemberID\" : {}", a.member_id);
                println!("\"AlarmType\" : {}", alarm_name(a.alarm));
                println!();
            }
        }
        _ => {
            for a in &r.alarms {
                // Go's `%+v` of the AlarmMember message.
                println!("memberID:{} alarm:{} ", a.member_id, alarm_name(a.alarm));
            }
        }
    }
}

pub async fn move_leader(ctx: &Ctx, a: MoveLeaderArgs) -> Result<()> {
    let target = parse_hex_u64(&a.transferee).map_err(|e| {
        CtlError::bad_args(format!("bad transferee ID arg ({e}), expecting ID in Hex"))
    })?;
    // The leader must be among the endpoints: it is the one that hands over.
    for ep in &ctx.global.endpoints {
        let mut c = client::connect_to(&ctx.global, std::slice::from_ref(ep)).await?;
        let status = ctx.timed(c.status()).await?.0;
        let me = status.header.unwrap_or_default().member_id;
        if me != status.leader {
            continue;
        }
        let r = ctx.timed(c.move_leader(target)).await?.0;
        match ctx.printer.format {
            Format::Json => println!(
                "{}",
                json::Obj::new()
                    .obj("header", json::header(&r.header))
                    .finish()
            ),
            Format::Simple => {
                println!("Leadership transferred from {me:x} to {target:x}")
            }
            _ => return Err(ctx.printer.unsupported()),
        }
        return Ok(());
    }
    Err(CtlError::new(
        EXIT_BAD_ARGS,
        format!(
            "no leader endpoint given at [{}]",
            ctx.global.endpoints.join(" ")
        ),
    ))
}
