/** Which store failures pass (src/errors.ts): a run they cut is taken up again; clients get 503 / 1001. */
import { expect, test } from "bun:test";
import { isDatabaseInterrupted, isTransientStoreFailure } from "../../src/errors.ts";

const postgres = (errno: string) => Object.assign(new Error(`PostgreSQL ${errno}`), { name: "PostgresError", errno });

test("PostgreSQL's passing SQLSTATEs count; a missing or duplicate file (58P01, 58P02) and other errors do not", () => {
  for (const errno of ["57014", "55P03", "40001", "40P01", "53000", "53100", "53200", "53300", "53400", "58000", "58030"]) {
    expect([errno, isDatabaseInterrupted(postgres(errno))]).toEqual([errno, true]);
    expect([errno, isTransientStoreFailure(postgres(errno))]).toEqual([errno, true]);
  }
  for (const errno of ["58P01", "58P02", "23505", "42P01", "22P02", "5301", "570140"]) {
    expect([errno, isDatabaseInterrupted(postgres(errno))]).toEqual([errno, false]);
  }
  expect(isDatabaseInterrupted("57014")).toBe(false);
});
