//! txn: compares, success and failure requests read from standard input, a blank line after
//! each part, as etcdctl reads them (`-i` prints the prompts).

use std::io::BufRead;

use clap::Parser;
use etcd_client::proto::{PbTxnOpResponse, PbTxnResponse};
use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use super::Ctx;
use super::kv::{del_op, get_op, print_del, print_get, print_put, put_op};
use crate::cli::{DelArgs, Format, GetArgs, PutArgs, TxnArgs};
use crate::client::{CtlError, EXIT_INVALID_INPUT, Result};
use crate::output::{Printer, fields_header};

/// One request line of a txn: `put`, `get` or `del` with their flags.
#[derive(Parser, Debug)]
#[command(no_binary_name = true)]
enum RequestLine {
    Put(PutArgs),
    Get(GetArgs),
    Del(DelArgs),
}

fn invalid(message: String) -> CtlError {
    CtlError::new(EXIT_INVALID_INPUT, message)
}

pub async fn txn(ctx: &Ctx, a: TxnArgs) -> Result<()> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock();
    let prompt = |s: &str| {
        if a.interactive {
            println!("{s}");
        }
    };
    prompt("compares:");
    let compares = read_part(&mut lines)?
        .iter()
        .map(|l| parse_compare(l))
        .collect::<Result<Vec<_>>>()?;
    prompt("success requests (get, put, del):");
    let success = read_part(&mut lines)?
        .iter()
        .map(|l| parse_request(l))
        .collect::<Result<Vec<_>>>()?;
    prompt("failure requests (get, put, del):");
    let failure = read_part(&mut lines)?
        .iter()
        .map(|l| parse_request(l))
        .collect::<Result<Vec<_>>>()?;
    ctx.printer.no_table()?;
    let mut c = ctx.client().await?;
    let txn = Txn::new().when(compares).and_then(success).or_else(failure);
    let resp = ctx.timed(c.txn(txn)).await?;
    print_txn(&ctx.printer, &resp.0);
    Ok(())
}

/// The lines up to the next blank one; the end of the input is an error, as for etcdctl.
fn read_part(input: &mut impl BufRead) -> Result<Vec<String>> {
    let mut part = Vec::new();
    loop {
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            return Err(invalid("EOF".into()));
        }
        let line = line.trim();
        if line.is_empty() {
            return Ok(part);
        }
        part.push(line.to_string());
    }
}

/// `target("key") op "value"`.
fn parse_compare(line: &str) -> Result<Compare> {
    let malformed = || invalid(format!("malformed comparison: {line}"));
    let (target, rest) = line.split_once('(').ok_or_else(malformed)?;
    let (key, rest) = go_unquote(rest.trim_start()).ok_or_else(malformed)?;
    let rest = rest.strip_prefix(')').ok_or_else(malformed)?.trim_start();
    let (op, rest) = rest.split_once(char::is_whitespace).ok_or_else(malformed)?;
    let (value, _) = go_unquote(rest.trim_start()).ok_or_else(malformed)?;
    let op = match op {
        "=" => CompareOp::Equal,
        "!=" => CompareOp::NotEqual,
        "<" => CompareOp::Less,
        ">" => CompareOp::Greater,
        _ => return Err(malformed()),
    };
    let number = || {
        value
            .parse::<i64>()
            .map_err(|_| invalid(format!("invalid txn compare request: {line}")))
    };
    Ok(match target {
        "ver" | "version" => Compare::version(key, op, number()?),
        "c" | "create" => Compare::create_revision(key, op, number()?),
        "m" | "mod" => Compare::mod_revision(key, op, number()?),
        "val" | "value" => Compare::value(key, op, value),
        "lease" => Compare::lease(key, op, number()?),
        other => {
            return Err(invalid(format!(
                "malformed comparison: {line} (unknown target {other})"
            )));
        }
    })
}

/// A Go-quoted string at the start of `s` (`"..."` with escapes, or a raw `` `...` ``);
/// returns it and what follows.
fn go_unquote(s: &str) -> Option<(String, &str)> {
    if let Some(raw) = s.strip_prefix('`') {
        let end = raw.find('`')?;
        return Some((raw[..end].to_string(), &raw[end + 1..]));
    }
    let mut chars = s.strip_prefix('"')?.char_indices();
    let mut out = Vec::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let rest = &s[1 + i + 1..];
                return Some((String::from_utf8_lossy(&out).into_owned(), rest));
            }
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push(b'\n'),
                    't' => out.push(b'\t'),
                    'r' => out.push(b'\r'),
                    'a' => out.push(7),
                    'b' => out.push(8),
                    'f' => out.push(12),
                    'v' => out.push(11),
                    '\\' => out.push(b'\\'),
                    '"' => out.push(b'"'),
                    '\'' => out.push(b'\''),
                    'x' => {
                        let hi = chars.next()?.1;
                        let lo = chars.next()?.1;
                        out.push(u8::from_str_radix(&format!("{hi}{lo}"), 16).ok()?);
                    }
                    _ => return None,
                }
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    None
}

/// Splits a request line into arguments as etcdctl's `argify` does: words, `"quoted"`
/// (with Go escapes) and `'quoted'` strings.
fn argify(line: &str) -> Option<Vec<String>> {
    let mut args = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if rest.starts_with('"') {
            let (arg, after) = go_unquote(rest)?;
            args.push(arg);
            rest = after;
        } else if let Some(quoted) = rest.strip_prefix('\'') {
            let end = quoted.find('\'')?;
            args.push(quoted[..end].to_string());
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            args.push(rest[..end].to_string());
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    Some(args)
}

fn parse_request(line: &str) -> Result<TxnOp> {
    let args = argify(line).ok_or_else(|| invalid(format!("invalid txn request: {line}")))?;
    if args.len() < 2 {
        return Err(invalid(format!("invalid txn compare request: {line}")));
    }
    let bad = || invalid(format!("invalid txn request: {line}"));
    match RequestLine::try_parse_from(args).map_err(|_| bad())? {
        RequestLine::Put(a) => {
            let (key, value, opts) = put_op(&a, false).map_err(|_| bad())?;
            Ok(TxnOp::put(key, value, Some(opts)))
        }
        RequestLine::Get(a) => {
            let (key, opts) = get_op(&a).map_err(|_| bad())?;
            Ok(TxnOp::get(key, Some(opts)))
        }
        RequestLine::Del(a) => {
            let (key, opts) = del_op(&a).map_err(|_| bad())?;
            Ok(TxnOp::delete(key, Some(opts)))
        }
    }
}

pub fn print_txn(p: &Printer, r: &PbTxnResponse) {
    match p.format {
        Format::Json => println!("{}", crate::json::txn(r)),
        Format::Fields => {
            fields_header(&r.header);
            println!("\"Succeeded\" : {}", r.succeeded);
            for op in &r.responses {
                match &op.response {
                    Some(PbTxnOpResponse::ResponseDeleteRange(d)) => print_del(p, d),
                    Some(PbTxnOpResponse::ResponsePut(put)) => print_put(p, put),
                    Some(PbTxnOpResponse::ResponseRange(g)) => print_get(p, g, false),
                    _ => {}
                }
            }
        }
        _ => {
            println!("{}", if r.succeeded { "SUCCESS" } else { "FAILURE" });
            for op in &r.responses {
                println!();
                match &op.response {
                    Some(PbTxnOpResponse::ResponseDeleteRange(d)) => print_del(p, d),
                    Some(PbTxnOpResponse::ResponsePut(put)) => print_put(p, put),
                    Some(PbTxnOpResponse::ResponseRange(g)) => print_get(p, g, false),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argify_splits_like_etcdctl() {
        assert_eq!(
            argify(r#"put k "a b\n" 'c d'"#).unwrap(),
            ["put", "k", "a b\n", "c d"]
        );
    }

    #[test]
    fn compares_parse() {
        assert!(parse_compare(r#"value("k1") = "v1c""#).is_ok());
        assert!(parse_compare(r#"mod("k1") < "5""#).is_ok());
        assert!(parse_compare(r#"bogus("k1") < "5""#).is_err());
        assert!(parse_compare(r#"mod("k1") < "x""#).is_err());
    }
}
