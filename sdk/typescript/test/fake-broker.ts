/** A scripted broker on a loopback socket: the answers given in order, each request seen. */

import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface ScriptedAnswer {
  status?: number;
  headers?: Record<string, string>;
  body?: unknown;
  text?: string;
  disconnect?: boolean;
}

export interface SeenRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: string;
}

/** `{"$in": seconds}` -> that many seconds from now (ISO 8601), anywhere in a body. */
export function resolveTimes(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(resolveTimes);
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 1 && entries[0]![0] === "$in") {
      return new Date(Date.now() + Number(entries[0]![1]) * 1000).toISOString();
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, resolveTimes(v)]));
  }
  return value;
}

async function read(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

export class ScriptedBroker {
  readonly seen: SeenRequest[] = [];
  private server: Server | null = null;

  constructor(readonly answers: ScriptedAnswer[]) {}

  async start(): Promise<string> {
    this.server = createServer(async (request, response) => {
      const url = new URL(request.url ?? "/", "http://broker");
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(request.headers)) headers[name] = String(value);
      this.seen.push({
        method: request.method ?? "",
        path: (request.url ?? "/").split("?")[0]!,
        query: Object.fromEntries(url.searchParams),
        headers,
        body: await read(request),
      });
      const answer = this.answers.shift();
      if (answer === undefined) {
        response.writeHead(599, { "content-type": "application/json" }).end('{"error":"unscripted"}');
      } else if (answer.disconnect) {
        request.socket.destroy();
      } else if (answer.text !== undefined) {
        response.writeHead(answer.status ?? 200, { "content-type": "text/plain", ...answer.headers }).end(answer.text);
      } else {
        const body = JSON.stringify(resolveTimes(answer.body));
        response.writeHead(answer.status ?? 200, { "content-type": "application/json", ...answer.headers }).end(body);
      }
    });
    await new Promise<void>((ready) => this.server!.listen(0, "127.0.0.1", ready));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((done) => this.server?.close(done));
  }
}
