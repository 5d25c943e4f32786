/** Debian's Chromium driven by playwright-core (no browser download). */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type Cookie, type Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
}

/** Count canvas pixels brighter than a dark background (SeaBIOS text is light grey on black). */
export async function litPixels(page: Page): Promise<number> {
  return page.evaluate(() => {
    const cv = document.querySelector('#screen canvas') as HTMLCanvasElement | null;
    if (!cv || cv.width < 100) return 0;
    const ctx = cv.getContext('2d');
    if (!ctx) return 0;
    const d = ctx.getImageData(0, 0, cv.width, cv.height).data;
    let lit = 0;
    for (let i = 0; i < d.length; i += 4) if ((d[i] ?? 0) + (d[i + 1] ?? 0) + (d[i + 2] ?? 0) > 150) lit++;
    return lit;
  });
}

export interface ConsoleSeen {
  /** Lit canvas pixels once the screen drew (or when 15 s ran out). */
  readonly lit: number;
  /** A dialog (password prompt) opened. */
  readonly prompted: boolean;
  readonly html: string;
  readonly status: string;
  readonly cookies: readonly Cookie[];
}

/**
 * Open a console URL in Chromium, wait for "Connected" and a drawn screen, and save a screenshot
 * to test-output/e2e/`screenshot`.
 */
export async function showConsoleInChromium(url: string, screenshot: string, options: { ignoreHttpsErrors?: boolean } = {}): Promise<ConsoleSeen> {
  const out = join(process.cwd(), 'test-output', 'e2e');
  await mkdir(out, { recursive: true });
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({ viewport: { width: 900, height: 560 }, ignoreHTTPSErrors: options.ignoreHttpsErrors ?? false });
    const tab = await context.newPage();
    let prompted = false;
    tab.on('dialog', (d) => { prompted = true; void d.dismiss(); });
    await tab.goto(url);
    await tab.waitForFunction(() => /^Connected/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 15_000 });
    let lit = 0;
    const deadline = Date.now() + 15_000;
    while ((lit = await litPixels(tab)) < 500 && Date.now() < deadline) await tab.waitForTimeout(200);
    await tab.screenshot({ path: join(out, screenshot) });
    return { lit, prompted, html: await tab.content(), status: (await tab.locator('#status').textContent()) ?? '', cookies: await context.cookies() };
  } finally {
    await browser.close();
  }
}
