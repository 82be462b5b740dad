//! get, put, del, compaction.

use std::io::Read;

use etcd_client::proto::{PbDeleteResponse, PbPutResponse, PbRangeResponse};
use etcd_client::{DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget};

use super::Ctx;
use crate::cli::{CompactionArgs, DelArgs, Format, GetArgs, PutArgs};
use crate::client::{CtlError, EXIT_BAD_FEATURE, EXIT_ERROR, Result};
use crate::output::{Printer, fields_header, fields_kv};

const NO_PREFIX_AND_FROM_KEY: &str =
    "`--prefix` and `--from-key` cannot be set at the same time, choose one";
const ONE_ARG_WITH_PREFIX: &str =
    "too many arguments, only accept one argument when `--prefix` or `--from-key` is set.";

/// Which keys an operation covers.
pub enum Span {
    Key,
    Range(Vec<u8>),
    Prefix,
    FromKey,
}

/// etcdctl's reading of `key [range_end]` with `--prefix` and `--from-key` (at most one of
/// them, and then no range end): an empty key with either means every key, from `\0`.
pub fn span(
    key: &str,
    range_end: Option<&String>,
    prefix: bool,
    from_key: bool,
) -> Result<(Vec<u8>, Span)> {
    if prefix && from_key {
        return Err(CtlError::bad_args(NO_PREFIX_AND_FROM_KEY));
    }
    if range_end.is_some() && (prefix || from_key) {
        return Err(CtlError::bad_args(ONE_ARG_WITH_PREFIX));
    }
    let key = key.as_bytes().to_vec();
    Ok(match range_end {
        Some(end) => (key, Span::Range(end.as_bytes().to_vec())),
        None if (prefix || from_key) && key.is_empty() => (vec![0], Span::FromKey),
        None if prefix => (key, Span::Prefix),
        None if from_key => (key, Span::FromKey),
        None => (key, Span::Key),
    })
}

/// Options (`GetOptions`, `DeleteOptions`, `WatchOptions`) covering a [`Span`].
#[macro_export]
macro_rules! with_span {
    ($opts:expr, $span:expr) => {
        match $span {
            $crate::commands::kv::Span::Key => $opts,
            $crate::commands::kv::Span::Range(end) => $opts.with_range(end),
            $crate::commands::kv::Span::Prefix => $opts.with_prefix(),
            $crate::commands::kv::Span::FromKey => $opts.with_from_key(),
        }
    };
}

/// A get's key and options, as etcdctl builds them (also for `get` in a txn).
pub fn get_op(a: &GetArgs) -> Result<(Vec<u8>, GetOptions)> {
    let Some(key) = &a.key else {
        return Err(CtlError::bad_args(
            "get command needs one argument as key and an optional argument as range_end",
        ));
    };
    let (key, span) = span(key, a.range_end.as_ref(), a.prefix, a.from_key)?;
    let mut opts = with_span!(GetOptions::new(), span);
    match a.consistency.as_str() {
        "l" => {}
        "s" => opts = opts.with_serializable(),
        other => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("unknown consistency flag {other:?}"),
            ));
        }
    }
    opts = opts.with_limit(a.limit).with_revision(a.rev);
    let order = match a.order.to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("bad sort order {}", a.order),
            ));
        }
    };
    let target = match a.sort_by.to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("bad sort target {}", a.sort_by),
            ));
        }
    };
    // clientv3's WithSort: sorting by key ascending is the order keys come in anyway.
    let order = match (target, order) {
        (SortTarget::Key, SortOrder::Ascend) => SortOrder::None,
        (_, order) => order,
    };
    opts = opts.with_sort(target, order);
    if a.keys_only {
        opts = opts.with_keys_only();
    }
    Ok((key, opts))
}

pub async fn get(ctx: &Ctx, a: GetArgs) -> Result<()> {
    let (key, opts) = get_op(&a)?;
    ctx.printer.no_table()?;
    let mut c = ctx.client().await?;
    let resp = ctx.timed(c.get(key, Some(opts))).await?;
    print_get(&ctx.printer, &resp.0, a.print_value_only);
    Ok(())
}

pub fn print_get(p: &Printer, r: &PbRangeResponse, value_only: bool) {
    match p.format {
        Format::Json => println!("{}", crate::json::range(r)),
        Format::Fields => {
            fields_header(&r.header);
            for kv in &r.kvs {
                fields_kv("", kv);
            }
            println!("\"More\" : {}", r.more);
            println!("\"Count\" : {}", r.count);
        }
        _ => {
            for kv in &r.kvs {
                p.kv(kv, value_only);
            }
        }
    }
}

/// A put's key, value and options, as etcdctl builds them; `stdin` gives the value when it is
/// not an argument.
pub fn put_op(a: &PutArgs, stdin: bool) -> Result<(Vec<u8>, Vec<u8>, PutOptions)> {
    let Some(key) = &a.key else {
        return Err(CtlError::bad_args(
            "put command needs 1 argument and input from stdin or 2 arguments",
        ));
    };
    if a.ignore_value && a.value.is_some() {
        return Err(CtlError::bad_args(
            "value should not be specified when ignore-value is set",
        ));
    }
    let value = match &a.value {
        Some(v) => v.as_bytes().to_vec(),
        None if a.ignore_value => Vec::new(),
        None if stdin => {
            let mut v = Vec::new();
            std::io::stdin().read_to_end(&mut v)?;
            v
        }
        None => {
            return Err(CtlError::bad_args(
                "put command needs 1 argument and input from stdin or 2 arguments",
            ));
        }
    };
    let lease = i64::from_str_radix(&a.lease, 16).map_err(|_| {
        CtlError::bad_args(format!("bad lease ID ({}), expecting ID in Hex", a.lease))
    })?;
    let mut opts = PutOptions::new();
    if lease != 0 {
        opts = opts.with_lease(lease);
    }
    if a.prev_kv {
        opts = opts.with_prev_key();
    }
    if a.ignore_value {
        opts = opts.with_ignore_value();
    }
    if a.ignore_lease {
        opts = opts.with_ignore_lease();
    }
    Ok((key.as_bytes().to_vec(), value, opts))
}

pub async fn put(ctx: &Ctx, a: PutArgs) -> Result<()> {
    let (key, value, opts) = put_op(&a, true)?;
    ctx.printer.no_table()?;
    let mut c = ctx.client().await?;
    let resp = ctx.timed(c.put(key, value, Some(opts))).await?;
    print_put(&ctx.printer, &resp.0);
    Ok(())
}

pub fn print_put(p: &Printer, r: &PbPutResponse) {
    match p.format {
        Format::Json => println!("{}", crate::json::put(r)),
        Format::Fields => {
            fields_header(&r.header);
            if let Some(prev) = &r.prev_kv {
                fields_kv("Prev", prev);
            }
        }
        _ => {
            println!("OK");
            if let Some(prev) = &r.prev_kv {
                p.kv(prev, false);
            }
        }
    }
}

/// A delete's key and options, as etcdctl builds them.
pub fn del_op(a: &DelArgs) -> Result<(Vec<u8>, DeleteOptions)> {
    let Some(key) = &a.key else {
        return Err(CtlError::bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        ));
    };
    let (key, span) = span(key, a.range_end.as_ref(), a.prefix, a.from_key)?;
    let mut opts = with_span!(DeleteOptions::new(), span);
    if a.prev_kv {
        opts = opts.with_prev_key();
    }
    Ok((key, opts))
}

pub async fn del(ctx: &Ctx, a: DelArgs) -> Result<()> {
    let (key, opts) = del_op(&a)?;
    ctx.printer.no_table()?;
    let mut c = ctx.client().await?;
    let resp = ctx.timed(c.delete(key, Some(opts))).await?;
    print_del(&ctx.printer, &resp.0);
    Ok(())
}

pub fn print_del(p: &Printer, r: &PbDeleteResponse) {
    match p.format {
        Format::Json => println!("{}", crate::json::delete(r)),
        Format::Fields => {
            fields_header(&r.header);
            println!("\"Deleted\" : {}", r.deleted);
            for kv in &r.prev_kvs {
                fields_kv("Prev", kv);
            }
        }
        _ => {
            println!("{}", r.deleted);
            for kv in &r.prev_kvs {
                p.kv(kv, false);
            }
        }
    }
}

pub async fn compaction(ctx: &Ctx, a: CompactionArgs) -> Result<()> {
    let rev: i64 = a.revision.parse().map_err(|_| {
        CtlError::new(
            EXIT_ERROR,
            format!("strconv.ParseInt: parsing {:?}: invalid syntax", a.revision),
        )
    })?;
    let mut c = ctx.client().await?;
    let opts = a
        .physical
        .then(|| etcd_client::CompactionOptions::new().with_physical());
    ctx.timed(c.compact(rev, opts)).await?;
    println!("compacted revision {rev}");
    Ok(())
}
