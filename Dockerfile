# mirrorctl, multi-stage: build with the Rust toolchain, run on a small Debian base as a non-root
# user. The state directory is a volume; the desired-state directory is mounted (or git-synced).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY desired-state ./desired-state
RUN cargo build --release --locked --bin mirrorctl && strip target/release/mirrorctl

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/mirrorctl --create-home mirrorctl
COPY --from=build /src/target/release/mirrorctl /usr/local/bin/mirrorctl
COPY deploy/daemon.toml /etc/mirrorctl/daemon.toml
USER mirrorctl
VOLUME ["/var/lib/mirrorctl"]
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/mirrorctl"]
CMD ["run", "--config", "/etc/mirrorctl/daemon.toml"]
