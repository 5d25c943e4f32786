/** What every command shares: the config options, reading the config, the exit error. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Option } from 'commander';
import { formatProblem, loadConfig, type LoadedConfig } from '../config/load.js';

export const DEFAULT_CONFIG_FILE = '/etc/porthole/porthole.conf';

export class CliExit extends Error {
  constructor(readonly exitCode: number, message: string) {
    super(message);
  }
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function configOption(): Option {
  return new Option('--config-file <path>', `config file (repeatable, later files win; default ${DEFAULT_CONFIG_FILE} if it exists)`)
    .argParser(collect).default([]);
}

export function configDirOption(): Option {
  return new Option('--config-dir <dir>', 'directory of *.conf files read after --config-file, in name order (as oslo.config does)');
}

export interface ConfigArgs { readonly configFile: string[]; readonly configDir?: string }

/** --config-file files, then --config-dir's *.conf in name order (oslo.config); default file if neither. */
export function configFilesOf(opts: ConfigArgs): string[] {
  const fromDir = opts.configDir === undefined ? [] : readdirSync(opts.configDir).filter((f) => f.endsWith('.conf')).sort().map((f) => join(opts.configDir as string, f));
  const files = [...opts.configFile, ...fromDir];
  return files.length > 0 ? files : existsSync(DEFAULT_CONFIG_FILE) ? [DEFAULT_CONFIG_FILE] : [];
}

export function readConfig(opts: ConfigArgs, options: Parameters<typeof loadConfig>[2] = {}): LoadedConfig {
  const loaded = loadConfig(configFilesOf(opts), undefined, options);
  for (const w of loaded.warnings) process.stderr.write(`porthole: ${formatProblem(w)}\n`);
  return loaded;
}

/** The API as seen from this host: a wildcard bind is reached on loopback. */
export function apiBaseUrl(host: string, port: number): string {
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
}
