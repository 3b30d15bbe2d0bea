/**
 * Which URLs a task's own webhook (`webhook_url` in `POST /tasks`) may go to: http(s) URLs whose
 * host matches the operator's allowlist (`AGENTKIT_WEBHOOK_ALLOW_HOSTS`, or `webhooks.allowHosts`
 * in the config file), with the same host patterns as `http_fetch`'s `allowHosts`. No allowlist:
 * no per-task webhooks (a client could otherwise make the server POST anywhere it can reach).
 * An agent's webhook (`webhook.url` in its definition) is the operator's own, and is not checked.
 */
import { AgentkitError } from "../errors.ts";
import { matchesHostRules, parseHostPattern, type HostRule } from "../tools/http-fetch.ts";

export interface WebhookAllowlist {
  /** The URL, normalised, if a task may send its webhook there; else throws a 400 saying why. */
  check(url: string): string;
}

export function createWebhookAllowlist(patterns: readonly string[]): WebhookAllowlist {
  const rules: HostRule[] = [];
  for (const pattern of patterns) {
    const rule = parseHostPattern(pattern.trim());
    if (!rule) throw new Error(`invalid webhook host pattern '${pattern}'`);
    rules.push(rule);
  }
  const refuse = (message: string) =>
    new AgentkitError("validation_failed", message, { details: [{ path: "webhook_url", message }] });
  return {
    check(text) {
      if (rules.length === 0) {
        throw refuse("Per-task webhooks are off on this server: the operator allows none (AGENTKIT_WEBHOOK_ALLOW_HOSTS)");
      }
      let url: URL;
      try {
        url = new URL(text);
      } catch {
        throw refuse("webhook_url must be an absolute http:// or https:// URL");
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") throw refuse(`webhook_url must be http or https, not ${url.protocol}`);
      if (url.username || url.password) throw refuse("webhook_url must not hold credentials");
      if (!matchesHostRules(rules, url)) throw refuse(`webhook_url: host '${url.host}' is not on this server's webhook allowlist (allowed: ${patterns.join(", ")})`);
      return url.href;
    },
  };
}
