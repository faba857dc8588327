// Self-check of the browser harness: launch chromium, click a button on a
// data: page, print "ok". Exits non-zero with a message on any failure.
//
//   node tests/browser/smoke.mjs

import { chromiumPath, launchBrowser } from './lib.mjs';

const PAGE =
  'data:text/html,' +
  encodeURIComponent(
    '<!doctype html><title>smoke</title>' +
      '<button id="b" onclick="this.textContent=\'clicked\'">click me</button>',
  );

async function main() {
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(30_000);
    await page.goto(PAGE);
    await page.click('#b');
    const text = await page.textContent('#b');
    if (text !== 'clicked') {
      throw new Error(`button text after click is ${JSON.stringify(text)}, want "clicked"`);
    }
  } finally {
    await browser.close();
  }
}

const watchdog = setTimeout(() => {
  console.error('smoke: FAIL: timed out after 120s');
  process.exit(1);
}, 120_000);
watchdog.unref();

try {
  await main();
  console.log('ok');
} catch (err) {
  console.error(`smoke: FAIL (chromium ${chromiumPath()}): ${err && err.stack ? err.stack : err}`);
  process.exit(1);
}
