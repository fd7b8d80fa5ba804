"""/docs works with no network: Swagger UI's files come from the service, not from a CDN."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from service.app import create_app
from service.config import Settings


class _Links(HTMLParser):
    """Every URL a page makes the browser fetch: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


@pytest.fixture
def client(tmp_path):
    # The page needs no database; the file is never opened.
    return create_app(Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}")).test_client()


def _fetched_by_docs_page(client) -> list[str]:
    page = client.get("/docs")
    assert page.status_code == 200
    links = _Links()
    links.feed(page.get_data(as_text=True))
    return links.urls


def test_the_docs_page_names_no_other_host(client):
    urls = _fetched_by_docs_page(client)

    assert urls, "the page loads no script or style at all"
    assert [url for url in urls if urlsplit(url).netloc or urlsplit(url).scheme] == []
    # Swagger UI would otherwise send the document to its online validator.
    assert '"validatorUrl": null' in client.get("/docs").get_data(as_text=True)


def test_every_file_the_docs_page_needs_is_served_by_the_service(client):
    expected_types = {".js": "text/javascript", ".css": "text/css"}
    for url in _fetched_by_docs_page(client):
        with client.get(url) as response:  # a file response: close it
            assert response.status_code == 200, url
            assert response.mimetype == expected_types[url[url.rindex(".") :]], url
            assert len(response.data) > 10_000, url  # the real bundle, not a stub
    with client.get("/docs/swagger-ui-bundle.js") as bundle:
        assert b"SwaggerUIBundle" in bundle.data


def test_a_missing_docs_file_is_a_problem_json_404(client):
    response = client.get("/docs/no-such-file.js")

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
