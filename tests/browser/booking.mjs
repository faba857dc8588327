// Two customers, two time zones, one slot: the live booking page end to end.
//
//   node tests/browser/booking.mjs http://localhost:8080/book/<link>
//
// User A (Europe/Rome) and user B (America/New_York) open the demo tenant's
// booking page in separate browser contexts and pick the consultation
// service. A chooses a slot only one staff member can take (capacity 1,
// so one hold exhausts it). B, without reloading, must see that slot's
// button vanish as soon as A holds it, before A books. A then books and sees
// the confirmation; the slot stays gone for B and from the public API.
//
// Each page shows starts in its own zone, so the same instant has a
// different data-start in A and B: buttons are matched by Date.parse.
//
// Prints "booked <id> <start>" and "ok" on success; exits non-zero with a
// message otherwise. Screenshots of both pages are written to the OS temp
// directory either way (their paths are printed).

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromiumPath, launchBrowser } from './lib.mjs';

const WAIT_MS = 30_000;
const SERVICE = 'consultation'; // ana and ben, capacity 1 each; no buffers
const ZONE_A = 'Europe/Rome';
const ZONE_B = 'America/New_York';
const NAME = 'Ada Browser';
const EMAIL = 'ada.browser@example.com';

class Failure extends Error {}

function fail(msg) {
  throw new Failure(msg);
}

/** Slots shown on page: [{start, ms, title}]. */
async function shownSlots(page) {
  return page.$$eval('#slots button.slot', (bs) =>
    bs.map((b) => ({ start: b.dataset.start, ms: Date.parse(b.dataset.start), title: b.title })),
  );
}

/** "HH:MM" of instant ms in zone. */
function wallClock(ms, zone) {
  return new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(
    new Date(ms),
  );
}

/** Checks that every slot on a page is written in the page's zone. */
function checkZone(label, slots, zone) {
  for (const s of slots) {
    if (Number.isNaN(s.ms)) fail(`${label}: slot data-start ${JSON.stringify(s.start)} is not a time`);
    if (s.start.slice(11, 16) !== wallClock(s.ms, zone)) {
      fail(`${label}: slot ${s.start} is not shown in ${zone} (there it is ${wallClock(s.ms, zone)})`);
    }
  }
}

async function openPage(browser, label, zone, locale, url, errors, pages) {
  const context = await browser.newContext({ timezoneId: zone, locale });
  const page = await context.newPage();
  pages[label] = page; // for the screenshots, whatever happens next
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (err) => errors.push(`${label}: page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`${label}: console error: ${msg.text()}`);
  });
  await page.goto(url);
  await page.waitForSelector('#status[data-state="live"]');
  const tz = await page.textContent('#tz');
  if (tz !== zone) fail(`${label}: page says times are in ${JSON.stringify(tz)}, want ${zone}`);
  await page.click(`#services button[data-service="${SERVICE}"]`);
  await page.waitForSelector(`#services button[data-service="${SERVICE}"][aria-pressed="true"]`);
  await page.waitForSelector('#slots button.slot');
  await page.waitForFunction(() => !document.getElementById('slots').hasAttribute('aria-busy'));
  return page;
}

async function main(url, pages) {
  const errors = [];
  const browser = await launchBrowser();
  try {
    const a = await openPage(browser, 'A', ZONE_A, 'it-IT', url, errors, pages);
    const b = await openPage(browser, 'B', ZONE_B, 'en-US', url, errors, pages);

    const slotsA = await shownSlots(a);
    const slotsB = await shownSlots(b);
    checkZone('A', slotsA, ZONE_A);
    checkZone('B', slotsB, ZONE_B);

    // A slot both pages show, that only one resource can take, comfortably
    // beyond the service's two hours of minimum notice.
    const inB = new Map(slotsB.map((s) => [s.ms, s]));
    const soonest = Date.now() + 3 * 3600_000;
    const pick = slotsA.find((s) => s.ms >= soonest && !s.title.includes(',') && inB.has(s.ms) && !inB.get(s.ms).title.includes(','));
    if (!pick) {
      fail(`no ${SERVICE} slot with a single resource shown on both pages (A: ${slotsA.length} slots, B: ${slotsB.length})`);
    }
    const startA = pick.start;
    const startB = inB.get(pick.ms).start;
    if (startA === startB) fail(`both pages spell the slot ${startA}; want each in its own zone`);
    console.log(`slot: A sees ${startA}, B sees ${startB} (${pick.title})`);

    // A holds the slot: B's button must go, before anyone books.
    await a.click(`#slots button.slot[data-start="${startA}"]`);
    await a.waitForSelector('#form-section', { state: 'visible' });
    const held = await a.textContent('#held-time');
    console.log(`A holds: ${held}`);
    try {
      await b.waitForSelector(`#slots button.slot[data-start="${startB}"]`, { state: 'detached' });
    } catch (err) {
      fail(`B still shows ${startB} ${WAIT_MS / 1000}s after A held it: ${err.message}`);
    }
    await a.waitForSelector(`#slots button.slot[data-start="${startA}"]`, { state: 'detached' });
    console.log('B: the held slot vanished without a reload');

    // A books.
    await a.fill('#name', NAME);
    await a.fill('#email', EMAIL);
    await a.click('#book-button');
    await a.waitForSelector('#confirmation', { state: 'visible' });
    const ref = (await a.textContent('#booking-ref')).trim();
    if (!/^bk_[a-z2-7]{26}$/.test(ref)) fail(`booking reference ${JSON.stringify(ref)} is not a booking id`);
    const text = await a.textContent('#confirmation-text');
    if (!text.includes('Consultation')) fail(`confirmation ${JSON.stringify(text)} does not name the service`);
    const errText = await a.$eval('#error', (e) => (e.hidden ? '' : e.textContent));
    if (errText) fail(`A shows an error after booking: ${errText}`);

    // The slot stays gone: for B and for the public API.
    if ((await b.$$(`#slots button.slot[data-start="${startB}"]`)).length !== 0) {
      fail(`B shows ${startB} again after A booked it`);
    }
    const link = new URL(url).pathname.split('/')[2];
    const day = (ms) => new Date(ms).toISOString().slice(0, 10);
    const q = new URLSearchParams({ service: SERVICE, from: day(pick.ms), to: day(pick.ms + 86400_000), tz: 'UTC' });
    const res = await fetch(new URL(`/v1/public/${link}/availability?${q}`, url));
    if (!res.ok) fail(`GET availability: ${res.status} ${await res.text()}`);
    const { slots } = await res.json();
    if (slots.some((s) => Date.parse(s.start) === pick.ms)) fail(`the API still offers ${startA} after it was booked`);

    if (errors.length) fail(`the pages reported errors:\n  ${errors.join('\n  ')}`);
    console.log(`booked ${ref} ${startA}`);
  } finally {
    for (const [label, page] of Object.entries(pages)) {
      const path = join(tmpdir(), `slotd-booking-${label}-${process.pid}.png`);
      try {
        await page.screenshot({ path, fullPage: true });
        console.log(`screenshot ${label}: ${path}`);
      } catch (err) {
        console.log(`screenshot ${label} failed: ${err.message}`);
      }
    }
    await browser.close();
  }
}

const url = process.argv[2];
if (!url || !/^https?:\/\/[^/]+\/book\/[a-z2-7]{26}$/.test(url)) {
  console.error('usage: node booking.mjs http://host:port/book/<link>');
  process.exit(2);
}

const watchdog = setTimeout(() => {
  console.error('booking: FAIL: timed out after 150s');
  process.exit(1);
}, 150_000);
watchdog.unref();

try {
  await main(url, {});
  console.log('ok');
} catch (err) {
  const msg = err instanceof Failure ? err.message : err && err.stack ? err.stack : String(err);
  console.error(`booking: FAIL (chromium ${chromiumPath()}): ${msg}`);
  process.exit(1);
}
