//! The kit on real processes: members start, serve, die and come back as the tests that use
//! the kit expect. The `oxcd` binary is built here on first use (these are not the server
//! package's tests, so cargo does not name it).

mod cluster;
mod member;
