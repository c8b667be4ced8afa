"""Which web server `runseed` runs on its port (instances.server.http_server)."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from instances.server import http_server


def test_the_embedded_default_serves_everything_from_one_daphne(settings):
    settings.REDIS_URL = ""
    settings.SEED_HTTP_SERVER = ""
    assert http_server() == "daphne"


def test_with_redis_gunicorn_serves_http_unless_daphne_is_asked_for(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    settings.SEED_HTTP_SERVER = ""
    assert http_server() == "gunicorn"
    settings.SEED_HTTP_SERVER = "daphne"
    assert http_server() == "daphne"


def test_gunicorn_without_redis_is_refused_with_the_reason(settings):
    settings.REDIS_URL = ""
    settings.SEED_HTTP_SERVER = "gunicorn"
    with pytest.raises(ImproperlyConfigured, match="needs Redis"):
        http_server()
    # runseed says so as a command error, before it binds anything
    with pytest.raises(CommandError, match="needs Redis"):
        call_command("runseed", "--port", "1")


def test_an_unknown_server_name_is_refused(settings):
    settings.SEED_HTTP_SERVER = "uwsgi"
    with pytest.raises(ImproperlyConfigured, match="'gunicorn' or 'daphne'"):
        http_server()
