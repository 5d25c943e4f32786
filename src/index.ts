/** Porthole's public API. No side effects on import. */
export { Gateway, type GatewayOptions, type GatewayAddresses } from './gateway.js';
export { loadConfig, validateSources, formatProblem, type ConfigProblem, type LoadedConfig } from './config/load.js';
export type { Config } from './config/schema.js';
export { PortholeError, ERROR_CATALOGUE, type ErrorCode, isPortholeError } from './errors.js';
export type { TokenIssuer, TokenSource, TokenStore, TokenLookup } from './tokens/store.js';
export type { ConnectInfo, ConsoleProtocol, ConsoleType } from './console/types.js';
export type { ComputeDriver, ConsoleTarget } from './compute/driver.js';
export { createLogger } from './log.js';
