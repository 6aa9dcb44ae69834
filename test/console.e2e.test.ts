import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { type Browser, chromium, type Page } from 'playwright-core';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, inbox, startTestEmulator } from './support/emulator.js';

// The web console in a real browser: Debian's Chromium driven by Playwright.
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip = existsSync(chromiumPath)
  ? false
  : `no Chromium at ${chromiumPath}: install it with \`apt-get install chromium\` (or set CHROMIUM_PATH)`;
/** Where the screenshot goes; `CONSOLE_SCREENSHOT=docs/console.png` refreshes the README's. */
const screenshotPath = process.env.CONSOLE_SCREENSHOT ?? join(tmpdir(), 'nimbus-console.png');
const TIMEOUT = { timeout: 180_000, skip };
const wait = { timeout: 30_000 };

let emulator: Emulator | undefined;
let browser: Browser | undefined;
let kitchen: MqttClient | undefined;

before(async () => {
  if (skip) return;
  emulator = await startTestEmulator();
  browser = await chromium.launch({ executablePath: chromiumPath });
}, TIMEOUT);

after(async () => {
  await kitchen?.endAsync();
  await browser?.close();
  await emulator?.stop();
}, TIMEOUT);

async function openConsole(): Promise<{ page: Page; pageErrors: string[] }> {
  assert.ok(browser && emulator);
  const page = await browser.newPage({ viewport: { width: 1440, height: 660 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  await page.goto(emulator.consoleUrl);
  return { page, pageErrors };
}

test(
  'the console lists a connected client, runs the playground both ways, and shows the bill',
  TIMEOUT,
  async () => {
    assert.ok(emulator);
    kitchen = await connectClient(emulator.url, {
      clientId: 'kitchen',
      protocolVersion: 5,
      username: 'alice',
    });
    const received = inbox(kitchen);
    await kitchen.subscribeAsync('playground/#', { qos: 1 });
    await kitchen.publishAsync('home/kitchen/temp', '21.5', { qos: 1, retain: true });

    const { page, pageErrors } = await openConsole();
    const kitchenRow = page.locator('#clients tr', { hasText: 'kitchen' });
    await kitchenRow.waitFor(wait);
    assert.deepEqual((await kitchenRow.locator('td').allTextContents()).slice(0, 6), [
      'kitchen',
      'alice',
      '5.0',
      '60 s',
      'clean',
      'connected',
    ]);
    await page.locator('#subscriptions tr', { hasText: 'playground/#' }).waitFor(wait);
    await page.locator('#retained tr', { hasText: 'home/kitchen/temp' }).waitFor(wait);

    // The playground's own client, in the page, through the browser build of the transport.
    await page.locator('#playground-status', { hasText: 'connected as console-' }).waitFor(wait);
    await page.fill('#subscribe-filter', 'playground/#');
    await page.click('#subscribe-button');
    await page.locator('#messages li', { hasText: 'subscribed to playground/#' }).waitFor(wait);
    await page.fill('#publish-topic', 'playground/hello');
    await page.fill('#publish-payload', 'hello from the page');
    await page.click('#publish-button');
    // Back in the page (its own subscription) and at the Node client.
    await page.locator('#messages li .payload', { hasText: 'hello from the page' }).waitFor(wait);
    await eventually('the page’s message at the Node client', () =>
      received.some((m) => m.topic === 'playground/hello' && m.payload === 'hello from the page'),
    );
    await page.locator('#clients tr', { hasText: 'console-' }).waitFor(wait);
    // Per-client counts: kitchen published one message and received the page's.
    await page.waitForFunction(() => {
      const row = Array.from(document.querySelectorAll('#clients tr')).find((tr) =>
        tr.textContent?.includes('kitchen'),
      );
      const cells = Array.from(row?.querySelectorAll('td') ?? []).map((td) => td.textContent);
      return cells.at(-2) === '1' && cells.at(-1) === '1';
    }, wait);

    // The bill: every service has units and a price, and the total is above zero.
    await page.waitForFunction(() =>
      /^\$0\.\d*[1-9]/.test(document.getElementById('bill-total')?.textContent ?? ''),
    );
    const bill = (await page.locator('#bill').textContent()) ?? '';
    for (const service of ['API Gateway', 'Lambda', 'DynamoDB', 'SQS FIFO'])
      assert.match(bill, new RegExp(service));
    assert.match(bill, /\d+ messages/);
    assert.match((await page.locator('#rate-in').textContent()) ?? '', /^\d+\.\d$/);

    await page.screenshot({ path: screenshotPath, fullPage: true });
    assert.deepEqual(pageErrors, []);
    assert.equal(await page.locator('#error').isVisible(), false);
    await page.close();
  },
);

test('the console says so in the page when the emulator stops answering', TIMEOUT, async () => {
  assert.ok(emulator);
  const { page } = await openConsole();
  await page.locator('#updated', { hasText: 'updated' }).waitFor(wait);
  await emulator.stop();
  emulator = undefined;
  const banner = page.locator('#error');
  await banner.waitFor({ state: 'visible', ...wait });
  assert.match((await banner.textContent()) ?? '', /Cannot read the emulator's state: .*Retrying/);
  await page.close();
});
