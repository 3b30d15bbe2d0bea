# syntax=docker/dockerfile:1
# Build the single binary in one stage; ship it alone on a slim glibc base, as a non-root user
# (uid/gid 10001), under tini.
#
#   docker build -t agentkit .
#   docker run -p 8000:8000 -v agentkit-data:/data agentkit
#
# Data: the /data volume (the SQLite store; the server runs with /data as working directory, so a
# config file at /data/agentkit.json is found without a flag; or mount one anywhere and set
# AGENTKIT_CONFIG). A bind mount must be writable by uid 10001: `sudo chown -R 10001:10001 ./data`,
# or run as yourself with `--user "$(id -u):$(id -g)"`.
# MCP stdio servers run inside the container: this image has no node/npx, python or uvx. Use MCP
# servers over HTTP (`url`), or build FROM this image and add the runtime they need.
# See README "Build, run, deploy".

FROM oven/bun:1.4.4 AS build
WORKDIR /src
COPY package.json bun.lock bunfig.toml tsconfig.json ./
RUN bun install --frozen-lockfile --production --ignore-scripts
COPY src ./src
# As `bun run build` (package.json): --sourcemap embeds the source map in the executable (stack
# traces name the TypeScript sources; the .map files written beside it are not copied, nor needed),
# --bytecode --format=esm ships the code precompiled (nothing to parse at start-up; still ESM),
# --splitting keeps what is loaded with import() (model providers, MCP, A2A/AG-UI, the docs) out of
# start-up. See BENCHMARKS.md "Start after the fix".
RUN bun build --compile --minify --sourcemap --bytecode --format=esm --splitting src/main.ts --outfile /out/agentkit

FROM debian:bookworm-slim
# CA roots for HTTPS to LLM providers; tini as PID 1, so signals reach agentkit and the MCP child
# processes it spawns are reaped. Nothing else is needed at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 agentkit \
 && useradd --system --uid 10001 --gid agentkit --home-dir /data --no-create-home --shell /usr/sbin/nologin agentkit \
 && mkdir -p /data && chown agentkit:agentkit /data
COPY --from=build /out/agentkit /usr/local/bin/agentkit
USER agentkit
WORKDIR /data
ENV AGENTKIT_HOST=0.0.0.0 \
    PORT=8000 \
    AGENTKIT_DATA_DIR=/data
EXPOSE 8000
VOLUME ["/data"]
# `agentkit healthcheck` reads the address the server wrote to /data/agentkit.addr.json, so it
# follows `serve --port 9000` or `--host` too; without that file it uses PORT and AGENTKIT_HOST.
HEALTHCHECK --interval=15s --timeout=5s --start-period=5s --retries=3 CMD ["agentkit", "healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "agentkit"]
CMD ["serve"]
