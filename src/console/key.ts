/**
 * The API key: asked for when a request answers 401, kept in this tab's sessionStorage (gone when
 * the tab closes), and handed to the client, which sends it as a header (REST) or as the
 * `agentkit.key.<key>` WebSocket subprotocol — never in a URL.
 */
import { byId, setText } from "./dom.ts";

const STORAGE_KEY = "agentkit.apiKey";
/** What the server accepts as a key (RFC 3986 unreserved characters); also what a subprotocol may hold. */
const KEY_PATTERN = /^[A-Za-z0-9._~-]{8,512}$/;

export function storedKey(): string | undefined {
  try {
    return sessionStorage.getItem(STORAGE_KEY) ?? undefined;
  } catch {
    return undefined; // storage disabled: ask each time
  }
}

export function forgetKey(): void {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // nothing stored
  }
}

function storeKey(key: string): void {
  try {
    sessionStorage.setItem(STORAGE_KEY, key);
  } catch {
    // storage disabled: the key lives in memory only (the client holds it)
  }
}

let asking: Promise<string | undefined> | undefined;

/**
 * Shows the key dialog (once, however many requests need it) and resolves with the key entered.
 * `needed`: a request answered 401 without a key; `refused`: with one; `change`: the person asked
 * to change it (then the dialog can be dismissed, which resolves undefined).
 */
export function askForKey(reason: "needed" | "refused" | "change"): Promise<string | undefined> {
  asking ??= new Promise<string | undefined>((resolve) => {
    const dialog = byId<HTMLDialogElement>("key-dialog");
    const form = byId<HTMLFormElement>("key-form");
    const input = byId<HTMLInputElement>("key-input");
    const error = byId("key-error");
    const dismiss = byId<HTMLButtonElement>("key-dismiss");
    const messages = {
      needed: "This server needs an API key.",
      refused: "The server refused that key. Enter another one.",
      change: "Enter the API key to use in this tab.",
    };
    setText(byId("key-message"), messages[reason]);
    setText(error, "");
    input.value = "";
    dismiss.hidden = reason !== "change";
    const finish = (key: string | undefined) => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("cancel", onCancel);
      dismiss.removeEventListener("click", onDismiss);
      if (dialog.open) dialog.close();
      asking = undefined;
      resolve(key);
    };
    // Without a key nothing works: the dialog stays until one is entered (unless it was asked for).
    const onCancel = (event: Event) => {
      event.preventDefault();
      if (reason === "change") finish(undefined);
    };
    const onDismiss = () => finish(undefined);
    const onSubmit = (event: SubmitEvent) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!KEY_PATTERN.test(key)) {
        setText(error, "A key is 8 to 512 characters: letters, digits, '-', '.', '_' or '~'.");
        input.focus();
        return;
      }
      storeKey(key);
      finish(key);
    };
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("cancel", onCancel);
    dismiss.addEventListener("click", onDismiss);
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
  return asking;
}
