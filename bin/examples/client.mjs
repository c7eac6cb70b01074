#!/usr/bin/env node
// A tiny ispyb-falcon client with Node 18+ built-in fetch only.
//
//   bin/ispyb-falcon demo                   # in another terminal
//   node bin/examples/client.mjs [BASE_URL]  # default http://127.0.0.1:8080/ispyb/api/v1
//
// Login and password come from ISPYB_LOGIN / ISPYB_PASSWORD (default pi_anna / demo;
// the demo accepts any password). Steps: log in, whoami, list the i03/i04 sessions
// of mx1001, create a sample in mx1001, read it back, export the data collections
// of mx1001-1 as CSV. An HTTP error prints its status and the JSON error and exits 1.

import { pathToFileURL } from "node:url";

const DEFAULT_BASE = "http://127.0.0.1:8080/ispyb/api/v1";

export class ApiError extends Error {
  constructor(method, url, status, statusText, text) {
    let error;
    try {
      error = JSON.parse(text);
    } catch {
      error = null;
    }
    if (!error || typeof error !== "object" || Array.isArray(error)) {
      // not JSON (e.g. from a proxy): keep its text, on one line
      error = { description: text.split(/\s+/).join(" ").trim().slice(0, 300) };
    }
    const title = error.title || `${status} ${statusText}`;
    const details = (error.errors || []).map((e) => `${e.path}: ${e.message}`).join("; ");
    let message = `${method} ${url} -> HTTP ${title}`;
    if (error.description) message += `: ${error.description}`;
    if (details) message += ` [${details}]`;
    super(message);
    this.status = status;
    this.title = title;
    this.description = error.description || "";
    this.errors = error.errors || [];
  }
}

export class IspybClient {
  constructor(base = DEFAULT_BASE) {
    this.base = base.replace(/\/+$/, "");
    this.token = null;
  }

  url(path, params = {}) {
    const query = new URLSearchParams(params).toString().replaceAll("%2C", ",");
    return this.base + "/" + path.replace(/^\/+/, "") + (query ? "?" + query : "");
  }

  async request(method, path, { params = {}, body, accept = "application/json", headers = {} } = {}) {
    const url = this.url(path, params);
    const head = { Accept: accept, ...headers };
    if (this.token && !head.Authorization) head.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) head["Content-Type"] = "application/json";
    const resp = await fetch(url, {
      method,
      headers: head,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    if (!resp.ok) throw new ApiError(method, url, resp.status, resp.statusText, text);
    return text;
  }

  // HTTP Basic on GET /auth/login; keeps the token for the next requests.
  async login(login, password) {
    const basic = Buffer.from(`${login}:${password}`, "utf-8").toString("base64");
    const answer = JSON.parse(
      await this.request("GET", "/auth/login", { headers: { Authorization: `Basic ${basic}` } }),
    );
    this.token = answer.token;
    return answer;
  }

  async get(path, params = {}) {
    return JSON.parse(await this.request("GET", path, { params }));
  }

  async post(path, body) {
    return JSON.parse(await this.request("POST", path, { body }));
  }

  // Every matching row (no paging) as CSV records; the first one is the header.
  async exportCsv(path, params = {}) {
    return parseCsv(await this.request("GET", path, { params, accept: "text/csv" }));
  }
}

// RFC 4180 records: quoted fields may hold commas, doubled quotes and line breaks.
export function parseCsv(text) {
  const records = [];
  let record = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === ",") {
      record.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      record.push(field);
      records.push(record);
      record = [];
      field = "";
    } else {
      field += c;
    }
  }
  if (field !== "" || record.length) {
    record.push(field);
    records.push(record);
  }
  return records;
}

class Abort extends Error {}

async function run(base, login, password) {
  const client = new IspybClient(base);

  const me = await client.login(login, password);
  console.log(`logged in as ${me.login} (personId ${me.personId}, roles ${me.roles.join(",")})`);

  const who = await client.get("/auth/whoami");
  console.log(`whoami: ${who.login} roles=${who.roles.join(",")} expires ${who.expiresAt}`);

  const sessions = await client.get("/sessions", {
    proposal: "mx1001",
    beamLineName: "i03,i04",
    order_by: "startDate",
  });
  const visits = sessions.results
    .map((s) => `mx1001-${s.visit_number} ${s.beamLineName} ${s.startDate}`)
    .join(", ");
  console.log(`sessions (${sessions.total}): ${visits || "(none)"}`);

  const crystals = (await client.get("/crystals", { proposal: "mx1001", limit: 1 })).results;
  const containers = (await client.get("/containers", { proposal: "mx1001", limit: 1 })).results;
  if (!crystals.length || !containers.length) {
    throw new Abort(`${login} sees no crystal and container in mx1001 to put a sample in`);
  }
  const epoch = Math.floor(Date.now() / 1000);
  const sample = await client.post("/samples", {
    crystalId: crystals[0].crystalId,
    containerId: containers[0].containerId,
    name: `example-${epoch}`,
    location: String(epoch % 1000),
  });
  console.log(
    `created sample ${sample.blSampleId} name=${sample.name}` +
      ` crystalId=${sample.crystalId} containerId=${sample.containerId} location=${sample.location}`,
  );

  const again = await client.get(`/samples/${sample.blSampleId}`);
  console.log(
    `read back sample ${again.blSampleId} name=${again.name} recordTimeStamp=${again.recordTimeStamp}`,
  );

  const records = await client.exportCsv("/datacollections", { session: "mx1001-1" });
  console.log(
    `csv rows: ${records.length} (header + ${records.length - 1} data collections of mx1001-1)`,
  );
}

export async function main(argv = process.argv.slice(2)) {
  const base = argv[0] || DEFAULT_BASE;
  const login = process.env.ISPYB_LOGIN || "pi_anna";
  const password = process.env.ISPYB_PASSWORD || "demo";
  try {
    await run(base, login, password);
    return 0;
  } catch (exc) {
    if (exc instanceof ApiError || exc instanceof Abort) {
      console.error(`error: ${exc.message}`);
    } else if (exc instanceof TypeError && exc.cause) {
      // fetch failed: connection refused, unknown host, ...
      console.error(`error: cannot reach ${base}: ${exc.cause.code || exc.cause.message}`);
    } else {
      throw exc;
    }
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main();
}
