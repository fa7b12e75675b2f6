"""Browser tests' support: Debian's Chromium driven by Playwright, axe-core from npm."""
