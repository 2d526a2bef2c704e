"""Helpers shared by API tests."""

from __future__ import annotations

from mallapp.api.error_index import error_index


def api_error(response, code: str) -> dict:
    """The JSON error of a response, checked to carry ``code`` and the status the API maps it to."""
    assert response.is_json, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code, error
    assert response.status_code == error_index().status(code), response.status_code
    return error
