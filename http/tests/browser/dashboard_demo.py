"""The dashboard in a real browser: Debian's headless Chromium, driven through `hookd demo`.

Starts `hookd demo` on a database of its own, signs in with the demo app's key, takes the demo
receiver down until deliveries dead-letter and the endpoint's circuit opens, opens a dead letter's
history, brings the receiver back, redrives every dead letter and waits until none is left; then
checks the page at phone width, that no secret reached the page, that the browser logged no
error, and that the admin token sees every app. Each state is saved as a screenshot.

    python3 http/tests/browser/dashboard_demo.py --hookd target/debug/hookd \\
        --database-url postgres://... --screenshots DIR

scripts/test runs it (and installs Chromium, chromedriver and selenium when missing).
"""

import argparse
import base64
import os
import queue
import re
import secrets
import subprocess
import sys
import threading
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Tall enough that a screenshot holds the whole page, dead letters and endpoints included.
DESKTOP = (1280, 2300)


class Demo:
    """A `hookd demo` process, and what it printed: the API's URL and the demo app's key."""

    def __init__(self, hookd, database_url, log_path):
        self.admin_token = secrets.token_urlsafe(24)
        env = dict(
            os.environ,
            DATABASE_URL=database_url,
            HOOKD_LISTEN="127.0.0.1:0",
            HOOKD_ADMIN_TOKEN=self.admin_token,
            HOOKD_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
            # Twice the default, so an outage dead-letters within seconds.
            HOOKD_DEMO_RATE="10",
            HOOKD_LOG="warn",
        )
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [hookd, "demo"], env=env, stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        lines = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        self.url = self.key = None
        deadline = time.monotonic() + 60
        while self.url is None or self.key is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.process.poll() is not None:
                self.stop()
                raise AssertionError(f"hookd demo did not start; see {log_path}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line.startswith("hookd listening on "):
                self.url = line.split()[-1]
            elif line.startswith("demo app key: "):
                self.key = line.split()[-1]

    def _pump(self, lines):
        for line in self.process.stdout:
            lines.put(line.strip())

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class Page:
    """The dashboard in Chromium, with waits that name what they waited for."""

    def __init__(self, url, screenshots):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.url = url
        self.screenshots = screenshots
        os.makedirs(screenshots, exist_ok=True)

    def quit(self):
        self.driver.quit()

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def count(self, css):
        return len(self.driver.find_elements(By.CSS_SELECTOR, css))

    def text(self, css):
        return self.find(css).text.strip()

    def visible(self, css):
        found = self.driver.find_elements(By.CSS_SELECTOR, css)
        return bool(found) and found[0].is_displayed()

    def click(self, css, what=None):
        """Clicks the first match, again if a refresh rebuilt it under us."""
        def attempt():
            self.find(css).click()
            return True

        self.wait(what or f"a click on {css}", attempt, timeout=10)

    def wait(self, what, condition, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if condition():
                    return
            except StaleElementReferenceException:
                pass  # a row was rebuilt under us; look again
            if time.monotonic() > deadline:
                self.shot("failed")
                raise AssertionError(f"waited {timeout} s for: {what} (screenshot failed.png)")
            time.sleep(0.25)

    def number(self, css):
        """The number a tile shows ("12.5/s", "75.0%", "3"), or None for a dash."""
        match = re.search(r"-?\d+(\.\d+)?", self.text(css))
        return float(match.group()) if match else None

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(self.screenshots, f"{name}.png"))

    def sign_in(self, key):
        self.driver.get(f"{self.url}/dashboard")
        self.wait("the sign-in form", lambda: self.visible("#signin-token"))
        self.find("#signin-token").send_keys(key)
        self.click("#signin-submit")
        self.wait("the live badge", lambda: self.text("#live") == "live", timeout=15)


def run(demo, page):
    page.sign_in(demo.key)

    # Steady traffic: deliveries arrive, the rates move, the demo panel shows the receiver up.
    page.wait("the demo panel", lambda: page.visible("#demo"))
    page.wait("the receiver shown up", lambda: page.text("#demo-mode") == "receiver is up")
    page.wait("a delivered rate above zero", lambda: (page.number("#stat-delivered") or 0) > 0)
    page.wait("recent deliveries, succeeded",
              lambda: page.count("#recent tr[data-delivery-id] .state-succeeded") >= 5)
    page.wait("the demo endpoint with a closed circuit",
              lambda: page.count("#endpoints-table .circuit-closed") == 1)
    assert page.count("#dead-table tr[data-delivery-id]") == 0, "dead letters before any outage"
    page.wait("a success ratio of 100 %", lambda: page.number("#stat-success") == 100.0)
    page.wait("the receiver's count of accepted webhooks",
              lambda: re.search(r"[1-9]\d* accepted", page.text("#demo-counts")))
    assert "0 with a bad signature" in page.text("#demo-counts"), page.text("#demo-counts")
    page.shot("ui-live")

    # Outage: attempts fail, retries back off, deliveries exhaust them and dead-letter, and the
    # endpoint's circuit opens.
    page.click("#demo-down")
    page.wait("the receiver shown down", lambda: page.text("#demo-mode") == "receiver is down")
    page.wait("failed attempts", lambda: (page.number("#stat-failed") or 0) > 0)
    page.wait("a dead letter in the list",
              lambda: page.count("#dead-table tr[data-delivery-id]") >= 1)
    page.wait("the dead count tile", lambda: (page.number("#queue-dead") or 0) >= 1)
    page.wait("the endpoint's circuit open",
              lambda: page.count("#endpoints-table .circuit-open") == 1)
    page.wait("new deliveries parked behind the open circuit",
              lambda: page.count("#recent tr[data-delivery-id] .state-parked") >= 1)
    page.wait("a success ratio under 100 %", lambda: (page.number("#stat-success") or 100) < 100)
    page.shot("ui-outage")

    # A dead letter's history: every attempt, each refused with 503, then the dead-lettering.
    page.click("#dead-table tr[data-delivery-id] td", "a click on a dead letter")
    page.wait("the history panel", lambda: page.visible("#history"))
    page.wait("four attempts in the history",
              lambda: page.count("#history-entries .kind-attempt_failed") >= 4)
    history = page.text("#history-entries")
    assert "503" in history, history
    assert page.count("#history-summary .state-dead") == 1, page.text("#history-summary")
    page.driver.execute_script("document.getElementById('history').scrollIntoView()")
    page.shot("ui-history")
    page.click("#history-close")

    # Recovery: the receiver comes back, the circuit's next probe closes it, the parked
    # deliveries go out, and a redrive brings the dead letters home.
    page.click("#demo-up")
    page.wait("the receiver shown up again", lambda: page.text("#demo-mode") == "receiver is up")
    page.wait("the circuit closed after a probe",
              lambda: page.count("#endpoints-table .circuit-closed") == 1, timeout=40)
    page.wait("no parked deliveries", lambda: page.number("#queue-parked") == 0, timeout=30)
    dead = page.count("#dead-table tr[data-delivery-id]")
    page.click("#redrive-all")
    page.wait("the redrive confirmation",
              lambda: re.fullmatch(r"[1-9]\d* redriven", page.text("#message")))
    redriven = int(page.text("#message").split()[0])
    assert redriven >= dead, f"{redriven} redriven, {dead} were listed"
    page.wait("an empty dead-letter list", lambda: page.visible("#dead-empty"))
    page.wait("no dead deliveries", lambda: page.number("#queue-dead") == 0)
    page.wait("nothing pending", lambda: page.number("#queue-pending") == 0)
    page.shot("ui-redriven")

    # A phone: one column, nothing wider than the screen.
    page.driver.set_window_size(360, 2000)
    page.wait("the page within 360 px",
              lambda: page.driver.execute_script(
                  "return document.documentElement.scrollWidth") <= 360)
    page.shot("ui-phone")
    page.driver.set_window_size(*DESKTOP)

    # No secret on the page: neither the key it signed in with nor any signing secret, in the
    # markup, the text shown, or a form field (the key lives in sessionStorage, by design).
    shown = page.driver.execute_script(
        "return [document.documentElement.outerHTML, document.body.innerText,"
        " ...Array.from(document.querySelectorAll('input, textarea'), (e) => e.value)]"
        ".join('\\n')")
    assert demo.key not in shown, "the API key is on the page"
    assert "whsec_" not in shown, "a signing secret is on the page"

    # The admin token sees every app, and no app-only section.
    page.click("#signout")
    page.sign_in(demo.admin_token)
    page.wait("the admin scope", lambda: page.text("#scope") == "admin: all apps")
    page.wait("the demo app in the app list",
              lambda: "demo" in page.text("#apps-table"))
    assert not page.visible("#dead-letters"), "the admin sees an app's dead letters"

    errors = [e for e in page.driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, f"the browser logged errors: {errors}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hookd", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--screenshots", required=True)
    args = parser.parse_args()

    os.makedirs(args.screenshots, exist_ok=True)
    log_path = os.path.join(args.screenshots, "hookd-demo.log")
    demo = page = None
    try:
        demo = Demo(args.hookd, args.database_url, log_path)
        page = Page(demo.url, args.screenshots)
        run(demo, page)
    except Exception as failure:  # an assertion, or Selenium's own errors: both fail the test
        print(f"dashboard browser test FAILED: {failure!r}", file=sys.stderr)
        print(f"  hookd's log: {log_path}", file=sys.stderr)
        return 1
    finally:
        if page is not None:
            page.quit()
        if demo is not None:
            demo.stop()
    print(f"dashboard browser test passed; screenshots in {args.screenshots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
