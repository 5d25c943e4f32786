/** Real QEMU VNC servers for tests (diskless TCG guest, VNC on loopback only). */
import { pino } from 'pino';
import { startDemoVm, type DemoVm } from '../../src/demo/qemu-demo.js';

export function startQemuVnc(): Promise<DemoVm> {
  return startDemoVm(pino({ level: 'silent' }), process.env.PATH ?? '');
}
