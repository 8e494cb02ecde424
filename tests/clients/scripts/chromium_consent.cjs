// Walks the OAuth consent page and the (simulated) Layer login in headless Chromium, like a
// person: reads the page, clicks, types. Screenshots go to the artifacts folder.
// Usage: node chromium_consent.cjs <authorization url> <login> <password> <artifacts dir> <redirect prefix>
// Prints `REDIRECT <url>` with the URL the browser was finally sent to (the client's callback).
const { chromium } = require("playwright-core");

const [authorizationUrl, login, password, artifacts, redirectPrefix] = process.argv.slice(2);
(async () => {
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
  let finalUrl = null;
  // The client's callback is not served here: stop the navigation there and report it.
  await page.route((url) => url.href.startsWith(redirectPrefix), async (route) => {
    finalUrl = route.request().url();
    await route.fulfill({ status: 200, contentType: "text/html", body: "<h1>Connected</h1>" });
  });
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
} finally {
  await browser.close();
}
})().catch((e) => { console.error(e); process.exit(1); });
