/** Request-target parsing shared by the static site and the upgrade handler. Pure. */

/**
 * Path and query of a request-target, split without URL resolution: `//evil.example/x` must stay a
 * path on this host, never become a host (which `new URL(target, base)` would make of it).
 */
export function splitTarget(target: string): { path: string; query: URLSearchParams } {
  const hash = target.indexOf('#');
  const t = hash === -1 ? target : target.slice(0, hash);
  const q = t.indexOf('?');
  return q === -1
    ? { path: t, query: new URLSearchParams() }
    : { path: t.slice(0, q), query: new URLSearchParams(t.slice(q + 1)) };
}
