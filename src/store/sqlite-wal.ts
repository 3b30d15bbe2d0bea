/**
 * What is in a SQLite WAL file, read from the file itself (https://sqlite.org/fileformat2.html#walformat):
 * a 32-byte header (big-endian: magic, version, page size, checkpoint sequence, salt-1, salt-2,
 * checksums), then frames of a 24-byte header (page number, commit size, salt-1, salt-2,
 * checksums) and a page. Each time the WAL starts over ("reset": the first commit after a
 * checkpoint that copied every frame, with no reader using the WAL) the writer gives the header new
 * salts and writes its frames from the start of the file again; the frames past them, left from
 * before, keep the old salts. So the frames of the current log are the ones at the start of the file
 * whose salts are the header's, and they are a prefix: everything past the first frame with other
 * salts is left over (frames are written in order, and a log is never written past without its start).
 *
 * The `-wal` file may be opened and closed freely: SQLite takes its POSIX locks on the database file
 * and on `-shm`, never on `-wal` (closing a descriptor drops every lock the process holds on that file,
 * so this module must never touch `-shm`).
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

export const WAL_HEADER_BYTES = 32;
export const WAL_FRAME_HEADER_BYTES = 24;
const MAGIC = [0x377f0682, 0x377f0683];

export interface WalLog {
  /** The WAL file's size in bytes. */
  fileBytes: number;
  /** The database's page size (a frame is `pageBytes + 24` bytes); 0 when the file has no valid header. */
  pageBytes: number;
  /** The header's salts ("salt-1:salt-2"): they change each time the log starts over. */
  salts: string;
  /**
   * Frames at the start of the file with the header's salts: the current log (committed frames, and
   * at most the frames of a transaction under way or rolled back). 0 for an empty or absent file.
   */
  frames: number;
}

/** What the WAL of database `path` holds (`<path>-wal`); an absent or empty WAL is `frames: 0`. */
export function readWalLog(path: string): WalLog {
  let fd: number;
  try {
    fd = openSync(`${path}-wal`, "r");
  } catch {
    return { fileBytes: 0, pageBytes: 0, salts: "", frames: 0 };
  }
  try {
    return walLogOf(fd);
  } finally {
    closeSync(fd);
  }
}

function walLogOf(fd: number): WalLog {
  const fileBytes = fstatSync(fd).size;
  const header = Buffer.alloc(WAL_HEADER_BYTES);
  if (fileBytes < WAL_HEADER_BYTES || readSync(fd, header, 0, WAL_HEADER_BYTES, 0) < WAL_HEADER_BYTES || !MAGIC.includes(header.readUInt32BE(0))) {
    return { fileBytes, pageBytes: 0, salts: "", frames: 0 };
  }
  const pageBytes = header.readUInt32BE(8);
  const salt1 = header.readUInt32BE(16);
  const salt2 = header.readUInt32BE(20);
  const salts = `${salt1.toString(16)}:${salt2.toString(16)}`;
  const frameBytes = pageBytes + WAL_FRAME_HEADER_BYTES;
  const salt = Buffer.alloc(8);
  /** Whether frame `index` (0-based) is there and has the header's salts. */
  const current = (index: number) => {
    const at = WAL_HEADER_BYTES + index * frameBytes;
    if (at + frameBytes > fileBytes || readSync(fd, salt, 0, 8, at + 8) < 8) return false;
    return salt.readUInt32BE(0) === salt1 && salt.readUInt32BE(4) === salt2;
  };
  // The frames with the header's salts are a prefix: the first one without them, by bisection.
  let low = 0; // frames [0, low) are current
  let high = Math.floor((fileBytes - WAL_HEADER_BYTES) / frameBytes); // frames [high, …) are not
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (current(middle)) low = middle + 1;
    else high = middle;
  }
  return { fileBytes, pageBytes, salts, frames: low };
}

/**
 * Frames written to the WAL between two readings: the growth of the current log, or, if it started
 * over in between (new salts), the whole of the new one.
 */
export function framesWritten(before: WalLog, after: WalLog): number {
  if (after.salts !== before.salts) return after.frames;
  return Math.max(0, after.frames - before.frames);
}
