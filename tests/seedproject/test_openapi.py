"""The OpenAPI contract: generated without errors or warnings, complete, served, and its docs page offline."""

import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema() -> dict:
    GENERATOR_STATS.reset()  # its counts are per process: start from none
    document = SchemaGenerator().get_schema(request=None, public=True)
    warnings, errors = dict(GENERATOR_STATS._warn_cache), dict(GENERATOR_STATS._error_cache)
    assert not errors, f"schema generation errors: {list(errors)}"
    assert not warnings, f"schema generation warnings: {list(warnings)}"
    return document


def _api_routes() -> dict[str, set[str]]:
    """Every URL pattern under /api/v1/ -> the HTTP methods its view serves, read from the URLconf itself."""
    routes: dict[str, set[str]] = {}

    def walk(patterns, prefix: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern) and route.startswith("api/v1/"):
                view = entry.callback.view_class
                path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
                routes[path] = {m for m in HTTP_METHODS if hasattr(view, m)}

    walk(get_resolver().url_patterns, "")
    return routes


def test_schema_generates_and_validates_without_errors_or_warnings(schema):
    validate_schema(schema)  # raises on anything that is not valid OpenAPI 3
    assert schema["openapi"].startswith("3.")


def test_every_api_route_and_method_is_documented(schema):
    routes = _api_routes()
    assert len(routes) >= 20  # the walk found the instances and collaboration URLconfs
    documented = {path: {m for m in item if m in HTTP_METHODS} for path, item in schema["paths"].items()}
    for path, methods in routes.items():
        assert path in documented, f"{path} is missing from the schema"
        assert documented[path] == methods, f"{path}: serves {sorted(methods)}, documents {sorted(documented[path])}"


def test_error_body_component_and_every_error_response_uses_it(schema):
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"success", "error", "code", "details"}
    assert error["properties"]["details"]["type"] == "object"
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            statuses = set(operation["responses"])
            assert statuses & {"200", "201"}, f"{method} {path} documents no success response"
            for status, response in operation["responses"].items():
                ref = response["content"]["application/json"]["schema"]["$ref"]
                if int(status) >= 400:
                    assert ref == "#/components/schemas/Error", f"{method} {path} {status}"
                else:
                    assert ref != "#/components/schemas/Error"


def test_operations_read_well_and_are_tagged(schema):
    operations = [op for item in schema["paths"].values() for m, op in item.items() if m in HTTP_METHODS]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", op_id) for op_id in ids), ids
    tags = {tag for op in operations for tag in op["tags"]}
    assert tags == {"instances", "cluster", "employees", "messages", "conversations", "stats"}


def test_path_parameters_are_typed(schema):
    params = {
        p["name"]: p["schema"]
        for item in schema["paths"].values()
        for op in item.values()
        if isinstance(op, dict)
        for p in op.get("parameters", [])
        if p["in"] == "path"
    }
    for name in ("instance_id", "message_id", "conversation_id"):
        assert params[name] == {"type": "string", "format": "uuid"}
    assert params["employee_id"]["pattern"].startswith("^[A-Za-z0-9]")


def test_query_parameters_of_lists_and_loadbalance(schema):
    def query(path: str) -> set[str]:
        operation = schema["paths"][f"/api/v1/{path}"]["get"]
        return {p["name"] for p in operation["parameters"] if p["in"] == "query"}

    assert query("multi-instance/instances") == {"status", "limit", "offset"}
    assert query("multi-instance/instances/loadbalance") == {"strategy", "exclude"}
    assert query("collaboration/employees/{employee_id}/messages") == {"status", "limit", "offset"}


def test_bearer_token_security_scheme(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http"
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert "emp_" in schemes["bearerAuth"]["description"]
    register = schema["paths"]["/api/v1/collaboration/employees/register"]["post"]
    assert {"bearerAuth": []} in register["security"]


def test_schema_route_serves_openapi_3(api):
    response = api.get("/api/schema/")
    assert response.status_code == 200
    document = yaml.safe_load(response.content)
    assert document["openapi"].startswith("3.")
    assert "/api/v1/multi-instance/instances" in document["paths"]
    as_json = api.get("/api/schema/", {"format": "json"})
    assert as_json.status_code == 200
    assert as_json.json()["info"]["title"] == "CyberCorp Seed API"


def test_docs_page_works_offline(api):
    response = api.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE), "references an external host"
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not a shipped static file"
    assert '"/api/schema/"' in html
