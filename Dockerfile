# syntax=docker/dockerfile:1
#
# Sovra operator image. Build from the repository root:
#   docker build -t ghcr.io/sovra-project/sovra:0.1.0 .
# (or `podman build`, `buildah bud`, `nerdctl build`; BuildKit is needed for the cache mounts).

# --- build -------------------------------------------------------------------------------
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# --locked: build exactly the dependency versions of Cargo.lock. The cache mounts keep the
# registry and target directory between builds; the binary is copied out of the cache.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sovra \
    && install -D -m 0555 target/release/sovra /out/sovra

# --- runtime -----------------------------------------------------------------------------
# Distroless: glibc, libgcc and CA certificates, no shell or package manager. Debian 12 matches
# the build stage's glibc.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/sovra /sovra
# Numeric, so the kubelet can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
# /metrics, /healthz, /readyz
EXPOSE 8080
ENTRYPOINT ["/sovra"]
CMD ["run"]
