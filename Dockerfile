# syntax=docker/dockerfile:1
# One image for the server and its operator:
#   /usr/local/bin/oxcd            the server (the entrypoint), etcd's flags and ETCD_* variables
#   /usr/local/bin/oxcdctl         etcdctl-compatible client
#   /usr/local/bin/oxcd-operator   the Kubernetes controller (the chart sets it as the command)
#
#   docker build -t ghcr.io/oxcd/oxcd:dev .

FROM rust:1.95-bookworm AS builder
# The etcd-client crate (oxcdctl, oxcd-operator) runs protoc in its build script; oxcd itself
# compiles its protos with protox and needs none. Not pinned to a Debian revision: the
# archive drops old ones, and any bookworm protoc builds these protos.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The workspace's release profile keeps limited debug info (debug = 1) for profiling; the
# image goes without it (a smaller image, a shorter build). Panics still name their functions.
ENV CARGO_PROFILE_RELEASE_DEBUG=0
# The cache mounts keep the registry and the target dir between builds; the binaries are
# copied out in the same step because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p oxcd -p oxcdctl -p oxcd-operator --bins \
    && mkdir -p /out \
    && cp target/release/oxcd target/release/oxcdctl target/release/oxcd-operator /out/

# glibc, libgcc and CA certificates; no shell, no package manager. Runs as nonroot (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/ /usr/local/bin/
# Owned by 65532: with no flags, oxcd writes its data dir (default.etcd) in the working
# directory, which must then be writable.
WORKDIR /home/nonroot
USER 65532:65532
# Client (gRPC and HTTP: /health, /livez, /readyz, /metrics) and peer ports.
EXPOSE 2379 2380
ENTRYPOINT ["/usr/local/bin/oxcd"]
