"""Errors in OpenAI's JSON shape: {"error": {"message", "type", "param", "code"}}. Bad input is
always a 4xx naming the field; only a fault of the server itself is a 500."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               405: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
               503: "service_unavailable"}


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers


def error_response(status: int, message: str, param: str | None = None, code: str | None = None,
                   headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_handlers(app) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, error: APIError):
        return error_response(error.status, error.message, error.param, error.code, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError):
        problem = error.errors()[0]
        if problem.get("type") == "json_invalid":
            return error_response(400, "the request body is not valid JSON", code="invalid_json")
        location = [str(part) for part in problem.get("loc", ()) if part != "body"]
        field = ".".join(location) or None
        text = problem.get("msg", "invalid value").removeprefix("Value error, ")
        if field is None and text.split()[0].isidentifier():  # a check across fields names its field first
            field = text.split()[0]
            return error_response(400, text, param=field, code="invalid_value")
        message = f"{field}: {text}" if field else text
        return error_response(400, message, param=field, code="invalid_value")

    @app.exception_handler(Exception)
    async def _fault(request: Request, error: Exception):  # a bug of ours, never bad input
        return error_response(500, f"internal error ({type(error).__name__}); see the server log")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException):
        return error_response(error.status_code, str(error.detail))


def as_api_error(error: Exception) -> Exception:
    """Bad input (a prompt too long for the KV cache, ...) is a 400; a request the engine could not
    finish is a 500 of its own; anything else stays itself (a bug: 500 from the fault handler)."""
    from llmkit.decode.engine import RequestFailed
    from llmkit.errors import LlmkitError

    if isinstance(error, LlmkitError | ValueError):
        return APIError(400, str(error), code="invalid_request")
    if isinstance(error, RequestFailed):
        return APIError(500, f"generation failed for this request: {error}; other requests are unaffected",
                        code="generation_failed")
    return error
