// Playwright configuration: Debian's Chromium (never a downloaded browser), one worker per
// core, and every test starting its own server on a free port with a fresh store.
const { defineConfig } = require('@playwright/test');

module.exports = defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: true,
  workers: 2,
  // In CI a test that fails is run once more, and one that then passes is reported as flaky
  // (by name, in the summary) rather than failing the run: on two cores shared by two
  // browsers and their servers, a few timing-bound steps (a worker's Web Lock outliving a
  // reload, in embed.spec's consent test) occasionally overrun. Locally nothing is retried.
  retries: process.env.CI ? 1 : 0,
  reporter: [['list']],
  use: {
    browserName: 'chromium',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    },
  },
});
