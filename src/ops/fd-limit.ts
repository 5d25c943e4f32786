/**
 * Is the open-files limit high enough for `[console] max_sessions`? Each console holds two file
 * descriptors (browser and VNC server); the rest of the process needs some headroom. Below that,
 * consoles start failing with EMFILE long before the session limit says they should.
 */
import { readFileSync } from 'node:fs';

/** Descriptors besides consoles: listeners, store connections, libvirt/virsh pipes, log files. */
export const FD_HEADROOM = 128;

/** The soft "Max open files" of /proc/<pid>/limits text; undefined if unlimited or absent. Pure. */
export function parseOpenFilesLimit(limitsText: string): number | undefined {
  const m = /^Max open files\s+(\S+)/m.exec(limitsText);
  return m === null || m[1] === 'unlimited' ? undefined : Number(m[1]);
}

/** A warning when `maxSessions` consoles cannot all get their descriptors; undefined when fine. Pure. */
export function fdLimitWarning(maxSessions: number, openFilesLimit: number | undefined): string | undefined {
  if (maxSessions === 0 || openFilesLimit === undefined) return undefined;
  const needed = maxSessions * 2 + FD_HEADROOM;
  if (openFilesLimit >= needed) return undefined;
  return `the open-files limit is ${openFilesLimit}, but [console] max_sessions = ${maxSessions} needs about ${needed} ` +
    `(2 per console + ${FD_HEADROOM}): raise it (systemd LimitNOFILE=, ulimit -n) or lower max_sessions`;
}

/** This process's soft open-files limit (Linux), or undefined. */
export function currentOpenFilesLimit(): number | undefined {
  try {
    return parseOpenFilesLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return undefined; // not Linux: no warning
  }
}
