/** Debian's Chromium driven by playwright-core (no browser download). */
import { chromium, type Browser, type Page } from 'playwright-core';

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
