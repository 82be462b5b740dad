//! What etcdctl's printers write: key/value pairs in the simple format, the fields format's
//! `"Name" : value` lines, tables, and Go's `%q` quoting and sizes.

use etcd_client::proto::{PbKeyValue, PbResponseHeader};

use crate::cli::Format;
use crate::client::{CtlError, EXIT_BAD_FEATURE, Result};

/// How responses are printed: the format and `--hex`.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: Format,
    pub hex: bool,
}

impl Printer {
    /// etcdctl's error for a format a command does not print.
    pub fn unsupported(&self) -> CtlError {
        let name = match self.format {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Table => "table",
            Format::Fields => "fields",
        };
        CtlError::new(
            EXIT_BAD_FEATURE,
            format!("{name} not supported as output format"),
        )
    }

    /// Fails with [`Printer::unsupported`] for `table`, which only some commands print.
    pub fn no_table(&self) -> Result<()> {
        match self.format {
            Format::Table => Err(self.unsupported()),
            _ => Ok(()),
        }
    }

    /// A key/value pair in the simple format: the key then the value, a line each (the
    /// value alone with `--print-value-only`), as text or `\x..` hex.
    pub fn kv(&self, kv: &PbKeyValue, value_only: bool) {
        let show = |b: &[u8]| {
            if self.hex {
                b.iter().map(|x| format!("\\x{x:02x}")).collect()
            } else {
                String::from_utf8_lossy(b).into_owned()
            }
        };
        if !value_only {
            println!("{}", show(&kv.key));
        }
        println!("{}", show(&kv.value));
    }
}

/// The fields format's header lines.
pub fn fields_header(h: &Option<PbResponseHeader>) {
    let h = (*h).unwrap_or_default();
    println!("\"ClusterID\" : {}", h.cluster_id);
    println!("\"MemberID\" : {}", h.member_id);
    println!("\"Revision\" : {}", h.revision);
    println!("\"RaftTerm\" : {}", h.raft_term);
}

/// The fields format's lines of a key/value pair, their names prefixed with `prefix`.
pub fn fields_kv(prefix: &str, kv: &PbKeyValue) {
    println!("\"{prefix}Key\" : {}", go_quote(&kv.key));
    println!("\"{prefix}CreateRevision\" : {}", kv.create_revision);
    println!("\"{prefix}ModRevision\" : {}", kv.mod_revision);
    println!("\"{prefix}Version\" : {}", kv.version);
    println!("\"{prefix}Value\" : {}", go_quote(&kv.value));
    println!("\"{prefix}Lease\" : {}", kv.lease);
}

/// Go's `%q` of the bytes as a string: printable characters as they are, the rest escaped.
pub fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut rest = bytes;
    while !rest.is_empty() {
        let (c, len) = match std::str::from_utf8(rest) {
            Ok(s) => {
                let c = s.chars().next().expect("not empty");
                (Some(c), c.len_utf8())
            }
            Err(e) if e.valid_up_to() > 0 => {
                let s = std::str::from_utf8(&rest[..e.valid_up_to()]).expect("valid prefix");
                let c = s.chars().next().expect("not empty");
                (Some(c), c.len_utf8())
            }
            Err(_) => (None, 1),
        };
        match c {
            None => out.push_str(&format!("\\x{:02x}", rest[0])),
            Some('"') => out.push_str("\\\""),
            Some('\\') => out.push_str("\\\\"),
            Some('\x07') => out.push_str("\\a"),
            Some('\x08') => out.push_str("\\b"),
            Some('\x0c') => out.push_str("\\f"),
            Some('\n') => out.push_str("\\n"),
            Some('\r') => out.push_str("\\r"),
            Some('\t') => out.push_str("\\t"),
            Some('\x0b') => out.push_str("\\v"),
            Some(c) if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            Some(c) if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            Some(c) => out.push(c),
        }
        rest = &rest[len..];
    }
    out.push('"');
    out
}

/// A table as etcdctl draws it (tablewriter, cells right-aligned, headers upper-cased and
/// centered).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let headers: Vec<String> = headers.iter().map(|h| h.to_uppercase()).collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain(std::iter::once(headers[i].chars().count()))
                .max()
                .unwrap_or(0)
                + 2
        })
        .collect();
    let rule = widths.iter().fold(String::from("+"), |mut s, w| {
        s.push_str(&"-".repeat(*w));
        s.push('+');
        s
    });
    let mut out = format!("{rule}\n|");
    for (h, w) in headers.iter().zip(&widths) {
        let gap = w - h.chars().count();
        out.push_str(&format!(
            "{}{h}{}|",
            " ".repeat(gap / 2),
            " ".repeat(gap - gap / 2)
        ));
    }
    out.push_str(&format!("\n{rule}\n"));
    for row in rows {
        out.push('|');
        for (cell, w) in row.iter().zip(&widths) {
            let pad = w - 1 - cell.chars().count();
            out.push_str(&format!("{}{cell} |", " ".repeat(pad)));
        }
        out.push('\n');
    }
    out.push_str(&rule);
    out.push('\n');
    out
}

/// Bytes as go-humanize's `Bytes` writes them (SI units), as etcdctl prints sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let val = ((n as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

/// A Go `time.Duration` as `%v` prints it (`2.345678ms`, `1.5s`).
pub fn go_duration(d: std::time::Duration) -> String {
    let nanos = d.as_nanos();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if nanos < 1_000 {
        format!("{nanos}ns")
    } else if nanos < 1_000_000 {
        format!("{}µs", trim(format!("{:.3}", nanos as f64 / 1e3)))
    } else if nanos < 1_000_000_000 {
        format!("{}ms", trim(format!("{:.6}", nanos as f64 / 1e6)))
    } else {
        format!("{}s", trim(format!("{:.9}", nanos as f64 / 1e9)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote(b"abc"), "\"abc\"");
        assert_eq!(go_quote(b"a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_quote(&[0xff, b'a', 0]), "\"\\xffa\\x00\"");
        assert_eq!(go_quote("é".as_bytes()), "\"é\"");
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(
            go_duration(std::time::Duration::from_micros(2345)),
            "2.345ms"
        );
        assert_eq!(go_duration(std::time::Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn tables_like_etcdctl() {
        let t = table(
            &["endpoint", "hash"],
            &[vec!["127.0.0.1:2379".into(), "12".into()]],
        );
        assert_eq!(
            t,
            "+----------------+------+\n\
             |    ENDPOINT    | HASH |\n\
             +----------------+------+\n\
             | 127.0.0.1:2379 |   12 |\n\
             +----------------+------+\n"
        );
    }
}
