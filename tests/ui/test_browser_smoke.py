"""The skeleton in a real browser: the home page loads with its stylesheet and script, passes
axe-core, runs no inline script, and the sign-in form signs in and out."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.browser import Browser
from tests.ui.conftest import Site


def test_home_in_the_browser(site: Site, browser: Browser) -> None:
    browser.open(site.url + "/")
    assert browser.title == "Indexes · headwater"
    rows = browser.driver.find_elements(By.CSS_SELECTOR, "tbody th[scope=row]")
    assert [r.text.split()[0] for r in rows] == ["all", "main", "secret"]
    # The stylesheet applied (the header has its panel colour, not the default transparent).
    header = browser.driver.find_element(By.CSS_SELECTOR, "header.site")
    assert header.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)"
    assert browser.axe() == []
    assert browser.csp_violations() == []
    assert browser.pwned() is None
    browser.screenshot("home")


def test_sign_in_and_out(site: Site, browser: Browser) -> None:
    browser.open(site.url + "/ui/signin")
    browser.driver.find_element(By.ID, "token").send_keys(site.admin)
    browser.driver.find_element(By.CSS_SELECTOR, "main form button").click()
    assert browser.driver.find_element(By.CSS_SELECTOR, ".account strong").text == "admin"
    cookie = browser.driver.get_cookie("headwater_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert browser.run("return document.cookie;") == ""  # no script can read it
    browser.screenshot("signed-in")
    browser.driver.find_element(By.CSS_SELECTOR, ".account button").click()
    assert browser.driver.get_cookie("headwater_session") is None
    assert "Sign in" in browser.driver.find_element(By.CSS_SELECTOR, ".account").text
