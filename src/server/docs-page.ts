/**
 * `GET /docs`: the interactive API docs, one self-contained page (inline CSS and JS, no CDN, no
 * npm UI library). It fetches `/openapi.json` and `/asyncapi.json` from the same server and shows
 * every route (parameters, body, responses and their schemas) with a "try it" form, and the
 * WebSocket protocol (frames both ways, close codes) with a live socket to try it.
 *
 * The API key is asked for once, kept in the tab's sessionStorage, and sent only as
 * `Authorization: Bearer` (REST) or the `agentkit.key.<key>` subprotocol (WebSocket): never in a
 * URL. Everything shown is set as text (no innerHTML of anything fetched). The Content-Security-
 * Policy allows exactly this page's script and style (by hash) and connections to this origin.
 */
import { createHash } from "node:crypto";

const STYLE = String.raw`
:root { color-scheme: light dark; --bg: #fff; --fg: #1d1f23; --muted: #667; --line: #dde1e6; --card: #f7f8fa; --code: #eef0f3; --accent: #2456d6;
  --get: #1a7f4b; --post: #2456d6; --ws: #8a3fd1; --err: #b42318; }
@media (prefers-color-scheme: dark) { :root { --bg: #15171b; --fg: #e6e8eb; --muted: #9aa3ad; --line: #2c3038; --card: #1c1f25; --code: #262a31; --accent: #7aa2ff;
  --get: #4cc38a; --post: #7aa2ff; --ws: #c49bff; --err: #ff8a80; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg); }
header { position: sticky; top: 0; z-index: 2; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; padding: 10px 20px; background: var(--card); border-bottom: 1px solid var(--line); }
header h1 { font-size: 17px; margin: 0 12px 0 0; }
header .links a { margin-right: 10px; }
header label { display: flex; gap: 6px; align-items: center; margin-left: auto; }
.layout { display: grid; grid-template-columns: 260px 1fr; }
nav { position: sticky; top: 52px; align-self: start; max-height: calc(100vh - 52px); overflow: auto; padding: 12px; border-right: 1px solid var(--line); }
nav h3 { font-size: 12px; text-transform: uppercase; color: var(--muted); margin: 14px 0 4px; }
nav a { display: block; padding: 2px 4px; color: var(--fg); text-decoration: none; border-radius: 4px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
nav a:hover { background: var(--code); }
main { padding: 16px 24px 80px; min-width: 0; }
a { color: var(--accent); }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
code { background: var(--code); padding: 0 4px; border-radius: 4px; }
pre { background: var(--code); padding: 10px; border-radius: 6px; overflow: auto; max-height: 420px; white-space: pre-wrap; word-break: break-word; }
.op { border: 1px solid var(--line); border-radius: 8px; margin: 14px 0; background: var(--card); }
.op > summary { cursor: pointer; padding: 10px 14px; display: flex; gap: 10px; align-items: baseline; list-style: none; }
.op > summary::-webkit-details-marker { display: none; }
.op .body { padding: 0 16px 14px; }
.method { display: inline-block; min-width: 52px; text-align: center; font-weight: 700; font-size: 12px; color: #fff; border-radius: 4px; padding: 1px 6px; }
.method.get { background: var(--get); } .method.post { background: var(--post); } .method.ws { background: var(--ws); }
.path { font-weight: 600; }
.summary { color: var(--muted); }
.tag-title { margin-top: 28px; text-transform: capitalize; }
.desc { white-space: pre-line; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { text-align: left; vertical-align: top; border-bottom: 1px solid var(--line); padding: 4px 8px; }
th { font-size: 12px; color: var(--muted); font-weight: 600; }
.schema { margin: 4px 0 4px 2px; }
.schema ul { list-style: none; margin: 2px 0; padding-left: 16px; border-left: 1px dashed var(--line); }
.prop-name { font-weight: 600; }
.req { color: var(--err); margin-left: 2px; }
.type { color: var(--accent); }
.muted { color: var(--muted); }
details.ref > summary { cursor: pointer; color: var(--accent); }
.status { font-weight: 700; }
.status.ok { color: var(--get); } .status.bad { color: var(--err); }
.try { margin-top: 10px; padding: 10px; border: 1px dashed var(--line); border-radius: 6px; }
.try .row { display: grid; grid-template-columns: 160px 1fr; gap: 8px; align-items: center; margin: 4px 0; }
input, textarea, select, button { font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line); border-radius: 5px; padding: 4px 8px; }
textarea { width: 100%; min-height: 90px; font-family: ui-monospace, monospace; font-size: 12.5px; }
button { cursor: pointer; background: var(--accent); color: #fff; border-color: var(--accent); }
button.secondary { background: transparent; color: var(--fg); border-color: var(--line); }
.out-meta { margin: 8px 0 4px; }
#error { color: var(--err); }
@media (max-width: 800px) { .layout { grid-template-columns: 1fr; } nav { position: static; max-height: none; border-right: 0; } }
`;

// Plain JS (no template literals: this file is one). Runs in any current browser.
const SCRIPT = String.raw`
(function () {
  "use strict";
  var KEY_STORE = "agentkit.apiKey";
  var main = document.getElementById("main");
  var nav = document.getElementById("nav");
  var keyInput = document.getElementById("api-key");

  function el(tag, props, children) {
    var node = document.createElement(tag);
    if (props) for (var name in props) {
      var value = props[name];
      if (value === undefined || value === null) continue;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else if (name.slice(0, 2) === "on") node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value);
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  /** Text with backtick spans as code. */
  function rich(text, tag) {
    var node = el(tag || "span", { class: "desc" });
    String(text || "").split("\u0060").forEach(function (part, index) {
      node.appendChild(index % 2 ? el("code", { text: part }) : document.createTextNode(part));
    });
    return node;
  }

  function resolve(doc, ref) {
    if (ref.charAt(0) !== "#") return undefined;
    return ref.slice(2).split("/").reduce(function (node, key) {
      return node === undefined ? undefined : node[key.replace(/~1/g, "/").replace(/~0/g, "~")];
    }, doc);
  }
  function refName(ref) { return ref.split("/").pop(); }

  function typeLabel(schema) {
    var parts = [];
    if (schema.$ref) return refName(schema.$ref);
    if (schema.const !== undefined) return JSON.stringify(schema.const);
    if (schema.enum) return schema.enum.map(function (value) { return JSON.stringify(value); }).join(" | ");
    var type = schema.type;
    if (Array.isArray(type)) parts.push(type.join(" | ")); else if (type) parts.push(type);
    if (type === "array" && schema.items) parts[0] = "array of " + (schema.items.$ref ? refName(schema.items.$ref) : (schema.items.type || "any"));
    if (!type && !schema.anyOf && !schema.oneOf && !schema.allOf) parts.push("any");
    return parts.join(" ");
  }
  function constraints(schema) {
    var out = [];
    var SAFE = 9007199254740991;
    if (schema.minLength !== undefined) out.push("min length " + schema.minLength);
    if (schema.maxLength !== undefined) out.push("max length " + schema.maxLength);
    if (schema.minimum !== undefined && schema.minimum > -SAFE) out.push("≥ " + schema.minimum);
    if (schema.exclusiveMinimum !== undefined) out.push("> " + schema.exclusiveMinimum);
    if (schema.maximum !== undefined && schema.maximum < SAFE) out.push("≤ " + schema.maximum);
    if (schema.pattern) out.push("pattern " + schema.pattern);
    if (schema.default !== undefined) out.push("default " + JSON.stringify(schema.default));
    return out.join(", ");
  }

  /** A schema as a tree; $refs open lazily (cycles and big documents stay cheap). */
  function schemaView(doc, schema, open) {
    var box = el("div", { class: "schema" });
    if (!schema || typeof schema !== "object") { box.appendChild(el("span", { class: "muted", text: "any" })); return box; }
    if (schema.$ref) {
      var target = resolve(doc, schema.$ref);
      var details = el("details", { class: "ref" }, [el("summary", { text: refName(schema.$ref) })]);
      var filled = false;
      var fill = function () { if (!filled && details.open) { filled = true; details.appendChild(schemaView(doc, target, false)); } };
      details.addEventListener("toggle", fill);
      if (open) { details.open = true; fill(); }
      box.appendChild(details);
      return box;
    }
    var head = el("div", null, [el("span", { class: "type", text: typeLabel(schema) })]);
    var limits = constraints(schema);
    if (limits) head.appendChild(el("span", { class: "muted", text: " · " + limits }));
    if (schema.description) head.appendChild(el("div", null, [rich(schema.description)]));
    box.appendChild(head);
    var variants = schema.oneOf || schema.anyOf;
    if (variants) {
      var list = el("ul");
      variants.forEach(function (variant) { list.appendChild(el("li", null, [el("span", { class: "muted", text: "one of: " }), schemaView(doc, variant, false)])); });
      box.appendChild(list);
    }
    if (schema.properties) {
      var props = el("ul");
      var required = schema.required || [];
      Object.keys(schema.properties).forEach(function (name) {
        var child = schema.properties[name];
        var simple = !child.$ref && !child.properties && !child.oneOf && !child.anyOf && !(child.items && (child.items.$ref || child.items.properties));
        var item = el("li", { class: "prop" }, [el("span", { class: "prop-name mono", text: name }), required.indexOf(name) >= 0 ? el("span", { class: "req", title: "required", text: "*" }) : null, " "]);
        if (simple) {
          item.appendChild(el("span", { class: "type", text: typeLabel(child) }));
          var childLimits = constraints(child);
          if (childLimits) item.appendChild(el("span", { class: "muted", text: " · " + childLimits }));
          if (child.description) item.appendChild(el("div", null, [rich(child.description)]));
        } else item.appendChild(schemaView(doc, child, false));
        props.appendChild(item);
      });
      box.appendChild(props);
      if (schema.additionalProperties === false) box.appendChild(el("div", { class: "muted", text: "no other properties" }));
    } else if (schema.additionalProperties && typeof schema.additionalProperties === "object" && Object.keys(schema.additionalProperties).length > 0) {
      box.appendChild(el("div", null, [el("span", { class: "muted", text: "values: " }), schemaView(doc, schema.additionalProperties, false)]));
    }
    if (schema.items && (schema.items.$ref || schema.items.properties || schema.items.oneOf)) box.appendChild(schemaView(doc, schema.items, false));
    return box;
  }

  function apiKey() { return sessionStorage.getItem(KEY_STORE) || ""; }

  function statusClass(status) { return status >= 200 && status < 400 ? "status ok" : "status bad"; }

  /** The "try it" form of a REST operation. */
  function tryForm(doc, path, method, op) {
    var form = el("form", { class: "try" });
    var inputs = [];
    (op.parameters || []).forEach(function (param) {
      var schema = param.schema || {};
      var input;
      if (schema.enum) {
        input = el("select", { name: param.name }, [el("option", { value: "", text: "" })].concat(schema.enum.map(function (value) { return el("option", { value: String(value), text: String(value) }); })));
      } else if (param.in === "header" && param.name === "Accept" && op.responses["200"] && op.responses["200"].content && op.responses["200"].content["text/event-stream"]) {
        input = el("select", { name: param.name }, ["application/json", "text/event-stream"].map(function (value) { return el("option", { value: value, text: value }); }));
      } else {
        input = el("input", { name: param.name, placeholder: schema.default !== undefined ? String(schema.default) : (param.required ? "required" : "") });
      }
      inputs.push({ param: param, input: input });
      form.appendChild(el("div", { class: "row" }, [el("label", { class: "mono", text: param.name + (param.required ? " *" : "") + " (" + param.in + ")" }), input]));
    });
    var body = null;
    var media = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
    if (media) {
      body = el("textarea", { name: "body", spellcheck: "false" });
      body.value = media.example !== undefined ? JSON.stringify(media.example, null, 2) : "{}";
      form.appendChild(el("div", null, [el("div", { class: "muted", text: "JSON body" + (op.requestBody.required ? "" : " (optional)") }), body]));
    }
    var meta = el("div", { class: "out-meta" });
    var out = el("pre", { class: "out", hidden: "" });
    var controller = null;
    var stop = el("button", { type: "button", class: "secondary", hidden: "", text: "Stop", onclick: function () { if (controller) controller.abort(); } });
    form.appendChild(el("div", null, [el("button", { type: "submit", text: "Send" }), " ", stop]));
    form.appendChild(meta);
    form.appendChild(out);
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      var url = path;
      var query = new URLSearchParams();
      var headers = {};
      var missing = [];
      inputs.forEach(function (entry) {
        var value = entry.input.value.trim();
        if (!value) { if (entry.param.required) missing.push(entry.param.name); return; }
        if (entry.param.in === "path") url = url.replace("{" + entry.param.name + "}", encodeURIComponent(value));
        else if (entry.param.in === "query") query.set(entry.param.name, value);
        else if (entry.param.in === "header") headers[entry.param.name] = value;
      });
      if (missing.length) { meta.textContent = "Missing: " + missing.join(", "); return; }
      if (query.toString()) url += "?" + query.toString();
      var key = apiKey();
      if (key) headers.Authorization = "Bearer " + key;
      var init = { method: method.toUpperCase(), headers: headers };
      if (body && body.value.trim()) { headers["Content-Type"] = "application/json"; init.body = body.value; }
      controller = new AbortController();
      init.signal = controller.signal;
      meta.textContent = method.toUpperCase() + " " + url + " …";
      out.hidden = false;
      out.textContent = "";
      var started = performance.now();
      try {
        var response = await fetch(url, init);
        var type = response.headers.get("content-type") || "";
        meta.textContent = "";
        meta.appendChild(el("span", { class: statusClass(response.status), text: response.status + " " + response.statusText }));
        meta.appendChild(el("span", { class: "muted", text: " · " + Math.round(performance.now() - started) + " ms · " + (type || "no body") }));
        ["location", "retry-after", "allow"].forEach(function (name) {
          var value = response.headers.get(name);
          if (value) meta.appendChild(el("span", { class: "muted", text: " · " + name + ": " + value }));
        });
        if (type.indexOf("text/event-stream") === 0 && response.body) {
          stop.hidden = false;
          var reader = response.body.getReader();
          var decoder = new TextDecoder();
          for (;;) {
            var chunk = await reader.read();
            if (chunk.done) break;
            out.textContent += decoder.decode(chunk.value, { stream: true });
            out.scrollTop = out.scrollHeight;
          }
        } else {
          var text = await response.text();
          try { out.textContent = JSON.stringify(JSON.parse(text), null, 2); } catch (error) { out.textContent = text; }
          if (!text) out.textContent = "(empty body)";
        }
      } catch (error) {
        if (error && error.name === "AbortError") meta.appendChild(el("span", { class: "muted", text: " · stopped" }));
        else meta.textContent = "Request failed: " + error;
      } finally {
        stop.hidden = true;
        controller = null;
      }
    });
    return form;
  }

  /** The WebSocket try-it: opens a socket (key as subprotocol) and shows every frame. */
  function socketForm(op, path) {
    var form = el("form", { class: "try" });
    var id = el("input", { name: "id", placeholder: "task id" });
    var after = el("input", { name: "after", placeholder: "0" });
    var deltas = el("select", { name: "deltas" }, ["1", "0"].map(function (value) { return el("option", { value: value, text: value }); }));
    form.appendChild(el("div", { class: "row" }, [el("label", { class: "mono", text: "id * (path)" }), id]));
    form.appendChild(el("div", { class: "row" }, [el("label", { class: "mono", text: "after (query)" }), after]));
    form.appendChild(el("div", { class: "row" }, [el("label", { class: "mono", text: "deltas (query)" }), deltas]));
    var frame = el("textarea", { name: "frame", spellcheck: "false" });
    frame.value = '{"type":"ping"}';
    var meta = el("div", { class: "out-meta" });
    var out = el("pre", { class: "out", hidden: "" });
    var socket = null;
    var send = el("button", { type: "button", class: "secondary", text: "Send frame", disabled: "", onclick: function () { if (socket) { socket.send(frame.value); out.textContent += "→ " + frame.value + "\n"; } } });
    var close = el("button", { type: "button", class: "secondary", text: "Close", disabled: "", onclick: function () { if (socket) socket.close(1000); } });
    form.appendChild(el("div", null, [el("button", { type: "submit", text: "Connect" }), " ", send, " ", close]));
    form.appendChild(el("div", { class: "muted", text: "Client frame (JSON):" }));
    form.appendChild(frame);
    form.appendChild(meta);
    form.appendChild(out);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!id.value.trim()) { meta.textContent = "Missing: id"; return; }
      if (socket) socket.close(1000);
      var query = new URLSearchParams();
      if (after.value.trim()) query.set("after", after.value.trim());
      query.set("deltas", deltas.value);
      var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path.replace("{id}", encodeURIComponent(id.value.trim())) + "?" + query;
      var key = apiKey();
      var protocols = key ? ["agentkit", "agentkit.key." + key] : ["agentkit"];
      out.hidden = false;
      out.textContent = "";
      meta.textContent = "connecting…";
      try { socket = new WebSocket(url, protocols); } catch (error) { meta.textContent = "Cannot open: " + error; return; }
      var current = socket;
      current.onopen = function () { meta.textContent = "open (protocol " + (current.protocol || "none") + ")"; send.disabled = false; close.disabled = false; };
      current.onmessage = function (message) { out.textContent += "← " + message.data + "\n"; out.scrollTop = out.scrollHeight; };
      current.onclose = function (closed) {
        meta.textContent = "closed " + closed.code + (closed.reason ? " (" + closed.reason + ")" : "");
        if (socket === current) { socket = null; send.disabled = true; close.disabled = true; }
      };
    });
    return form;
  }

  function paramsTable(op) {
    if (!op.parameters || !op.parameters.length) return null;
    var table = el("table", null, [el("tr", null, ["name", "in", "schema", "description"].map(function (title) { return el("th", { text: title }); }))]);
    op.parameters.forEach(function (param) {
      var schema = param.schema || {};
      var limits = constraints(schema);
      table.appendChild(el("tr", { class: "param" }, [
        el("td", null, [el("span", { class: "mono prop-name", text: param.name }), param.required ? el("span", { class: "req", text: "*" }) : null]),
        el("td", { class: "muted", text: param.in }),
        el("td", null, [el("span", { class: "type", text: typeLabel(schema) }), limits ? el("div", { class: "muted", text: limits }) : null]),
        el("td", null, [rich(param.description || "")]),
      ]));
    });
    return table;
  }

  function securityNote(doc, op) {
    var security = op.security !== undefined ? op.security : doc.security;
    if (!security || security.length === 0) return el("div", { class: "muted", text: "Open: no key needed." });
    var names = security.map(function (entry) { return Object.keys(entry)[0]; });
    var schemes = doc.components.securitySchemes;
    return el("div", { class: "muted", text: "Key (when keys are configured): " + names.map(function (name) {
      var scheme = schemes[name];
      return scheme.type === "http" ? "Authorization: Bearer" : scheme.in === "query" ? "?" + scheme.name + "=" : scheme.name + " header";
    }).join(", or ") + "." });
  }

  function operationView(doc, path, method, op) {
    var isSocket = op.operationId === "watchTask";
    var card = el("details", { class: "op", id: "op-" + op.operationId, "data-method": method, "data-path": path }, [
      el("summary", null, [
        el("span", { class: "method " + (isSocket ? "ws" : method), text: isSocket ? "WS" : method.toUpperCase() }),
        el("span", { class: "path mono", text: path }),
        el("span", { class: "summary", text: op.summary || "" }),
      ]),
    ]);
    var body = el("div", { class: "body" });
    body.appendChild(el("p", null, [rich(op.description)]));
    body.appendChild(securityNote(doc, op));
    if (op.externalDocs) body.appendChild(el("p", null, [el("a", { href: "#websocket", text: op.externalDocs.description })]));
    var table = paramsTable(op);
    if (table) { body.appendChild(el("h4", { text: "Parameters" })); body.appendChild(table); }
    if (op.requestBody) {
      var media = op.requestBody.content["application/json"];
      body.appendChild(el("h4", { text: "Body" + (op.requestBody.required ? "" : " (optional)") + " · application/json" }));
      body.appendChild(schemaView(doc, media.schema, true));
    }
    body.appendChild(el("h4", { text: "Responses" }));
    Object.keys(op.responses).forEach(function (status) {
      var response = op.responses[status];
      var row = el("div", { class: "response", "data-status": status }, [
        el("span", { class: statusClass(status === "default" ? 500 : Number(status)), text: status }), " ", rich(response.description),
      ]);
      if (response.headers) row.appendChild(el("div", { class: "muted", text: "Headers: " + Object.keys(response.headers).join(", ") }));
      Object.keys(response.content || {}).forEach(function (type) {
        var media = response.content[type];
        row.appendChild(el("div", { class: "muted mono", text: type }));
        if (media["x-event-data"]) {
          row.appendChild(el("div", { class: "muted", text: "each data: line is" }));
          row.appendChild(schemaView(doc, media["x-event-data"], false));
        } else if (media.schema && (media.schema.$ref || media.schema.properties)) row.appendChild(schemaView(doc, media.schema, status.charAt(0) === "2"));
      });
      body.appendChild(row);
    });
    body.appendChild(el("h4", { text: "Try it" }));
    body.appendChild(isSocket ? socketForm(op, path) : tryForm(doc, path, method, op));
    card.appendChild(body);
    return card;
  }

  function renderRest(doc) {
    document.title = doc.info.title + " " + doc.info.version + " · API";
    document.getElementById("version").textContent = doc.info.version;
    main.appendChild(el("h2", { text: doc.info.title + " REST API" }));
    main.appendChild(el("p", null, [rich(doc.info.description)]));
    var byTag = {};
    var order = (doc.tags || []).map(function (tag) { return tag.name; });
    Object.keys(doc.paths).forEach(function (path) {
      Object.keys(doc.paths[path]).forEach(function (method) {
        var op = doc.paths[path][method];
        var tag = (op.tags && op.tags[0]) || "other";
        if (order.indexOf(tag) < 0) order.push(tag);
        (byTag[tag] = byTag[tag] || []).push({ path: path, method: method, op: op });
      });
    });
    order.forEach(function (tag) {
      if (!byTag[tag]) return;
      var about = (doc.tags || []).filter(function (entry) { return entry.name === tag; })[0];
      main.appendChild(el("h3", { class: "tag-title", id: "tag-" + tag.replace(/\W+/g, "-"), text: tag }));
      if (about && about.description) main.appendChild(el("p", { class: "muted", text: about.description }));
      nav.appendChild(el("h3", { text: tag }));
      byTag[tag].forEach(function (entry) {
        main.appendChild(operationView(doc, entry.path, entry.method, entry.op));
        nav.appendChild(el("a", { href: "#op-" + entry.op.operationId, class: "mono", title: entry.op.summary, text: entry.method.toUpperCase() + " " + entry.path,
          onclick: function () { var card = document.getElementById("op-" + entry.op.operationId); if (card) card.open = true; } }));
      });
    });
  }

  function renderSocket(doc) {
    var channelName = Object.keys(doc.channels)[0];
    var channel = doc.channels[channelName];
    var section = el("section", { id: "websocket" });
    section.appendChild(el("h2", { text: "WebSocket protocol · " + channel.address }));
    section.appendChild(el("p", null, [rich(doc.info.description)]));
    section.appendChild(el("p", null, [el("a", { href: "/asyncapi.json", text: "AsyncAPI " + doc.asyncapi + " document" })]));
    var security = doc.servers[Object.keys(doc.servers)[0]].security || [];
    section.appendChild(el("h4", { text: "The key" }));
    var keys = el("ul");
    security.forEach(function (ref) { var scheme = resolve(doc, ref.$ref); keys.appendChild(el("li", null, [rich(scheme.description)])); });
    section.appendChild(keys);
    var groups = { "server-to-client": [], "client-to-server": [] };
    Object.keys(channel.messages).forEach(function (name) {
      var message = resolve(doc, channel.messages[name].$ref);
      (groups[message["x-direction"]] || (groups[message["x-direction"]] = [])).push({ name: name, message: message });
    });
    [["server-to-client", "Server → client frames"], ["client-to-server", "Client → server frames"]].forEach(function (group) {
      section.appendChild(el("h3", { text: group[1] }));
      nav.appendChild(el("h3", { text: group[1] }));
      groups[group[0]].forEach(function (entry) {
        var anchor = "msg-" + entry.name.replace(/\W+/g, "-");
        var replies = [];
        var answered = "";
        Object.keys(doc.operations).forEach(function (opName) {
          var op = doc.operations[opName];
          if (op.reply && op.messages.some(function (ref) { return refName(ref.$ref) === entry.name; })) {
            replies = op.reply.messages.map(function (ref) { return refName(ref.$ref).split(".")[1]; });
            answered = op.description || "";
          }
        });
        var card = el("details", { class: "op frame", id: anchor, "data-frame": entry.name }, [
          el("summary", null, [el("span", { class: "method ws", text: entry.message.name }), el("span", { class: "summary", text: entry.message.summary })]),
        ]);
        var body = el("div", { class: "body" });
        if (replies.length) body.appendChild(el("div", { class: "muted", text: "Answered with: " + replies.join(" or ") }));
        if (answered) body.appendChild(el("p", { class: "answered" }, [rich(answered)]));
        body.appendChild(schemaView(doc, entry.message.payload, true));
        card.appendChild(body);
        section.appendChild(card);
        nav.appendChild(el("a", { href: "#" + anchor, class: "mono", text: entry.message.name }));
      });
    });
    var codes = channel["x-close-codes"] || [];
    section.appendChild(el("h3", { id: "close-codes", text: "Close codes" }));
    var table = el("table", null, [el("tr", null, ["code", "name", "meaning", "reconnect with after="].map(function (title) { return el("th", { text: title }); }))]);
    codes.forEach(function (close) {
      table.appendChild(el("tr", { class: "close-code" }, [el("td", { class: "mono", text: String(close.code) }), el("td", { class: "mono", text: close.name }), el("td", { text: close.meaning }), el("td", { text: close.reconnect ? "yes" : "no" })]));
    });
    section.appendChild(table);
    nav.appendChild(el("a", { href: "#close-codes", text: "Close codes" }));
    main.appendChild(section);
  }

  async function load() {
    keyInput.value = apiKey();
    keyInput.addEventListener("change", function () {
      if (keyInput.value) sessionStorage.setItem(KEY_STORE, keyInput.value); else sessionStorage.removeItem(KEY_STORE);
    });
    document.getElementById("forget").addEventListener("click", function () { sessionStorage.removeItem(KEY_STORE); keyInput.value = ""; });
    document.getElementById("filter").addEventListener("input", function (event) {
      var needle = event.target.value.toLowerCase();
      document.querySelectorAll(".op").forEach(function (card) { card.hidden = needle !== "" && card.textContent.toLowerCase().indexOf(needle) < 0; });
    });
    try {
      var answers = await Promise.all([fetch("/openapi.json"), fetch("/asyncapi.json")]);
      if (!answers[0].ok || !answers[1].ok) throw new Error("HTTP " + answers[0].status + " / " + answers[1].status);
      var docs = await Promise.all([answers[0].json(), answers[1].json()]);
      document.getElementById("loading").remove();
      renderRest(docs[0]);
      renderSocket(docs[1]);
      if (location.hash) { var target = document.getElementById(location.hash.slice(1)); if (target) { if (target.tagName === "DETAILS") target.open = true; target.scrollIntoView(); } }
      document.body.setAttribute("data-ready", "1");
    } catch (error) {
      document.getElementById("error").textContent = "Could not load the API documents: " + error;
      document.body.setAttribute("data-ready", "error");
    }
  }
  load();
})();
`;

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>agentkit API</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>agentkit API <small class="muted" id="version"></small></h1>
  <span class="links"><a href="/openapi.json">openapi.json</a><a href="/asyncapi.json">asyncapi.json</a><a href="#websocket">WebSocket</a></span>
  <input id="filter" type="search" placeholder="Filter routes and frames" aria-label="Filter">
  <label>API key <input id="api-key" type="password" autocomplete="off" placeholder="kept in this tab only"></label>
  <button id="forget" type="button" class="secondary">Forget</button>
</header>
<div class="layout">
  <nav id="nav" aria-label="Routes"></nav>
  <main id="main"><p id="loading">Loading the API documents…</p><p id="error"></p></main>
</div>
<script>${SCRIPT}</script>
</body>
</html>
`;

const sha256 = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;

/** The page and the headers to serve it with. */
export const DOCS_PAGE = {
  html: HTML,
  headers: {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": [
      "default-src 'none'",
      `script-src ${sha256(SCRIPT)}`,
      `style-src ${sha256(STYLE)}`,
      "connect-src 'self'",
      "img-src data:",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join("; "),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
  },
} as const;
