// The quickstart's /docs in headless Chromium, as a person uses it: without authorizing,
// `GET /data` answers 401; after authorizing with the key through the UI, 200 and the data.
//
//   node docs.mjs http://127.0.0.1:3000 <key> [screenshot.png]
//
// Chromium is Debian's (/usr/bin/chromium, or CHROMIUM); playwright-core drives it and
// downloads nothing. Exits non-zero, saying why, when the page does not behave.

import { chromium } from "playwright-core";

const [base, key, screenshot = "target/browser/docs.png"] = process.argv.slice(2);
if (!base || !key) {
  console.error("usage: node docs.mjs <base URL> <key> [screenshot.png]");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

/// Runs `GET /data` from the docs page and returns the status and body it shows.
async function tryData(page, keepAnswer = false) {
  const operation = page.locator("#operations-quickstart-get_data");
  if (!(await operation.locator(".opblock-body").isVisible())) {
    await operation.locator(".opblock-summary").first().click();
  }
  const tryOut = operation.locator("button.try-out__btn");
  if ((await tryOut.textContent()).includes("Try it out")) {
    await tryOut.click();
  }
  await operation.locator("button.execute").click();
  const status = operation.locator(".live-responses-table .response .response-col_status").first();
  await status.waitFor({ timeout: 10_000 });
  const body = await operation
    .locator(".live-responses-table .response-col_description pre.microlight")
    .first()
    .textContent();
  const code = (await status.textContent()).trim();
  // Clear the answer, so the next run shows its own.
  const clear = operation.locator("button.btn-clear");
  if (!keepAnswer && (await clear.isVisible())) {
    await clear.click();
  }
  return { code, body };
}

let failed = false;
const check = (ok, what) => {
  console.log(`${ok ? "ok" : "FAILED"}: ${what}`);
  failed ||= !ok;
};

try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
  await page.goto(`${base}/docs/`, { waitUntil: "networkidle" });
  await page.locator("#operations-quickstart-get_data").waitFor({ timeout: 15_000 });
  check(true, "the docs list GET /data");

  const anonymous = await tryData(page);
  check(anonymous.code === "401", `without authorizing, GET /data answers ${anonymous.code} (401 expected)`);
  check(!anonymous.body.includes(key), "the answer does not hold the key");

  await page.locator(".auth-wrapper button.authorize").click();
  const dialog = page.locator(".dialog-ux");
  await dialog.locator("input").first().fill(key);
  await dialog.locator("button.modal-btn.auth").first().click();
  await dialog.locator("button.btn-done").first().click();

  const authorized = await tryData(page, true);
  check(authorized.code === "200", `after authorizing, GET /data answers ${authorized.code} (200 expected)`);
  check(authorized.body.includes("secret information"), "and shows the data");

  await page
    .locator("#operations-quickstart-get_data .live-responses-table")
    .first()
    .scrollIntoViewIfNeeded();
  await page.screenshot({ path: screenshot, fullPage: false });
  console.log(`screenshot: ${screenshot}`);
} catch (error) {
  check(false, `the docs page: ${error.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
