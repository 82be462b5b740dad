//! watch: events of a key, a range or a prefix until interrupted or canceled by the server;
//! after `--`, a command run at each event with the event in its environment.

use etcd_client::WatchOptions;
use etcd_client::proto::PbWatchResponse;

use super::Ctx;
use crate::cli::{Format, WatchArgs};
use crate::client::{CtlError, EXIT_BAD_ARGS, EXIT_INTERRUPTED, Result};
use crate::output::{Printer, fields_header, fields_kv};

pub async fn watch(ctx: &Ctx, a: WatchArgs) -> Result<()> {
    if a.interactive {
        return Err(CtlError::new(
            crate::client::EXIT_BAD_FEATURE,
            "interactive watch is not supported by oxcdctl; run one watch per key",
        ));
    }
    let command = a.command.clone();
    let (key, range_end) = match a.keys.as_slice() {
        [] => {
            return Err(CtlError::new(
                EXIT_BAD_ARGS,
                "watch in non-interactive mode requires one or two arguments as key or prefix, with range end",
            ));
        }
        [key] => (key.clone(), None),
        [key, end] => (key.clone(), Some(end.clone())),
        _ => {
            return Err(CtlError::new(
                EXIT_BAD_ARGS,
                "watch in non-interactive mode requires one or two arguments as key or prefix, with range end",
            ));
        }
    };
    if a.prefix && range_end.is_some() {
        return Err(CtlError::new(
            EXIT_BAD_ARGS,
            "unexpected range_end with --prefix",
        ));
    }
    ctx.printer.no_table()?;
    let (key, span) = super::kv::span(&key, range_end.as_ref(), a.prefix, false)?;
    let mut opts = crate::with_span!(WatchOptions::new().with_start_revision(a.rev), span);
    if a.prev_kv {
        opts = opts.with_prev_key();
    }
    let mut c = ctx.client().await?;
    let mut stream = c.watch(key, Some(opts)).await?;
    while let Some(resp) = stream.message().await? {
        let r = resp.0;
        if r.created && r.events.is_empty() && !r.canceled {
            continue;
        }
        if r.canceled {
            let why = if r.compact_revision > 0 {
                "etcdserver: mvcc: required revision has been compacted".to_string()
            } else {
                r.cancel_reason.clone()
            };
            eprintln!("watch was canceled ({why})");
        }
        print_watch(&ctx.printer, &r);
        if !command.is_empty() {
            run_for_events(&command, &r)?;
        }
        if r.canceled {
            break;
        }
    }
    Err(CtlError::new(
        EXIT_INTERRUPTED,
        "watch is canceled by the server",
    ))
}

pub fn print_watch(p: &Printer, r: &PbWatchResponse) {
    match p.format {
        Format::Json => println!("{}", crate::json::watch(r)),
        Format::Fields => {
            fields_header(&r.header);
            for e in &r.events {
                println!("\"Type\" : {}", event_type(e.r#type));
                if let Some(prev) = &e.prev_kv {
                    fields_kv("Prev", prev);
                }
                if let Some(kv) = &e.kv {
                    fields_kv("", kv);
                }
            }
        }
        _ => {
            for e in &r.events {
                println!("{}", event_type(e.r#type));
                if let Some(prev) = &e.prev_kv {
                    p.kv(prev, false);
                }
                if let Some(kv) = &e.kv {
                    p.kv(kv, false);
                }
            }
        }
    }
}

fn event_type(t: i32) -> &'static str {
    if t == 1 { "DELETE" } else { "PUT" }
}

/// Runs `command` once per event, with etcdctl's `ETCD_WATCH_*` variables.
fn run_for_events(command: &[String], r: &PbWatchResponse) -> Result<()> {
    for e in &r.events {
        let kv = e.kv.clone().unwrap_or_default();
        let status = std::process::Command::new(&command[0])
            .args(&command[1..])
            .env(
                "ETCD_WATCH_REVISION",
                r.header.unwrap_or_default().revision.to_string(),
            )
            .env("ETCD_WATCH_EVENT_TYPE", event_type(e.r#type))
            .env("ETCD_WATCH_KEY", String::from_utf8_lossy(&kv.key).as_ref())
            .env(
                "ETCD_WATCH_VALUE",
                String::from_utf8_lossy(&kv.value).as_ref(),
            )
            .status();
        if let Err(err) = status {
            eprintln!("command {command:?} error ({err})");
        }
    }
    Ok(())
}
