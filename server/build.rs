//! Generates the etcd v3 wire types and gRPC services from `proto/`.

use std::{env, io, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/mvccpb/kv.proto",
    "proto/authpb/auth.proto",
    "proto/etcdserverpb/rpc.proto",
    "proto/v3electionpb/v3election.proto",
    "proto/v3lockpb/v3lock.proto",
    "proto/oxcdpb/internal.proto",
    "proto/oxcdpb/peer.proto",
];

fn main() -> io::Result<()> {
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(out_dir.join("etcd_descriptor.bin"))
        .compile_protos(PROTOS, &["proto"])
}
