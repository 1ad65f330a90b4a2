# spanprobe and the demo, built from source. Stages:
#   build    - toolchains (rust-toolchain.toml's stable, ebpf/rust-toolchain.toml's dated
#              nightly, bpf-linker) and the release build
#   spanprobe - the small runtime image: the self-contained spanprobe binary
#   demo     - the demo program that docker-compose.yml traces
FROM rust:1.98.0-bookworm AS build
WORKDIR /src
COPY . .
# setup.sh installs the pinned toolchains, the nightly's rust-src and bpf-linker against the
# nightly's LLVM.
RUN ./scripts/setup.sh \
    && cargo build --release --locked \
    && make -C examples/demo

FROM debian:bookworm-slim AS spanprobe
# The system roots that https:// collector endpoints are verified against.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/spanprobe /usr/local/bin/spanprobe
ENTRYPOINT ["/usr/local/bin/spanprobe"]
CMD ["run", "--config", "/etc/spanprobe/spanprobe.yaml"]

FROM debian:bookworm-slim AS demo
COPY --from=build /src/examples/demo/demo /opt/demo/demo
CMD ["/opt/demo/demo", "0", "200"]
