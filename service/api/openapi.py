"""flask-smorest, set up so the generated OpenAPI document is the API's contract."""

from __future__ import annotations

import http
from typing import Any

from flask import Blueprint, Flask
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from swagger_ui_bundle import swagger_ui_path
from werkzeug.routing import PathConverter, UnicodeConverter

from service.api.security import RATE_LIMITED_HEADERS, SECURITY_SCHEME
from service.errors import PROBLEM_CONTENT_TYPE, render_http_exception
from service.money import currency_exponent
from service.schemas.problems import Problem
from service.schemas.records import ATTRIBUTE_NAME, SPEND_DAYS
from service.schemas.rules import STORABLE_PATTERN, amount, trimmed_code

API_SETTINGS: dict[str, Any] = {
    "API_TITLE": "customer-metrics",
    "API_VERSION": "1.0.0",
    "OPENAPI_VERSION": "3.1.0",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    # Served by the service itself (swagger_ui_assets below), so /docs works offline and
    # behind a firewall; no validator either, as it would send the document to a remote host.
    "OPENAPI_SWAGGER_UI_URL": "/docs/",
    "OPENAPI_SWAGGER_UI_CONFIG": {"validatorUrl": None},
    "API_SPEC_OPTIONS": {
        "info": {
            "description": (
                "Ingests a shop's customers, orders and acquisition spend, and answers "
                "customer metrics. Every error is application/problem+json (RFC 9457)."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
    },
}


# Headers some problems carry, documented on their response.
PROBLEM_HEADERS = {http.HTTPStatus.TOO_MANY_REQUESTS: RATE_LIMITED_HEADERS}


class ServiceApi(Api):  # type: ignore[misc]
    """Errors documented and rendered as problem+json rather than flask-smorest's JSON."""

    ERROR_SCHEMA = Problem

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            if status >= 400:
                self._register_problem(status.name, status.phrase, PROBLEM_HEADERS.get(status))
        self._register_problem("DEFAULT_ERROR", "Unexpected error")

    def _register_problem(
        self, name: str, description: str, headers: dict[str, Any] | None = None
    ) -> None:
        response = {"description": description, "schema": self.ERROR_SCHEMA}
        if headers:
            response["headers"] = headers
        prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
        self.spec.components.response(name, response, lazy=True)

    def _register_pagination_header(self) -> None:
        """We paginate with cursors and Link headers, not flask-smorest's page numbers."""

    def handle_http_exception(self, error: Any) -> Any:
        return render_http_exception(error)


# Webhooks carry no API key: the sender's signature over the raw body is the credential.
WEBHOOK_SIGNATURES = (
    ("ShopifyHmac", "X-Shopify-Hmac-Sha256", "base64 HMAC-SHA256 of the body, app secret."),
    ("WooCommerceSignature", "X-WC-Webhook-Signature", "base64 HMAC-SHA256 of the body."),
    (
        "StandardWebhooksSignature",
        "webhook-signature",
        "Standard Webhooks v1: HMAC-SHA256 of id.timestamp.body with the whsec_ secret.",
    ),
)


# Swagger UI's JavaScript and CSS, from the swagger-ui-bundle-v2 package, at /docs/<file>.
swagger_ui_assets = Blueprint(
    "swagger_ui", __name__, static_folder=str(swagger_ui_path), static_url_path="/docs"
)


def make_api(app: Flask) -> ServiceApi:
    app.config.update(API_SETTINGS)
    app.register_blueprint(swagger_ui_assets)
    api = ServiceApi(app)
    # Path parameters follow the rule every parameter does (service.api.parameters).
    for converter in (UnicodeConverter, PathConverter):
        api.register_converter(converter, _storable_path_text)
    api.spec.components.security_scheme("ApiKey", SECURITY_SCHEME)
    for name, header, how in WEBHOOK_SIGNATURES:
        scheme = {"type": "apiKey", "in": "header", "name": header, "description": how}
        api.spec.components.security_scheme(name, scheme)
    return api


def _storable_path_text(_: Any) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "pattern": STORABLE_PATTERN}


def describe_records(api: ServiceApi, reporting_currency: str) -> None:
    """What marshmallow metadata cannot carry into the record schemas: the one currency
    taken and its places, spend's choice of days, the attribute names' rule.
    Call it once the blueprints are registered."""
    schemas = api.spec.components.schemas
    exponent = currency_exponent(reporting_currency) or 0
    for name, amounts in (("OrderIn", ("total", "refunded")), ("SpendIn", ("amount",))):
        properties = schemas[name]["properties"]
        properties["currency"]["pattern"] = trimmed_code([reporting_currency])
        for field in amounts:
            properties[field].update(amount(exponent, nullable=field == "refunded"))
    schemas["SpendIn"].update(SPEND_DAYS)
    schemas["CustomerIn"]["properties"]["attributes"]["propertyNames"] = ATTRIBUTE_NAME
