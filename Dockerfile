# The official Nitejar image: the `nitejar` binary on Debian bookworm-slim, running as a non-root user
# with its data (database, plugins, logs, generated keys) in the /app/data volume.
#
#   docker volume create nitejar-data
#   umask 077; printf 'ENCRYPTION_KEY=%s\nNITEJAR_ADMIN_TOKEN=%s\n' \
#     "$(openssl rand -hex 32)" "$(openssl rand -hex 32)" > nitejar.env   # once; keep it
#   docker run -d --name nitejar -p 3000:3000 -v nitejar-data:/app/data --env-file nitejar.env nitejar
#
# Upgrade with the same env file: the stored secrets are readable only with the same ENCRYPTION_KEY
# (a server given another key refuses to start and says so).
#
# Plugins are shared libraries built for this image's glibc (Debian 12): build them on bookworm too.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# The whole workspace: Cargo.lock names every member, and --locked keeps the build reproducible.
COPY . .
# The registry and the build directory are build caches (BuildKit and buildah/podman keep them
# between builds): a source change rebuilds the workspace's own crates, not the ~355 dependencies.
# The binary is copied out of the cache in the same step.
RUN --mount=type=cache,id=nitejar-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=nitejar-target,target=/src/target \
    cargo build --release --locked -p nitejar-server --bin nitejar \
 && strip target/release/nitejar \
 && cp target/release/nitejar /usr/local/bin/nitejar

FROM docker.io/library/debian:bookworm-slim
# ca-certificates: plugins and built-ins reach provider APIs (Telegram, GitHub, model endpoints)
# over TLS. Nothing else: SQLite is compiled into the binary, TLS is rustls.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 nitejar \
 && useradd --system --uid 10001 --gid nitejar --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin nitejar \
 && mkdir -p /app/data \
 && chown -R nitejar:nitejar /app
COPY --from=builder /usr/local/bin/nitejar /usr/local/bin/nitejar

ENV NITEJAR_DATA_DIR=/app/data \
    DATABASE_URL=/app/data/nitejar.db \
    NITEJAR_PLUGINS_DIR=/app/data/plugins \
    NITEJAR_BIND=0.0.0.0 \
    PORT=3000 \
    RUST_LOG=info
WORKDIR /app
USER nitejar
VOLUME ["/app/data"]
EXPOSE 3000
# The slim image has no curl: the binary checks its own /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["nitejar", "healthcheck"]
ENTRYPOINT ["nitejar"]
CMD ["serve"]
