# syntax=docker/dockerfile:1
#
# The gateway's image: `docker build -t layer-mcp-gateway .`
# The Layer simulator for demos (docker-compose.yml): `docker build --target sim -t layer-sim .`
#
# Build with the toolchain rust-toolchain.toml pins (tests/tests/deploy.rs checks that the two
# agree). The full image, not -slim: jemalloc's build script needs make.
ARG RUST_VERSION=1.95.0

# Only the manifests and the lock, so the dependency layer below is rebuilt when they change
# and not on every source edit.
FROM rust:${RUST_VERSION}-bookworm AS manifests
WORKDIR /src
COPY . .
RUN find . -type f ! -name Cargo.toml ! -name Cargo.lock ! -name stub-sources.sh -delete \
    && find . -depth -type d -empty -delete

FROM rust:${RUST_VERSION}-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY --from=manifests /src ./
# Every dependency, built once against empty sources of our own crates. The gateway without
# its default `demo` feature: the simulator is not inside the production binary.
RUN sh deploy/docker/stub-sources.sh \
    && cargo build --release --locked -p layer-mcp-gateway --no-default-features --features jemalloc \
    && cargo build --release --locked -p layer-sim
COPY crates crates
# COPY keeps the files' old mtimes, which cargo would take for "older than the stub build".
RUN find crates -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p layer-mcp-gateway --no-default-features --features jemalloc \
    && cargo build --release --locked -p layer-sim \
    && mkdir -p /out/data \
    && cp target/release/layer-mcp-gateway target/release/layer-sim /out/ \
    && /out/layer-mcp-gateway settings | grep '^listen' >/dev/null \
    && /out/layer-sim --help >/dev/null

# The simulator of Layer's API and login, for the compose demo. Not for production.
FROM gcr.io/distroless/cc-debian12:nonroot AS sim
COPY --from=build /out/layer-sim /usr/local/bin/layer-sim
USER 65532:65532
EXPOSE 8090
ENTRYPOINT ["/usr/local/bin/layer-sim"]
CMD ["--listen", "0.0.0.0:8090"]

# The gateway (the default target). distroless/cc: glibc, libgcc, CA certificates and
# /etc/passwd with `nonroot` (65532); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot AS gateway
COPY --from=build /out/layer-mcp-gateway /usr/local/bin/layer-mcp-gateway
# The OAuth data directory (the SQLite store and a generated key when no Redis store or key
# is set); Kubernetes mounts a volume here, the root filesystem being read-only.
COPY --from=build --chown=65532:65532 /out/data /data
ENV LAYER_MCP_LISTEN=0.0.0.0:8080 \
    LAYER_MCP_DATA_DIR=/data \
    LAYER_MCP_LOG_FORMAT=json
USER 65532:65532
WORKDIR /data
EXPOSE 8080
# No shell or curl here: the binary asks its own /healthz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/layer-mcp-gateway", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/layer-mcp-gateway"]
CMD ["serve"]
