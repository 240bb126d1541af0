"""The web console in a real browser: headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium) against nginx + fcgiwrap serving the release binaries."""
import re
import time
from pathlib import Path

import pytest

from conftest import launch

selenium = pytest.importorskip("selenium")
from selenium.webdriver.common.by import By  # noqa: E402

from browser import (CSP, chromium, deploy_from_the_form, make_link, raw, session_cookie,  # noqa: E402
                     sign_in_with_token, wait_text, wait_url)


@pytest.fixture(scope="module")
def console():
    # Outbound delivery is off: deploys stay dispatching, as the overview should then show them.
    with launch((Path(__file__).parent / "draven.console.toml").read_text(), deliver="/bin/true") as s:
        yield s


def test_sign_in_with_a_token_and_the_overview_shows_an_api_deploy(console):
    r = console.deploy("alice", "shop", "demo", "develop", reason="console test <b>bold</b>")
    assert r.status == 201, r
    job = r.json["id"]
    with chromium() as driver:
        sign_in_with_token(driver, console, "alice")
        assert driver.current_url == console.url + "/ui/"
        cookie = session_cookie(driver)
        # Over plain HTTP (here http://127.0.0.1) draven sets neither Secure nor the __Host- prefix.
        assert cookie["name"] == "draven_session" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/" and not cookie["secure"]
        cell = driver.find_element(By.CSS_SELECTOR, "article[data-environment='shop/demo']")
        assert f"job {job}" in cell.text and "dispatching" in cell.text and "by alice" in cell.text
        assert "fencing token" in cell.text
        assert "console test <b>bold</b>" in cell.text  # shown as text, not markup
        assert driver.find_elements(By.CSS_SELECTOR, "article b") == []
        deadline = time.monotonic() + 10
        while driver.find_element(By.TAG_NAME, "html").get_attribute("data-live") != "1":  # the script ran
            assert time.monotonic() < deadline, "the console's script did not run"
            time.sleep(0.1)


def test_the_script_polls_with_etags_and_shows_new_deploys(console):
    with chromium() as driver:
        sign_in_with_token(driver, console, "bob")
        before = driver.find_element(By.CSS_SELECTOR, "article[data-environment='shop/prod']").text
        assert "v9.9.9" not in before
        time.sleep(6)  # at least one poll answered 304
        r = console.deploy("bob", "shop", "prod", "v9.9.9")
        assert r.status == 201 and r.json["state"] == "awaiting_approval", r
        cell = wait_text(driver, "v9.9.9", timeout=20, css="article[data-environment='shop/prod']")
        assert "v9.9.9" in cell and "0 of 2 approvals" in cell and "may approve: alice" in cell, cell
    time.sleep(0.2)
    log = (console.state_dir / "run" / "access.log").read_text()
    assert re.search(r'"GET /ui/ HTTP/1.1" 304 ', log), log[-2000:]


def test_sign_in_with_a_link_once(console):
    url = make_link(console, "carol")
    # A link-preview bot (a plain GET) uses nothing up.
    before = console.snapshot()
    status, headers, body = raw(console, "GET", url[len(console.url):])
    assert status == 200 and "Sign in as carol" in body and headers["referrer-policy"] == "no-referrer"
    assert console.snapshot() == before
    with chromium() as driver:
        driver.get(url)
        button = driver.find_element(By.CSS_SELECTOR, "main form button")
        assert button.text == "Sign in as carol"
        button.click()
        wait_text(driver, "Signed in as carol")
        # Used: the same link again is refused, in another browser too.
    with chromium() as other:
        other.get(url)
        text = wait_text(other, "already used, has expired")
        assert "Sign in as carol" not in text
    status, _, _ = raw(console, "POST", url[len(console.url):], body="x=1")
    assert status == 404
    assert console.rows("SELECT count(*) FROM sessions s JOIN people p ON p.id = s.person_id "
                        "WHERE p.handle = 'carol' AND s.method = 'link'")[0][0] == 1
    # The link's token is not in the access log.
    time.sleep(0.2)
    assert url.split("/ui/link/")[1] not in (console.state_dir / "run" / "access.log").read_text()


def test_an_expired_link_is_refused(console):
    url = make_link(console, "bob", ttl="1s")
    time.sleep(2.1)
    with chromium() as driver:
        driver.get(url)
        wait_text(driver, "already used, has expired")
        assert session_cookie(driver) is None


def test_sign_out_ends_the_session(console):
    with chromium() as driver:
        sign_in_with_token(driver, console, "alice")
        value = session_cookie(driver)["value"]
        driver.find_element(By.CSS_SELECTOR, "form[action='/ui/sign-out'] button").click()
        wait_text(driver, "API token")
        wait_url(driver, "/ui/sign-in")
        assert session_cookie(driver) is None
    status, headers, _ = raw(console, "GET", "/ui/", headers={"Cookie": f"draven_session={value}"})
    assert status == 303 and headers["location"] == "/ui/sign-in"


def test_a_revoked_session_is_refused(console):
    with chromium() as driver:
        sign_in_with_token(driver, console, "bob")
        value = session_cookie(driver)["value"]
        public_id = value.split("_")[1]
        listed = console.draven("sessions", "list").stdout
        assert public_id in listed and value.split("_", 2)[2] not in listed
        console.draven("sessions", "revoke", public_id)
        driver.get(console.url + "/ui/")
        wait_text(driver, "API token")
        wait_url(driver, "/ui/sign-in")
    assert "revoked" in console.draven("sessions", "list").stdout


def test_a_form_without_its_csrf_token_or_with_another_sessions_is_refused(console):
    with chromium() as one, chromium() as two:
        sign_in_with_token(one, console, "alice")
        sign_in_with_token(two, console, "alice")
        mine = session_cookie(one)["value"]
        theirs = two.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
        for body in ["", f"csrf={theirs}"]:
            before, refusals = console.snapshot(), console.refusals()
            status, headers, text = raw(console, "POST", "/ui/sign-out", body=body,
                                        headers={"Cookie": f"draven_session={mine}"})
            assert status == 403 and "CSRF token" in text and headers["content-security-policy"] == CSP
            assert console.snapshot() == before and console.refusals() == refusals + 1
        one.get(console.url + "/ui/")
        wait_text(one, "Signed in as alice")  # still signed in


def test_the_csp_and_other_headers_are_on_every_page(console):
    with chromium() as driver:
        sign_in_with_token(driver, console, "alice")
        cookie = {"Cookie": f"draven_session={session_cookie(driver)['value']}"}
        html = driver.page_source
    css = re.search(r'href="(/ui/assets/console-[0-9a-f]{16}\.css)"', html).group(1)
    js = re.search(r'src="(/ui/assets/console-[0-9a-f]{16}\.js)"', html).group(1)
    pages = [("GET", "/ui/", cookie), ("GET", "/ui/sign-in", {}), ("GET", "/ui/link/drl_0_x", {}),
             ("GET", "/ui/nowhere", cookie), ("GET", "/", {"Accept": "text/html"}), ("GET", css, {}),
             ("GET", js, {}), ("POST", "/ui/sign-in", {})]
    for method, path, headers in pages:
        status, h, _ = raw(console, method, path, body="token=x" if method == "POST" else None, headers=headers)
        assert h.get("content-security-policy") == CSP, (path, status, h)
        assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer", path
        if "/assets/" in path:
            assert status == 200 and h["cache-control"] == "public, max-age=31536000, immutable", path
        else:
            assert h["cache-control"] == "no-store", path
    # API clients keep the JSON index at /.
    assert console.request("GET", "/").json["service"] == "draven"


def test_a_person_without_a_read_grant_sees_nothing_of_a_project(console):
    r = console.deploy("bob", "vault", "secretenv", "refs/heads/hidden-branch")
    assert r.status == 201, r
    with chromium() as driver:
        sign_in_with_token(driver, console, "carol")
        text = driver.find_element(By.TAG_NAME, "main").text
        assert "demo" in text and "vault" not in text and "secretenv" not in text and "hidden-branch" not in text
        assert "prod" not in text
        assert "vault" not in driver.page_source
    with chromium() as driver:
        sign_in_with_token(driver, console, "dave")
        text = driver.find_element(By.TAG_NAME, "main").text
        assert "read grant" in text and "shop" not in text and "vault" not in text


def test_the_pages_work_without_javascript(console):
    url = make_link(console, "alice")
    with chromium(javascript=False) as driver:
        driver.get(console.url + "/")
        wait_text(driver, "API token")  # / sent the browser to the sign-in page
        driver.get(url)
        driver.find_element(By.CSS_SELECTOR, "main form button").click()
        wait_text(driver, "Signed in as alice")
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("data-live") is None  # no script ran
        r = console.deploy("alice", "shop", "demo", "develop", reason="no-js refresh")
        assert r.status == 201, r
        driver.find_element(By.LINK_TEXT, "Refresh").click()
        wait_text(driver, f"job {r.json['id']}")
        driver.find_element(By.CSS_SELECTOR, "form[action='/ui/sign-out'] button").click()
        wait_text(driver, "API token")


def test_deploy_from_the_form_and_a_refusal_next_to_the_field(console):
    with chromium() as driver:
        sign_in_with_token(driver, console, "bob")
        deploy_from_the_form(driver, "shop/prod", "refs/heads/main", "from the browser")
        wait_text(driver, "does not match")
        error = driver.find_element(By.ID, "ref-error")
        assert "prod accepts only tag v*" in error.text
        assert driver.find_element(By.ID, "ref").get_attribute("aria-describedby") == "ref-error"
        field = driver.find_element(By.ID, "ref")
        field.clear()
        field.send_keys("v2.0.0")
        driver.find_element(By.CSS_SELECTOR, "form[action='/ui/deploy'] button").click()
        wait_text(driver, "v2.0.0")
        wait_url(driver, "/ui/?done=deployed&job=")
        job = int(driver.current_url.split("job=")[1])
        cell = driver.find_element(By.CSS_SELECTOR, "article[data-environment='shop/prod']").text
        assert f"job {job}" in cell and "approvals" in cell, cell
    assert console.rows("SELECT state, reason FROM jobs WHERE id = ?", job) == [("awaiting_approval", "from the browser")]
