/** Collects unhandled rejections and uncaught exceptions while a test file runs. */

export function watchProcessErrors(): { errors: unknown[]; stop(): void } {
  const errors: unknown[] = [];
  const record = (error: unknown) => void errors.push(error);
  process.on("unhandledRejection", record);
  process.on("uncaughtException", record);
  return {
    errors,
    stop() {
      process.off("unhandledRejection", record);
      process.off("uncaughtException", record);
    },
  };
}
