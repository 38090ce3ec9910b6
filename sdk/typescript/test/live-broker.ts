/** A real broker process for the end-to-end tests: the Python package from this repository
 * (BROKER_PYTHON, default .venv/bin/python), on the embedded SQLite store, with a fresh
 * keyring, admin token and connectors folder in a temporary directory. */

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(fileURLToPath(new URL("../../../..", import.meta.url)));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  const port = (server.address() as { port: number }).port;
  await new Promise((done) => server.close(done));
  return port;
}

export class LiveBroker {
  readonly adminToken = `admin-${randomBytes(16).toString("hex")}`;
  output = "";
  url = "";
  private readonly dir = mkdtempSync(join(tmpdir(), "broker-ts-e2e-"));
  private process: ChildProcess | null = null;
  private readonly python = resolve(ROOT, process.env["BROKER_PYTHON"] ?? ".venv/bin/python");

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, PYTHONPATH: ROOT };
  }

  async start(manifests: Record<string, unknown>[]): Promise<void> {
    for (const manifest of manifests) {
      const folder = join(this.dir, "connectors", String(manifest["key"]));
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, "manifest.json"), JSON.stringify(manifest));
    }
    const keyring = join(this.dir, "keyring.json");
    const made = spawnSync(this.python, ["-m", "broker.cli", "keys", "generate", "--out", keyring], {
      cwd: ROOT,
      env: this.env(),
      encoding: "utf8",
    });
    if (made.status !== 0) throw new Error(`broker keys generate failed: ${made.stderr}${made.error ?? ""}`);
    const port = await freePort();
    this.url = `http://127.0.0.1:${port}`;
    this.process = spawn(this.python, ["-m", "broker.cli", "serve"], {
      cwd: ROOT,
      env: {
        ...this.env(),
        BROKER_HOST: "127.0.0.1",
        BROKER_PORT: String(port),
        BROKER_STORE: `sqlite:///${join(this.dir, "broker.db")}`,
        BROKER_KEYRING_FILE: keyring,
        BROKER_ADMIN_TOKEN: this.adminToken,
        BROKER_CONNECTORS_DIRS: join(this.dir, "connectors"),
        BROKER_REFRESHER: "false",
        BROKER_EVENTS_WORKER: "false",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const child = this.process;
    process.once("exit", () => child.exitCode === null && child.kill("SIGKILL")); // never outlive the tests
    this.process.stdout!.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    this.process.stderr!.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (this.process.exitCode !== null) throw new Error(`the broker exited: ${this.output}`);
      try {
        if ((await fetch(`${this.url}/readyz`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((again) => setTimeout(again, 100));
    }
    throw new Error(`the broker did not become ready: ${this.output}`);
  }

  async admin(method: string, path: string, body: unknown): Promise<Record<string, unknown>> {
    const resp = await fetch(this.url + path, {
      method,
      headers: { authorization: `Bearer ${this.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = (await resp.json()) as Record<string, unknown>;
    if (!resp.ok) throw new Error(`${method} ${path} -> ${resp.status} ${JSON.stringify(answer)}`);
    return answer;
  }

  /** A connection of `connector` with `settings`, and a runtime token minted for it. */
  async runtimeToken(connector: string, settings: Record<string, unknown>): Promise<string> {
    const connection = await this.admin("POST", "/v1/connections", { tenant_id: "tenant-ts", connector, settings });
    const minted = await this.admin("POST", "/v1/runtime-tokens", { connection_id: connection["id"] });
    return String(minted["token"]);
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (child && child.exitCode === null) {
      const exited = new Promise((done) => child.once("exit", done));
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
