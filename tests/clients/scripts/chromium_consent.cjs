// Walks the OAuth consent page and the (simulated) Layer login in headless Chromium, like a
// person: reads the page, clicks, types. Screenshots go to the artifacts folder.
// Usage: node chromium_consent.cjs <authorization url> <login> <password> <artifacts dir> <redirect prefix>
// Prints `REDIRECT <url>` with the URL the browser was finally sent to (the client's callback).
const http = require("node:http");
const { chromium } = require("playwright-core");

const [authorizationUrl, login, password, artifacts, redirectPrefix] = process.argv.slice(2);
(async () => {
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
  // The client's callback: a small server on its port that records where the browser landed.
  let finalUrl = null;
  const target = new URL(redirectPrefix);
  const callback = http.createServer((req, res) => {
    if (!req.url.startsWith("/favicon")) finalUrl = `${target.protocol}//${target.host}${req.url}`;
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>Connected</title><h1>Connected to Layer</h1><p>You can close this window.</p>");
  });
  await new Promise((resolve) => callback.listen(Number(target.port), "127.0.0.1", resolve));
  await page.goto(authorizationUrl);
  await page.getByRole("heading", { level: 1 }).waitFor();
  const heading = await page.getByRole("heading", { level: 1 }).textContent();
  console.log("CONSENT", heading);
  await page.screenshot({ path: `${artifacts}/oauth-consent.png`, fullPage: true });
  await page.getByRole("button", { name: "Allow and log in to Layer" }).click();
  await page.getByLabel("Username or email").fill(login);
  await page.getByLabel("Password").fill(password);
  await page.screenshot({ path: `${artifacts}/oauth-layer-login.png`, fullPage: true });
  await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForURL((url) => url.href.startsWith(redirectPrefix));
  await page.screenshot({ path: `${artifacts}/oauth-connected.png` });
  console.log("REDIRECT", finalUrl ?? page.url());
  callback.close();
} catch (e) {
  const pages = browser.contexts().flatMap((c) => c.pages());
  for (const p of pages) {
    console.error("STUCK AT", p.url());
    console.error((await p.content()).slice(0, 2000));
    await p.screenshot({ path: `${artifacts}/oauth-failure.png`, fullPage: true });
  }
  throw e;
} finally {
  await browser.close();
}
})().catch((e) => { console.error(e); process.exit(1); });
