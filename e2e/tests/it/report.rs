//! Violation reports: the window they narrow to and how they read.

use oxcd_e2e::checker::{CheckOptions, Linearizability, check_linearizability};
use oxcd_e2e::history::{History, Operation};

use crate::fixtures::{created, get, kv, put};

fn check(operations: Vec<Operation>) -> Linearizability {
    check_linearizability(
        &History {
            operations,
            watches: Vec::new(),
        },
        &CheckOptions::default(),
    )
}

#[test]
fn report_narrows_to_the_failing_window() {
    // Quiet, unrelated traffic first; then the stale read of "a".
    let mut operations: Vec<Operation> = (0..20)
        .map(|i| put(1, (i * 10, i * 10 + 5), &format!("k{i}"), "v", 2 + i as i64))
        .collect();
    operations.push(put(1, (300, 310), "a", "1", 22));
    operations.push(put(2, (305, 340), "b", "1", 23));
    operations.push(get(3, (320, 330), "b", 22, None));
    operations.push(put(1, (350, 360), "a", "2", 24));
    operations.push(get(2, (370, 380), "a", 24, Some(kv("a", "1", 22, 22, 1))));
    let stale_read = operations.len() - 1;
    let Linearizability::Violation(report) = check(operations) else {
        panic!("expected a violation")
    };
    assert_eq!(report.failing_operation, stale_read);
    let window: Vec<usize> = report.window.iter().map(|op| op.index).collect();
    assert_eq!(
        window,
        vec![stale_read],
        "the stale read fails on its own from the state before it"
    );
    assert_eq!(report.start.revision, 24);
    let text = report.to_string();
    assert!(
        text.contains(&format!("operation #{stale_read} cannot be linearized")),
        "{text}"
    );
    assert!(text.contains("get a"), "{text}");
}

#[test]
fn report_keeps_the_concurrent_writes_that_matter() {
    let operations = vec![
        put(1, (0, 10), "x", "0", 2),
        created(1, (20, 40), "a", "1", 3),
        get(3, (25, 28), "x", 2, Some(kv("x", "0", 2, 2, 1))),
        created(2, (30, 50), "a", "2", 4),
        put(1, (60, 70), "x", "1", 5),
    ];
    let Linearizability::Violation(report) = check(operations) else {
        panic!("expected a violation")
    };
    let window: Vec<usize> = report.window.iter().map(|op| op.index).collect();
    assert_eq!(
        window,
        vec![1, 3],
        "both creates, without the read or the later put: {report}"
    );
}
