//! Generates the etcd v3 wire types and gRPC services from `proto/`.
//!
//! The protos are parsed by protox, a protobuf compiler written in Rust, so building oxcd needs
//! cargo and nothing else: no system `protoc`.

use std::{env, fs, io, path::PathBuf};

use prost::Message;

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

    let descriptors = protox::compile(PROTOS, ["proto"]).map_err(io::Error::other)?;
    let encoded = descriptors.encode_to_vec();
    fs::write(out_dir.join("etcd_descriptor.bin"), &encoded)?;

    // The proto3 JSON mapping of etcd's types for the JSON gateway, as etcd's gateway writes
    // it (grpc-gateway's JSONPb with OrigName): field names as the protos spell them, int64
    // as strings, bytes as base64, enums by name, default values left out.
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .build(&[
            ".etcdserverpb",
            ".mvccpb",
            ".authpb",
            ".v3electionpb",
            ".v3lockpb",
        ])?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)
}
