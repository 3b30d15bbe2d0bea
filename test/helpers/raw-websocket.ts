/**
 * A WebSocket client over a raw TCP socket, for what the WebSocket API cannot do: stop reading
 * (to play a slow client) and send arbitrary bytes. Frames from the server are parsed by hand.
 */
import { connect as tcpConnect, type Socket } from "node:net";

export interface ServerFrameRaw {
  opcode: number;
  payload: Buffer;
}

export class RawWebSocket {
  private buffer = Buffer.alloc(0);
  /** The server's answer to the upgrade request: status line and headers, as sent. */
  responseHead = "";
  private constructor(readonly socket: Socket) {}

  /**
   * Opens the TCP connection and completes the upgrade handshake (with extra request `headers`);
   * reading is paused afterwards if `paused`. Rejects with the status line if the upgrade is refused.
   */
  static async open(
    port: number,
    path: string,
    options: { paused?: boolean; headers?: Record<string, string> } = {},
  ): Promise<RawWebSocket> {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", () => resolve());
      socket.once("error", reject);
    });
    const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
        Object.entries(options.headers ?? {})
          .map(([name, value]) => `${name}: ${value}\r\n`)
          .join("") +
        "\r\n",
    );
    const client = new RawWebSocket(socket);
    // Read just the handshake response, then stop reading if asked.
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        client.buffer = Buffer.concat([client.buffer, chunk]);
        const end = client.buffer.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = client.buffer.subarray(0, end).toString();
        client.responseHead = head;
        client.buffer = client.buffer.subarray(end + 4);
        socket.off("data", onData);
        if (options.paused) socket.pause();
        if (!head.startsWith("HTTP/1.1 101")) reject(new Error(`upgrade refused: ${head.split("\r\n")[0]}`));
        else resolve();
      };
      socket.on("data", onData);
    });
    return client;
  }

  /** Sends one masked frame (clients must mask) with the given opcode and payload. */
  sendFrame(opcode: number, payload: Uint8Array | string, options: { fin?: boolean } = {}) {
    const data = typeof payload === "string" ? Buffer.from(payload) : Buffer.from(payload);
    const mask = crypto.getRandomValues(new Uint8Array(4));
    const length = data.length;
    const header: number[] = [(options.fin === false ? 0 : 0x80) | opcode];
    if (length < 126) header.push(0x80 | length);
    else if (length < 65536) header.push(0x80 | 126, length >> 8, length & 0xff);
    else {
      header.push(0x80 | 127, 0, 0, 0, 0);
      header.push((length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
    }
    const masked = Buffer.alloc(length);
    for (let index = 0; index < length; index++) masked[index] = data[index]! ^ mask[index % 4]!;
    this.socket.write(Buffer.concat([Buffer.from(header), Buffer.from(mask), masked]));
  }

  /** Writes raw bytes, framing or not. */
  writeRaw(bytes: Uint8Array) {
    this.socket.write(bytes);
  }

  /** Resumes reading and collects every frame until the server closes the connection. */
  readUntilClosed(timeoutMs = 15_000): Promise<ServerFrameRaw[]> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [this.buffer];
      const timer = setTimeout(() => reject(new Error("the server did not close the connection")), timeoutMs);
      this.socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      this.socket.on("close", () => {
        clearTimeout(timer);
        resolve(parseFrames(Buffer.concat(chunks)));
      });
      this.socket.on("error", () => {}); // a reset after the close frame is expected
      this.socket.resume();
    });
  }

  /** Resumes reading until `count` text frames have arrived (or the server closed); returns their texts. */
  readTextFrames(count: number, timeoutMs = 10_000): Promise<string[]> {
    return new Promise((resolve, reject) => {
      let data = this.buffer;
      const texts = () => parseFrames(data).filter((frame) => frame.opcode === 1).map((frame) => frame.payload.toString());
      const timer = setTimeout(() => reject(new Error(`fewer than ${count} text frames arrived`)), timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.socket.off("data", onData);
        resolve(texts().slice(0, count));
      };
      const onData = (chunk: Buffer) => {
        data = Buffer.concat([data, chunk]);
        if (texts().length >= count) done();
      };
      this.socket.on("data", onData);
      this.socket.once("close", done);
      this.socket.on("error", () => {});
      this.socket.resume();
      if (texts().length >= count) done();
    });
  }

  destroy() {
    this.socket.destroy();
  }
}

export function parseFrames(data: Buffer): ServerFrameRaw[] {
  const frames: ServerFrameRaw[] = [];
  let offset = 0;
  while (offset + 2 <= data.length) {
    const opcode = data[offset]! & 0x0f;
    let length = data[offset + 1]! & 0x7f;
    let headerLength = 2;
    if (length === 126) {
      length = data.readUInt16BE(offset + 2);
      headerLength = 4;
    } else if (length === 127) {
      length = Number(data.readBigUInt64BE(offset + 2));
      headerLength = 10;
    }
    if (offset + headerLength + length > data.length) break;
    frames.push({ opcode, payload: data.subarray(offset + headerLength, offset + headerLength + length) });
    offset += headerLength + length;
  }
  return frames;
}

/** The close code of a close frame (opcode 8). */
export function closeCode(frame: ServerFrameRaw): number | undefined {
  return frame.opcode === 8 && frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : undefined;
}
