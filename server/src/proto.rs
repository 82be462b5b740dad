//! etcd v3 wire types, generated from proto/ by build.rs.

#[allow(clippy::all, missing_docs)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
    include!(concat!(env!("OUT_DIR"), "/mvccpb.serde.rs"));
}

#[allow(clippy::all, missing_docs)]
pub mod authpb {
    tonic::include_proto!("authpb");
    include!(concat!(env!("OUT_DIR"), "/authpb.serde.rs"));
}

#[allow(clippy::all, missing_docs)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.serde.rs"));
}

#[allow(clippy::all, missing_docs)]
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.serde.rs"));
}

#[allow(clippy::all, missing_docs)]
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.serde.rs"));
}

/// Commands replicated through raft (our own, not part of etcd's API).
#[allow(clippy::all, missing_docs)]
pub mod oxcdpb {
    tonic::include_proto!("oxcdpb");
}

/// Encoded `FileDescriptorSet` of all etcd protos (e.g. for gRPC reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/etcd_descriptor.bin"));

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::etcdserverpb::PutRequest;

    #[test]
    fn put_request_wire_encoding() {
        let req = PutRequest {
            key: b"a".to_vec(),
            value: b"b".to_vec(),
            lease: 5,
            prev_kv: true,
            ..Default::default()
        };
        let expected: &[u8] = &[
            0x0a, 0x01, b'a', // field 1 (key), wire type 2, len 1
            0x12, 0x01, b'b', // field 2 (value), wire type 2, len 1
            0x18, 0x05, // field 3 (lease), wire type 0, varint 5
            0x20, 0x01, // field 4 (prev_kv), wire type 0, true
        ];
        assert_eq!(req.encode_to_vec(), expected);
        assert_eq!(PutRequest::decode(expected).unwrap(), req);
    }
}
