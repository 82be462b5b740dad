//! `oxcd-failpoints`: the `oxcd` server built with the `failpoints` feature. It has a name of
//! its own so that the fault-injection build and the plain one never overwrite each other in
//! the target dir. Robustness tests arm its fail points through `FAILPOINTS`.

#[path = "oxcd.rs"]
mod oxcd_main;

fn main() {
    oxcd_main::main();
}
