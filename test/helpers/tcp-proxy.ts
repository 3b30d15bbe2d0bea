/**
 * A TCP proxy on loopback that can freeze: while frozen it forwards nothing either way (what
 * arrives is held, and goes on when it thaws). To the client, the server has stopped answering
 * without closing anything — a network partition, a stalled VM — which a refused or closed
 * connection does not show.
 */
import type { Socket } from "bun";

export interface FreezableProxy {
  port: number;
  freeze(): void;
  thaw(): void;
  stop(): void;
}

interface Side {
  peer?: Socket<Side>;
  held: Uint8Array[];
  pending: Uint8Array[]; // arrived before the peer connected
}

/** `delayMs`: every chunk goes on that much later, each way (a database that far away; order kept). */
export async function startFreezableProxy(targetHost: string, targetPort: number, options: { delayMs?: number } = {}): Promise<FreezableProxy> {
  let frozen = false;
  const sockets = new Set<Socket<Side>>();
  const forward = (from: Socket<Side>, data: Uint8Array) => {
    const copy = new Uint8Array(data);
    if (options.delayMs) {
      setTimeout(() => (frozen || !from.data.peer ? (frozen ? from.data.held : from.data.pending).push(copy) : from.data.peer.write(copy)), options.delayMs);
      return;
    }
    if (frozen || !from.data.peer) (frozen ? from.data.held : from.data.pending).push(copy);
    else from.data.peer.write(copy);
  };
  const flush = (socket: Socket<Side>) => {
    const peer = socket.data.peer;
    if (!peer) return;
    for (const chunk of socket.data.pending.splice(0)) peer.write(chunk);
    for (const chunk of socket.data.held.splice(0)) peer.write(chunk);
  };
  const server = Bun.listen<Side>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      async open(client) {
        client.data = { held: [], pending: [] };
        sockets.add(client);
        const upstream = await Bun.connect<Side>({
          hostname: targetHost,
          port: targetPort,
          socket: {
            open(socket) {
              socket.data = { peer: client, held: [], pending: [] };
              sockets.add(socket);
            },
            data: (socket, data) => forward(socket, data),
            close: (socket) => {
              sockets.delete(socket);
              void socket.data.peer?.end();
            },
            error: (socket) => void socket.data.peer?.end(),
          },
        });
        client.data.peer = upstream;
        if (!frozen) flush(client);
      },
      data: (socket, data) => forward(socket, data),
      close: (socket) => {
        sockets.delete(socket);
        void socket.data.peer?.end();
      },
      error: (socket) => void socket.data.peer?.end(),
    },
  });
  return {
    port: server.port,
    freeze() {
      frozen = true;
    },
    thaw() {
      frozen = false;
      for (const socket of sockets) flush(socket);
    },
    stop() {
      for (const socket of sockets) socket.end();
      server.stop(true);
    },
  };
}
