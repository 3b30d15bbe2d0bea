/** The version, from package.json (embedded by `bun build --compile`). */
import packageJson from "../package.json" with { type: "json" };

export const VERSION: string = packageJson.version;
