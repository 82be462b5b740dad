//! `oxcdctl`: etcdctl v3's verbs, flags, output formats and exit codes.

fn main() {
    std::process::exit(oxcdctl::run(std::env::args_os()));
}
