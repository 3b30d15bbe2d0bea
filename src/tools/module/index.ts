export { loadToolsModule, ToolsModuleError, type LoadToolsModuleOptions } from "./load-tools-module.ts";
