/** `porthole doctor`: config, token store and shared-store checks. */
import { formatProblem, loadConfig, type ConfigProblem } from '../../config/load.js';
import { isPortholeError } from '../../errors.js';
import { runDoctor, type DoctorFinding } from '../../ops/doctor.js';
import { createTokenStore } from '../../tokens/create-store.js';
import { configFilesOf, type ConfigArgs } from '../common.js';

export async function doctorCommand(opts: ConfigArgs & { peers?: string; json?: boolean }): Promise<void> {
  const files = configFilesOf(opts);
  let findings: DoctorFinding[];
  try {
    const { config, warnings } = loadConfig(files);
    const peers = opts.peers !== undefined ? opts.peers.split(',').map((p) => p.trim()).filter(Boolean) : [...config.porthole.peers];
    let store;
    let openError: string | undefined;
    try {
      store = await createTokenStore(config);
    } catch (err) {
      openError = (err as Error).message;
    }
    try {
      findings = await runDoctor({ config, warnings, store, peers, ...(openError === undefined ? {} : { openError }) });
    } finally {
      await store?.close();
    }
  } catch (err) {
    if (!isPortholeError(err) || !err.code.startsWith('PH_ERR_CONFIG')) throw err;
    const problems = (err.details?.problems as ConfigProblem[] | undefined) ?? [];
    findings = problems.map((p) => ({ code: 'PH_DOCTOR_CONFIG_INVALID', severity: 'error', message: formatProblem(p), fix: 'fix the line named; unknown options are never ignored' }));
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ ok: !findings.some((f) => f.severity === 'error'), findings }, null, 2)}\n`);
  } else {
    const width = Math.max(...findings.map((f) => f.code.length));
    for (const f of findings) {
      process.stdout.write(`${f.severity.toUpperCase().padEnd(7)} ${f.code.padEnd(width)}  ${f.message}\n`);
      if (f.fix) process.stdout.write(`${' '.repeat(width + 10)}fix: ${f.fix}\n`);
    }
  }
  if (findings.some((f) => f.severity === 'error')) process.exitCode = 1;
}
