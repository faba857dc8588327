// Shared helpers for slotd's browser tests.
//
// Chromium is Debian's /usr/bin/chromium (installed by scripts/test.sh), driven
// through playwright-core; playwright never downloads a browser of its own.
// Override the binary with SLOTD_CHROMIUM.

import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const DEFAULT_CHROMIUM = '/usr/bin/chromium';

/** Path of the chromium binary: $SLOTD_CHROMIUM or /usr/bin/chromium. */
export function chromiumPath() {
  return process.env.SLOTD_CHROMIUM || DEFAULT_CHROMIUM;
}

/** Flags every launch uses: headless, root-safe, no network chatter. */
export const CHROMIUM_ARGS = Object.freeze([
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
]);

/**
 * Launch headless Chromium and return a playwright Browser.
 *
 * playwright gives every launch a fresh temporary profile (its own
 * --user-data-dir, removed on close), so no state leaks between runs. Extra
 * chromium flags may be passed in opts.args; other opts go to chromium.launch.
 */
export async function launchBrowser(opts = {}) {
  const { args = [], ...rest } = opts;
  const exe = chromiumPath();
  if (!existsSync(exe)) {
    throw new Error(`chromium not found at ${exe}: run scripts/test.sh (it installs Debian's chromium) or set SLOTD_CHROMIUM`);
  }
  try {
    return await chromium.launch({
      executablePath: exe,
      headless: true,
      timeout: 60_000,
      ...rest,
      args: [...CHROMIUM_ARGS, ...args],
    });
  } catch (err) {
    throw new Error(`launching chromium at ${exe} failed: ${err.message}`);
  }
}
