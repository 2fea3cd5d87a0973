"""The dashboard in a real headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium) against `ccs up` with the test agent.

Run by scripts/browser-test.sh, which builds ccs and the test agent and sets
CCS_BIN, CCS_TEST_AGENT and CCS_SCREENSHOTS. Each check is a function; the
script prints `N passed, M failed` and exits non-zero on any failure.

What it proves, as a person would see it: sign-in through the one-time link
`ccs up` prints and with an API key; a read-only key sees no action button;
filtering executions puts the filter in the URL, and the URL gives the same
page back; a running execution's conversation grows on the page without a
reload (EventSource), and its cancel button stops it; a workflow's approval
gate is approved from its page; a killed queue job is retried from the
queues page. Every page is saved as a screenshot.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

CCS = os.environ["CCS_BIN"]
AGENT = os.environ["CCS_TEST_AGENT"]
SHOTS = os.environ.get("CCS_SCREENSHOTS", "docs/screenshots")
WAIT = 60

GATED = """
name: gated
agents:
  - name: build
    prompt: "build it @turns=2"
    next: deploy
  - name: deploy
    prompt: "deploy it"
    action: deploy
workflow:
  safety:
    requireHumanApprovalFor:
      - action: deploy
"""


def free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Service_:
    """`ccs up` on SQLite in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ccs-browser-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.pop("CCS_DATABASE_URL", None)
        env.update(
            CCS_DATA_DIR=self.dir,
            CCS_AGENT_COMMAND=AGENT,
            RUST_LOG="warn",
        )
        self.env = env
        self.proc = subprocess.Popen(
            [CCS, "up", "--listen", f"127.0.0.1:{self.port}"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.key = self.link = None
        deadline = time.time() + WAIT
        while (self.key is None or self.link is None) and time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("ccs up exited")
            if line.startswith("admin api key: "):
                self.key = line.split(": ", 1)[1].strip()
            if line.startswith("dashboard sign-in link"):
                self.link = line.rsplit(" ", 1)[1].strip()
        assert self.key and self.link, "ccs up printed no key or link"

    def api(self, method, path, body=None, key=None):
        req = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Bearer {key or self.key}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(req) as res:
                return res.status, json.loads(res.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def cli(self, *args):
        return subprocess.run(
            [CCS, *args], env=self.env, capture_output=True, text=True, check=True
        ).stdout.strip()

    def submit(self, prompt, project="demo"):
        status, body = self.api(
            "POST", "/api/v1/executions", {"project": project, "prompt": prompt}
        )
        assert status == 202, body
        return body["executionId"]

    def wait_status(self, path, wanted):
        deadline = time.time() + WAIT
        while time.time() < deadline:
            _, body = self.api("GET", path)
            if body and body.get("status") in wanted:
                return body
            time.sleep(0.2)
        raise AssertionError(f"{path} never reached {wanted}: {body}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def browser():
    options = Options()
    options.binary_location = os.environ.get("CCS_CHROMIUM", "/usr/bin/chromium")
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ]:
        options.add_argument(arg)
    service = Service(os.environ.get("CCS_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(WAIT)
    return driver


def shot(driver, name):
    os.makedirs(SHOTS, exist_ok=True)
    # The whole page, not only the window.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(800, min(height + 40, 2400)))
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))
    driver.set_window_size(1400, 1000)


def wait(driver, cond, what):
    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.2).until(lambda d: cond(d))
    except Exception as e:
        raise AssertionError(f"timed out waiting for {what}") from e


def buttons(driver):
    return [b.text for b in driver.find_elements(By.CSS_SELECTOR, "main button")]


def main():
    svc = Service_()
    driver = None
    results = []

    def check(name, fn):
        try:
            fn()
            results.append((name, None))
            print(f"ok   {name}", flush=True)
        except Exception:
            results.append((name, traceback.format_exc()))
            print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)

    try:
        project_dir = tempfile.mkdtemp(prefix="ccs-project-")
        status, body = svc.api(
            "POST", "/api/v1/projects", {"name": "demo", "path": project_dir}
        )
        assert status == 201, body
        gated_dir = tempfile.mkdtemp(prefix="ccs-gated-")
        status, body = svc.api(
            "POST",
            "/api/v1/projects",
            {"name": "gated", "path": gated_dir, "workflowConfig": GATED},
        )
        assert status == 201, body
        read_key = svc.cli("api-key", "create", "--name", "viewer", "--permission", "read")
        done = [svc.submit(f"warm up {i} @turns=2 @cost=0.0{i + 1}") for i in range(4)]
        failed = svc.submit("this one breaks @fail")
        for e in done + [failed]:
            svc.wait_status(f"/api/v1/executions/{e}", ["succeeded", "failed"])
        driver = browser()
        state = {}

        def sign_in_with_link():
            driver.get(svc.link)
            wait(driver, lambda d: d.find_elements(By.ID, "queues"), "the overview")
            assert "admin" in driver.find_element(By.CSS_SELECTOR, ".who").text
            assert len(driver.find_elements(By.CSS_SELECTOR, "svg.chart")) == 2
            shot(driver, "overview")
            # The link is spent: a second browser session cannot use it.
            driver.delete_all_cookies()
            driver.get(svc.link)
            assert "used already" in driver.page_source

        def read_only_key_sees_no_buttons():
            driver.delete_all_cookies()
            driver.get(svc.base + "/ui/")
            wait(driver, lambda d: d.find_elements(By.ID, "key"), "the sign-in form")
            shot(driver, "sign-in")
            driver.find_element(By.ID, "key").send_keys(read_key)
            driver.find_element(By.CSS_SELECTOR, "form.login button").click()
            wait(driver, lambda d: d.find_elements(By.ID, "queues"), "the overview")
            assert "read-only" in driver.find_element(By.CSS_SELECTOR, ".who").text
            driver.get(f"{svc.base}/ui/executions/{failed}")
            assert buttons(driver) == [], buttons(driver)
            driver.get(f"{svc.base}/ui/queues?status=Done")
            assert buttons(driver) == [], buttons(driver)
            assert not driver.find_elements(By.CSS_SELECTOR, "input[type=checkbox]")

        def sign_in_with_a_key():
            driver.delete_all_cookies()
            driver.get(svc.base + "/ui/executions")
            driver.find_element(By.ID, "key").send_keys(svc.key)
            driver.find_element(By.CSS_SELECTOR, "form.login button").click()
            wait(driver, lambda d: d.find_elements(By.ID, "executions"), "the executions list")
            assert driver.current_url.endswith("/ui/executions")

        def filter_executions_and_follow_the_url():
            Select(driver.find_element(By.NAME, "status")).select_by_value("failed")
            driver.find_element(By.CSS_SELECTOR, "form.filters button").click()
            wait(driver, lambda d: "status=failed" in d.current_url, "the filter in the URL")
            rows = driver.find_elements(By.CSS_SELECTOR, "#executions tbody tr")
            assert len(rows) == 1 and "this one breaks" in rows[0].text, [r.text for r in rows]
            url = driver.current_url
            shot(driver, "executions-failed")
            driver.get(svc.base + "/ui/")
            driver.get(url)
            rows = driver.find_elements(By.CSS_SELECTOR, "#executions tbody tr")
            assert len(rows) == 1 and "this one breaks" in rows[0].text
            driver.get(svc.base + "/ui/executions?q=warm+up")
            rows = driver.find_elements(By.CSS_SELECTOR, "#executions tbody tr")
            assert len(rows) == 4, [r.text for r in rows]
            shot(driver, "executions")
            driver.get(f"{svc.base}/ui/executions/{done[3]}")
            assert driver.find_elements(By.CSS_SELECTOR, "#conversation .tool")
            shot(driver, "execution")

        def watch_a_run_grow_live_then_cancel_it():
            running = svc.submit("a long one @turns=40 @sleep=30 @cost=0.5")
            svc.wait_status(f"/api/v1/executions/{running}", ["running"])
            driver.get(f"{svc.base}/ui/executions/{running}")
            box = driver.find_element(By.ID, "conversation")
            assert box.get_attribute("data-events"), "a running execution is not live"
            turns = lambda: len(driver.find_elements(By.CSS_SELECTOR, "#conversation .turn"))
            first = turns()
            # No reload: the same document, more turns, updated by the script.
            driver.execute_script("window.__same_page = true")
            wait(driver, lambda d: turns() >= first + 3, "the conversation to grow")
            assert driver.execute_script("return window.__same_page === true")
            assert driver.find_element(By.ID, "conversation").get_attribute("data-updated")
            shot(driver, "execution-live")
            driver.find_element(By.CSS_SELECTOR, "button[value=cancel]").click()
            alert = wait(driver, lambda d: d.switch_to.alert, "the confirmation")
            alert.accept()
            svc.wait_status(f"/api/v1/executions/{running}", ["cancelled"])
            wait(
                driver,
                lambda d: "cancelled" in d.find_element(By.CSS_SELECTOR, ".toolbar").text,
                "the page to show the cancellation",
            )

        def approve_a_workflow_gate():
            status, body = svc.api(
                "POST", "/api/v1/workflows", {"project": "gated", "context": {}}
            )
            assert status == 202, body
            run = body["workflowId"]
            svc.wait_status(f"/api/v1/workflows/{run}", ["awaiting_approval"])
            driver.get(f"{svc.base}/ui/workflows/{run}")
            assert "approve" in buttons(driver), buttons(driver)
            shot(driver, "workflow-gate")
            driver.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
            svc.wait_status(f"/api/v1/workflows/{run}", ["succeeded"])
            driver.get(f"{svc.base}/ui/workflows/{run}")
            assert "succeeded" in driver.find_element(By.CSS_SELECTOR, ".toolbar").text
            shot(driver, "workflow")
            driver.get(f"{svc.base}/ui/workflows")
            shot(driver, "workflows")

        def retry_a_killed_job_from_the_queues_page():
            # Hold the queue: a job that waits on a project over its
            # concurrency is not claimable in time; instead kill one that is
            # still pending through the API, then retry it on the page.
            for attempt in range(20):
                e = svc.submit("to be killed @sleep=1")
                _, jobs = svc.api("GET", "/api/v1/queues/ccs::executions/jobs?status=Pending")
                pending = [j for j in jobs["jobs"] if j["args"].get("executionId") == e]
                if pending:
                    status, _ = svc.api(
                        "POST", f"/api/v1/queues/ccs::executions/jobs/{pending[0]['id']}/kill"
                    )
                    if status == 202:
                        state["killed"] = (pending[0]["id"], e)
                        break
            assert "killed" in state, "no job stayed pending long enough to kill"
            job, execution = state["killed"]
            driver.get(f"{svc.base}/ui/queues?queue=ccs::executions&status=Killed")
            row = driver.find_element(By.CSS_SELECTOR, f"tr[data-job='{job}']")
            shot(driver, "queues")
            row.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
            driver.find_element(By.CSS_SELECTOR, "button[value=retry]").click()
            wait(driver, lambda d: "1 job(s) changed" in d.page_source, "the retry notice")
            svc.wait_status(f"/api/v1/executions/{execution}", ["succeeded"])

        def remaining_pages():
            for path, name in [
                ("/ui/projects", "projects"),
                ("/ui/api-keys", "api-keys"),
                ("/ui/notifications", "notifications"),
                ("/ui/", "overview"),
            ]:
                driver.get(svc.base + path)
                assert driver.find_elements(By.CSS_SELECTOR, "main h1"), path
                shot(driver, name)

        for name, fn in [
            ("sign in with the one-time link", sign_in_with_link),
            ("a read-only key sees no buttons", read_only_key_sees_no_buttons),
            ("sign in with an API key", sign_in_with_a_key),
            ("filter executions and follow the URL", filter_executions_and_follow_the_url),
            ("watch a run grow live, then cancel it", watch_a_run_grow_live_then_cancel_it),
            ("approve a workflow gate", approve_a_workflow_gate),
            ("retry a killed job from the queues page", retry_a_killed_job_from_the_queues_page),
            ("every other page", remaining_pages),
        ]:
            check(name, fn)
    finally:
        if driver is not None:
            driver.quit()
        svc.stop()
    failed_n = sum(1 for _, err in results if err)
    print(f"{len(results) - failed_n} passed, {failed_n} failed")
    return 1 if failed_n else 0


if __name__ == "__main__":
    sys.exit(main())
