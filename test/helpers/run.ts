/**
 * What a test process leaves on the machine, and how the next run finds it.
 *
 * Every temp dir, QEMU guest, libvirt domain and server command line a test creates carries
 * `porthole-t-<pid>-`, the pid of the test file's own process. A crash, a timeout or a Ctrl-C can
 * leave them behind; `sweepLeftovers()` (run first by `npm test`, and again by helpers that start
 * long-lived peers) kills every process whose command line carries the marker of a test process
 * that no longer exists and removes that run's temp dirs. Servers a test spawns directly also die
 * with it (`spawnOwned`: parent-death signal), so the sweep is mostly for what daemonizes itself:
 * QEMU guests started by libvirtd.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TEST_MARKER_PREFIX = 'porthole-t-';
const MARKER_RE = /porthole-t-(\d+)-/g;

/** The marker of this process: `porthole-t-<pid>-`. */
export function runMarker(pid = process.pid): string {
  return `${TEST_MARKER_PREFIX}${pid}-`;
}

/** A name unique to this run (domain names, QEMU -name): `porthole-t-<pid>-<what>`. */
export function runName(what: string): string {
  return `${runMarker()}${what}`;
}

/** A new temp dir of this run: `/tmp/porthole-t-<pid>-<purpose>-XXXXXX`. */
export function runTempDir(purpose: string): string {
  return mkdtempSync(join(tmpdir(), `${runMarker()}${purpose}-`));
}

/**
 * spawn(), with the child killed when this process dies, however it dies (SIGKILL included):
 * util-linux `setpriv --pdeathsig KILL` sets the parent-death signal and execs the command.
 */
export function spawnOwned(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  return spawn('setpriv', ['--pdeathsig', 'KILL', '--', command, ...args], options);
}

/** Running, and not a zombie (a killed test process may linger as one until it is reaped). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false; // no such process
  }
}

export interface SweepReport {
  readonly killed: ReadonlyArray<{ pid: number; command: string }>;
  readonly removedDirs: readonly string[];
}

/**
 * Kill what earlier, dead test processes left running and remove their temp dirs. Never touches
 * anything of a live test process (a second suite running at the same time keeps its peers).
 */
export function sweepLeftovers(): SweepReport {
  const killed: Array<{ pid: number; command: string }> = [];
  const deadOwners = new Map<number, boolean>();
  const isDead = (owner: number) => {
    let dead = deadOwners.get(owner);
    if (dead === undefined) deadOwners.set(owner, (dead = owner !== process.pid && !alive(owner)));
    return dead;
  };
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    let command: string;
    try {
      command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    } catch {
      continue; // exited while we looked
    }
    const owners = [...command.matchAll(MARKER_RE)].map((m) => Number(m[1]));
    if (owners.length === 0 || !owners.every(isDead)) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push({ pid, command: command.slice(0, 160) });
    } catch {
      continue; // gone already
    }
  }
  const removedDirs: string[] = [];
  for (const name of readdirSync(tmpdir())) {
    const owner = /^porthole-t-(\d+)-/.exec(name)?.[1];
    if (owner === undefined || !isDead(Number(owner))) continue;
    const path = join(tmpdir(), name);
    rmSync(path, { recursive: true, force: true });
    removedDirs.push(path);
  }
  return { killed, removedDirs };
}
