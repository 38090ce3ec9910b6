/**
 * Whether a URL is inside a manifest's `permissions.http`, decided by the broker's rules
 * (broker/http_rules/permissions.py, which the Python SDK's test runtime calls itself),
 * so the test runtime refuses what the broker would refuse.
 *
 * A pattern is `scheme://host[:port]/path`, the path exact or ending in `/*` (a prefix), the
 * host exact or `*.` + a domain (one label stands for the `*`); a target is parsed strictly
 * (absolute http(s), no userinfo, no fragment, a canonical host) and its path normalized
 * (unreserved escapes decoded, dot segments resolved, `%2e` counted as a dot) before it is
 * matched. sdk/behaviour-cases.json ("http_permissions") holds both to the same cases.
 */

import { isIPv6 } from "node:net";
import { domainToASCII } from "node:url";

const DEFAULT_PORTS: Record<string, number> = { http: 80, https: 443 };
const ESCAPE = /%([0-9A-Fa-f]{2})/g;
const UNRESERVED = /^[A-Za-z0-9._~-]$/;
const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;
const NUMERIC = /^(0x[0-9a-f]*|[0-9]+)$/;
const IPV4 = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

interface Target {
  scheme: string;
  host: string;
  port: number;
  path: string;
}

const validEscapes = (text: string) => (text.match(/%/g) ?? []).length === (text.match(ESCAPE) ?? []).length;

function canonicalHost(raw: string): string | null {
  if (!raw || raw.includes("%")) return null;
  if (raw.includes(":")) {
    return isIPv6(raw) ? new URL(`http://[${raw}]/`).hostname.slice(1, -1) : null;
  }
  let name = raw.endsWith(".") ? raw.slice(0, -1) : raw;
  // eslint-disable-next-line no-control-regex
  if (!/^[\x00-\x7f]*$/.test(name)) name = domainToASCII(name);
  name = name.toLowerCase();
  if (!name) return null;
  const labels = name.split(".");
  if (NUMERIC.test(labels[labels.length - 1]!)) {
    const quad = IPV4.exec(name);
    return quad && quad.slice(1).every((n) => Number(n) <= 255) ? name : null;
  }
  return name.length <= 253 && labels.every((label) => LABEL.test(label)) ? name : null;
}

/** RFC 3986 6.2.2 and 5.2.4; null for malformed escapes or a dot segment behind an
 * encoded slash (some servers decode the slash). */
export function normalizedPath(raw: string): string | null {
  if (!raw.startsWith("/") || !validEscapes(raw)) return null;
  const decoded = raw.replace(ESCAPE, (escape, hex: string) => {
    const char = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
  });
  const quoted = decoded.replace(/[^A-Za-z0-9_.\-~/:@!$&'()*+,;=%]/gu, (c) => encodeURIComponent(c));
  const segments = quoted.split("/").slice(1);
  const out: string[] = [];
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === ".." || segment === ".") {
      if (segment === ".." && out.length) out.pop();
      if (last) out.push("");
      return;
    }
    const plain = segment.replace(ESCAPE, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    if (plain.split(/[/\\]/).some((part) => part === "." || part === "..")) out.push("\u0000");
    else out.push(segment);
  });
  return out.includes("\u0000") ? null : `/${out.join("/")}`;
}

/** The normalized target, or null where the broker refuses it. */
export function parseTarget(url: string): Target | null {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f#]/.test(url)) return null;
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?]*)([^?]*)(?:\?(.*))?$/.exec(url);
  if (!match) return null;
  const [, scheme, netloc = "", rawPath = "", query = ""] = match;
  if (scheme === undefined || !(scheme.toLowerCase() in DEFAULT_PORTS)) return null;
  if (netloc.includes("@") || netloc.includes("\\") || !validEscapes(query)) return null;
  const hostPort = /^(?:\[([^\]]*)\]|([^:]*))(?::(\d*))?$/.exec(netloc);
  if (!hostPort) return null;
  const [, v6, name, portText] = hostPort;
  const port = portText ? Number(portText) : DEFAULT_PORTS[scheme.toLowerCase()]!;
  if (port < 1 || port > 65535) return null;
  const host = canonicalHost(v6 ?? name ?? "");
  const path = normalizedPath(rawPath || "/");
  if (host === null || path === null) return null;
  return { scheme: scheme.toLowerCase(), host, port, path };
}

function matches(pattern: string, target: Target): boolean {
  const wildcard = pattern.includes("://*.");
  const prefix = pattern.endsWith("/*");
  const allowed = parseTarget(
    (wildcard ? pattern.replace("://*.", "://") : pattern).replace(/\*$/, ""),
  );
  if (allowed === null || allowed.scheme !== target.scheme || allowed.port !== target.port) {
    return false;
  }
  if (wildcard) {
    const dot = target.host.indexOf(".");
    if (dot < 1 || target.host.slice(dot + 1) !== allowed.host) return false;
  } else if (target.host !== allowed.host) {
    return false;
  }
  return prefix ? target.path.startsWith(allowed.path) : target.path === allowed.path;
}

export function urlAllowed(url: string, patterns: readonly string[]): boolean {
  const target = parseTarget(url);
  return target !== null && patterns.some((pattern) => matches(pattern, target));
}
