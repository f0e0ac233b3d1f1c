// Drives the chat example in headless Chromium: two pages join the same room, and each sees the
// other's message, direct message and presence. Run by .ci/run with the chat example already
// listening:
//
//   node tests/browser/chat.mjs http://127.0.0.1:PORT/
//
// Given a second address (another chat process sharing the first one's Redis), the second page
// opens there: the two processes must be one chat.
//
// Needs Debian's chromium (/usr/bin/chromium) and `npm ci` in this folder.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.argv[2];
const otherBase = process.argv[3] ?? base;
if (!base) {
  console.error("usage: node chat.mjs http://127.0.0.1:PORT/ [http://127.0.0.1:OTHER_PORT/]");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const profile = mkdtempSync(join(tmpdir(), "switchboard-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
context.setDefaultTimeout(15000);

async function openAs(name, room, url = base) {
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`[${name}] page error: ${error}`));
  await page.goto(url);
  await page.waitForSelector('#state[data-state="open"]');
  await page.fill("#name", name);
  await page.fill("#room", room);
  await page.click("#join-button");
  return page;
}

async function members(page) {
  return (await page.locator("#members li").allTextContents()).sort();
}

async function waitForMembers(page, expected) {
  await page.waitForFunction(
    (want) => [...document.querySelectorAll("#members li")].map((li) => li.textContent).sort().join(",") === want,
    [...expected].sort().join(","),
  );
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

async function waitForMessage(page, from, text) {
  await page.waitForFunction(
    ([who, what]) => [...document.querySelectorAll("#messages li")].some(
      (li) => li.querySelector(".from")?.textContent === who && li.textContent.endsWith(what)),
    [from, text],
  );
}

let failed = false;
try {
  const alice = await openAs("alice", "lobby");
  await waitForMembers(alice, ["alice"]);
  const bob = await openAs("bob", "lobby", otherBase);
  await waitForMembers(alice, ["alice", "bob"]);
  await waitForMembers(bob, ["alice", "bob"]);

  await say(alice, "hello from alice ✓");
  await waitForMessage(bob, "alice", "hello from alice ✓");
  await waitForMessage(alice, "alice", "hello from alice ✓");
  await say(bob, "hi alice, bob here");
  await waitForMessage(alice, "bob", "hi alice, bob here");
  await say(alice, "/msg bob just for you");
  await waitForMessage(bob, "alice → bob", "just for you");
  await waitForMessage(alice, "alice → bob", "just for you");

  await bob.close();
  await waitForMembers(alice, ["alice"]);
  // The chat turns permessage-deflate on: Chromium's own offer was taken and messages were
  // compressed (the server counts each message it deflated).
  const metrics = await (await fetch(new URL("metrics", base))).text();
  const compressed = Number(/^switchboard_compressions_total (\d+)$/m.exec(metrics)?.[1] ?? 0);
  if (!(compressed > 0)) throw new Error(`no message was compressed (compressions_total ${compressed})`);
  const where = otherBase === base ? "one process" : "two processes";
  console.log(`browser test (${where}): OK (members seen by alice at the end: ${await members(alice)}; ` +
    `${compressed} messages compressed by the first server)`);
} catch (error) {
  failed = true;
  console.error(`browser test: FAILED: ${error.message}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
