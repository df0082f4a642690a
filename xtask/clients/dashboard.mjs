// The dashboard in a real browser: Debian's Chromium driven by puppeteer-core.
//
// Run by `cargo xtask clients dashboard` as
//   node dashboard.mjs GATEWAY_URL ADMIN_KEY CLIENT_KEY SCREENSHOT
// with CLIENTS_DIR (where puppeteer-core is installed) and CHROMIUM set. The gateway serves an
// Antigravity backend with one account (check@example.com), a Gemini CLI backend with one
// (cli.check@example.com) and an OpenAI backend, all in front of the mock upstream. Exits non-zero with the reason on the first failed expectation.
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.CLIENTS_DIR + "/");
const puppeteer = require("puppeteer-core");

const [gateway, adminKey, clientKey, screenshot] = process.argv.slice(2);
const origin = new URL(gateway).origin;
const STEP_MS = 15000;

function fail(message) {
  throw new Error(message);
}

async function api(path, key, options = {}) {
  const response = await fetch(gateway + path, {
    ...options,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...options.headers },
  });
  return { status: response.status, text: await response.text() };
}

// Traffic on both backends first, so the overview, usage and requests have something to show.
for (const model of ["gpt-4o", "gemini-3-pro", "gpt-4o", "gemini-2.5-flash"]) {
  const answer = await api("/v1/chat/completions", clientKey, {
    method: "POST",
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hello" }] }),
  });
  if (answer.status !== 200) fail(`traffic on ${model}: ${answer.status} ${answer.text}`);
}
// A client key cannot open admin data.
const refused = await api("/admin/accounts", clientKey);
if (refused.status !== 403 && refused.status !== 401) fail(`a client key read /admin/accounts: ${refused.status}`);

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM,
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions",
  ],
});
const errors = [];
// The three refusals the check provokes (the page's first try without a key, a wrong key, a
// client key) are logged by the browser as failed loads, possibly after the page showed them.
const refusals = [];
const EXPECTED_REFUSALS = 3;
const outside = [];
let weight = 0;
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_MS);
  await page.setViewport({ width: 1280, height: 900 });
  page.on("pageerror", (err) => errors.push(`page error: ${err.message}`));
  page.on("console", (message) => {
    const text = message.text();
    if (message.type() !== "error") return;
    if (/Failed to load resource: .* (401|403)/.test(text)) refusals.push(text);
    else errors.push(`console error: ${text} (${message.location().url || "no url"})`);
  });
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(origin) && !url.startsWith("data:") && !url.startsWith("blob:")) outside.push(url);
  });
  page.on("response", async (response) => {
    const url = response.url();
    if (url.startsWith(origin + "/ui") && response.status() === 200) {
      try { weight += (await response.buffer()).length; } catch (_) { /* a redirect has no body */ }
    }
  });

  // The root leads to the page (which first tries without a key: refused here).
  await page.goto(gateway + "/", { waitUntil: "networkidle0" });
  if (!page.url().endsWith("/ui")) fail(`GET / did not lead to /ui but to ${page.url()}`);

  const signIn = async (key) => {
    await page.$eval("#admin-key", (input) => { input.value = ""; });
    await page.type("#admin-key", key);
    await page.click("#sign-in-form button[type=submit]");
  };
  const messageSays = (text) => page.waitForFunction(
    (t) => document.querySelector("#sign-in-message").textContent.includes(t), {}, text);

  // A wrong key and a client key get clear messages.
  await signIn("not-a-key");
  await messageSays("did not accept this key");
  await signIn(clientKey);
  await messageSays("admin key");
  if (!(await page.$eval("#app", (app) => app.hidden))) fail("a client key opened the dashboard");

  // The admin key opens it: both backends on the overview.
  await signIn(adminKey);
  await page.waitForSelector("#app:not([hidden])");
  const rowWith = (table, text) => page.waitForFunction(
    (sel, t) => [...document.querySelectorAll(`${sel} tbody tr`)].some((r) => r.textContent.includes(t)),
    { polling: 100 }, table, text);
  await rowWith("#backends", "antigravity");
  await rowWith("#backends", "openai");
  await rowWith("#backends", "geminicli");
  await page.waitForFunction(() => document.querySelectorAll("#activity-chart rect").length > 0);
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-overview.png"), fullPage: true });

  // Accounts, by email.
  await page.click("#tab-accounts");
  await rowWith("#account-table", "check@example.com");
  await rowWith("#account-table", "Gemini CLI");

  // Usage after traffic: per day, then per backend.
  await page.click("#tab-usage");
  await rowWith("#usage-table", new Date().toISOString().slice(0, 10));
  await page.select("#usage-group", "backend");
  await rowWith("#usage-table", "antigravity");
  await rowWith("#usage-table", "openai");
  await rowWith("#usage-table", "geminicli");

  // The last requests, with their attempts chain.
  await page.click("#tab-requests");
  await rowWith("#request-table", "gemini-3-pro");
  await rowWith("#request-table", "openai:200");

  // The configuration, secrets redacted.
  await page.click("#tab-config");
  await page.waitForFunction(() => document.querySelector("#config-text").textContent.includes("[server]"));
  const config = await page.$eval("#config-text", (pre) => pre.textContent);
  if (config.includes(adminKey) || config.includes(clientKey)) fail("the configuration page shows a key");
  if (!config.includes("[redacted]")) fail("the configuration page redacts nothing");
  await page.click("#reload");
  await page.waitForFunction(() => document.querySelector("#message").textContent.includes("reloaded"));

  // Import an export file (gcli2api's shape) through the file input.
  const exportFile = `${process.env.HOME}/export.json`;
  writeFileSync(exportFile, JSON.stringify({
    client_id: "cid", client_secret: "cs", refresh_token: "1//imported", token: "ya29.imported",
    access_token: "ya29.imported", expiry: "2999-01-01T00:00:00Z", project_id: "imported-project",
    email: "imported@example.com",
  }));
  await page.click("#tab-accounts");
  const upload = await page.$("#import-file");
  await upload.uploadFile(exportFile);
  await rowWith("#account-table", "imported@example.com");

  // Add an account by Google sign-in: the page opens the sign-in (here the mock's), and
  // "Google" sends the browser back to the gateway with the code.
  const popup = new Promise((resolve) => browser.once("targetcreated", resolve));
  await page.click("#add-account");
  const signInUrl = new URL((await popup).url());
  const back = new URL(signInUrl.searchParams.get("redirect_uri"));
  if (back.origin !== origin) fail(`the sign-in comes back to ${back.origin}, not the gateway`);
  back.searchParams.set("code", "code-from-google");
  back.searchParams.set("state", signInUrl.searchParams.get("state"));
  const landing = await browser.newPage();
  await landing.goto(back.toString());
  const landed = await landing.$eval("[role=status]", (p) => p.textContent);
  if (!landed.includes("new.user@example.com")) fail(`the sign-in landed on: ${landed}`);
  await landing.close();
  await page.bringToFront();
  await rowWith("#account-table", "new.user@example.com");

  // Disable the account from the page; the admin API sees it.
  await page.click("#tab-accounts");
  // The table is redrawn every few seconds: a locator finds the button again if it must.
  await page.locator('button[aria-label="Disable check@example.com"]').click();
  await rowWith("#account-table", "disabled");
  const accounts = JSON.parse((await api("/admin/accounts", adminKey)).text);
  const account = accounts.data.find((a) => a.email === "check@example.com");
  if (!account || account.disabled_reason === null) fail(`the account is not disabled: ${JSON.stringify(accounts)}`);
  // Keyboard use: the tabs move with the arrow keys.
  await page.focus("#tab-accounts");
  await page.keyboard.press("ArrowRight");
  await page.waitForSelector("#usage:not([hidden])");
  await page.click("#tab-accounts");
  await rowWith("#account-table", "disabled");

  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
if (refusals.length > EXPECTED_REFUSALS) fail(`unexpected refusals: ${refusals.join("; ")}`);
if (errors.length) fail(errors.join("; "));
if (outside.length) fail(`requests outside the gateway: ${outside.join(", ")}`);
if (weight === 0 || weight > 200 * 1024) fail(`the page weighs ${weight} bytes`);
console.log(`dashboard ok: page weight ${weight} bytes; screenshot ${screenshot}`);
