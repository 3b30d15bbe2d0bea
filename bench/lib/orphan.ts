/** Child processes of the bench exit on their own when the orchestrator dies (even by kill -9). */
export function exitWithParent(): void {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(3);
  }, 250).unref();
}
