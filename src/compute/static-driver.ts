/**
 * Static inventory driver: instances listed in an INI file. The file is re-read when it changes
 * (checked with one stat per lookup: lookups happen per mint, never per relayed byte). A broken
 * edit keeps the last good inventory and is reported in health() and the log.
 */
import { stat, readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { PortholeError } from '../errors.js';
import type { ConnectInfo, ConsoleProtocol } from '../console/types.js';
import type { ComputeDriver, ConnectSecrets, ConsoleTarget, DriverHealth, InstanceSummary } from './driver.js';
import { parseInventory, type InventoryEntry } from './inventory.js';

export interface StaticDriverOptions {
  /** Inventory file; '' for none (only `builtin` entries). */
  inventoryFile: string;
  /** Entries that exist regardless of the file (the `--demo` VM). */
  builtin?: readonly InventoryEntry[];
  logger: Logger;
}

/** The port of an entry's console of this protocol, if it has one. Pure. */
function portOf(entry: InventoryEntry, protocol: ConsoleProtocol): number | undefined {
  if (entry.protocol === protocol) return entry.port;
  if (protocol === 'serial') return entry.serialPort;
  if (protocol === 'spice') return entry.spice?.port;
  return undefined;
}

function protocolsOf(entry: InventoryEntry): ConsoleProtocol[] {
  return [entry.protocol, ...(entry.serialPort === undefined ? [] : ['serial' as const]), ...(entry.spice === undefined ? [] : ['spice' as const])];
}

export class StaticDriver implements ComputeDriver {
  readonly name = 'static';
  readonly #file: string;
  readonly #builtin: readonly InventoryEntry[];
  readonly #logger: Logger;
  #entries: readonly InventoryEntry[] = [];
  #signature = '';
  #lastProblem: string | undefined;

  private constructor(options: StaticDriverOptions) {
    this.#file = options.inventoryFile;
    this.#builtin = options.builtin ?? [];
    this.#logger = options.logger;
  }

  /** @throws PortholeError PH_ERR_INVENTORY_INVALID when the file is unreadable or invalid at start. */
  static async open(options: StaticDriverOptions): Promise<StaticDriver> {
    const driver = new StaticDriver(options);
    await driver.#reload(true);
    return driver;
  }

  async #reload(strict: boolean): Promise<void> {
    if (this.#file === '') return;
    let signature: string;
    try {
      const s = await stat(this.#file);
      signature = `${s.ino}:${s.size}:${s.mtimeMs}`;
      if (signature === this.#signature) return;
      const { entries, problems } = parseInventory(await readFile(this.#file, 'utf8'), this.#file);
      if (problems.length > 0) throw new Error(problems.join('\n'));
      this.#entries = entries;
      this.#signature = signature;
      this.#lastProblem = undefined;
      this.#logger.info({ file: this.#file, instances: entries.length }, 'static inventory loaded');
    } catch (err) {
      const message = (err as NodeJS.ErrnoException).code ? `cannot read ${this.#file}: ${(err as Error).message}` : (err as Error).message;
      if (strict) throw new PortholeError('PH_ERR_INVENTORY_INVALID', `static inventory: ${message}`, { cause: err });
      if (this.#lastProblem !== message) this.#logger.error({ file: this.#file }, `static inventory not reloaded, keeping the last good one: ${message}`);
      this.#lastProblem = message;
    }
  }

  #all(): readonly InventoryEntry[] {
    return this.#builtin.length === 0 ? this.#entries : [...this.#builtin, ...this.#entries];
  }

  #find(instance: string): InventoryEntry | undefined {
    const key = instance.toLowerCase();
    return this.#all().find((e) => e.name === instance || (e.uuid !== undefined && e.uuid === key));
  }

  async canonicalName(instance: string): Promise<string | undefined> {
    await this.#reload(false);
    return this.#find(instance)?.name;
  }

  async resolve(instance: string, protocol: ConsoleProtocol): Promise<ConsoleTarget | undefined> {
    await this.#reload(false);
    const entry = this.#find(instance);
    if (!entry) return undefined;
    const port = portOf(entry, protocol);
    if (port === undefined) {
      throw new PortholeError('PH_ERR_INSTANCE_NO_CONSOLE', `instance ${entry.name} has a ${protocolsOf(entry).join(' and ')} console, not ${protocol}`);
    }
    return { instance: entry.name, instanceUuid: entry.uuid, protocol, host: entry.host, port };
  }

  /** No target re-check (the inventory is the truth); the password from the inventory entry. */
  async prepareConnect(info: ConnectInfo, want: { readonly password: boolean }): Promise<ConnectSecrets> {
    if (!want.password) return {};
    await this.#reload(false);
    const entry = this.#find(info.instance);
    if (info.protocol === 'spice') return { password: entry?.spice?.password, tlsPort: entry?.spice?.tlsPort };
    return { password: entry?.password };
  }

  async list(): Promise<InstanceSummary[]> {
    await this.#reload(false);
    return this.#all().map((e) => ({ name: e.name, uuid: e.uuid, state: 'unknown', protocols: protocolsOf(e) }));
  }

  async health(): Promise<DriverHealth> {
    await this.#reload(false);
    return this.#lastProblem === undefined
      ? { driver: this.name, ok: true, detail: `${this.#all().length} instances` }
      : { driver: this.name, ok: false, detail: this.#lastProblem };
  }

  async close(): Promise<void> {}
}
