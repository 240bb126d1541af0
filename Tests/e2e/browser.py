"""What the console's browser tests share: a headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium), sign-in, waiting for a page, raw requests."""
import contextlib
import http.client
import re
import shutil
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CSP = ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@contextlib.contextmanager
def chromium(javascript=True, size=(400, 900), dark=False):
    """A headless Chromium with a profile of its own (no cookies), closed afterwards."""
    profile = tempfile.mkdtemp(prefix="draven-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}", "--no-first-run"]:
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    resize(driver, *size)
    if dark:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                               {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def resize(driver, width, height):
    """Sets the viewport (headless Chromium keeps its window at least 500 px wide: the size is emulated)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def raw(stack, method, path, body=None, headers=None):
    """One request, redirects not followed: (status, headers (lowercase names), body text)."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    hdrs = dict(headers or {})
    if body is not None:
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
    conn.request(method, path, body=body, headers=hdrs)
    r = conn.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode(errors="replace"))
    conn.close()
    return out


def sign_in_with_token(driver, stack, person):
    driver.get(stack.url + "/ui/sign-in")
    field = driver.find_element(By.ID, "token")
    assert driver.find_element(By.CSS_SELECTOR, "label[for=token]").text == "API token"
    field.send_keys(stack.tokens[person])
    driver.find_element(By.CSS_SELECTOR, "form[action='/ui/sign-in'] button").click()
    wait_text(driver, f"Signed in as {person}")


def wait_text(driver, text, timeout=15, css="body"):
    """Waits until the text of the element `css` (the whole page by default) holds `text`, across a
    navigation or the page's script swapping its <main> (meanwhile the element may be missing or
    stale for a moment). Returns that text."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        try:
            seen = driver.find_element(By.CSS_SELECTOR, css).text
        except WebDriverException:
            seen = ""
        if text in seen:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {css}: {seen!r}")


def deploy_from_the_form(driver, target, ref, reason, kind=None):
    """Opens the deploy form from the navigation, fills it in and posts it."""
    from selenium.webdriver.support.ui import Select
    driver.find_element(By.LINK_TEXT, "Deploy").click()
    wait_text(driver, "What each environment accepts")
    Select(driver.find_element(By.ID, "target")).select_by_value(target)
    driver.find_element(By.ID, "ref").send_keys(ref)
    if kind:
        Select(driver.find_element(By.ID, "ref_kind")).select_by_value(kind)
    driver.find_element(By.ID, "reason").send_keys(reason)
    driver.find_element(By.CSS_SELECTOR, "form[action='/ui/deploy'] button").click()


def wait_url(driver, part, timeout=15):
    deadline = time.monotonic() + timeout
    while part not in driver.current_url:
        if time.monotonic() > deadline:
            try:
                body = driver.find_element(By.TAG_NAME, "body").text
            except WebDriverException:
                body = ""
            raise AssertionError(f"{part!r} not in {driver.current_url}; the page says: {body!r}")
        time.sleep(0.1)


def session_cookie(driver):
    cookies = {c["name"]: c for c in driver.get_cookies()}
    return cookies.get("draven_session") or cookies.get("__Host-draven_session")


def make_link(stack, person, ttl="15m"):
    out = stack.draven("console", "link", "--person", person, "--ttl", ttl, "--url", stack.url)
    url = out.stdout.strip()
    assert re.fullmatch(re.escape(stack.url) + r"/ui/link/drl_[0-9a-f]{12}_[A-Za-z0-9_-]+", url), out
    return url
