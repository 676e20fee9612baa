"""Buyer identity: the verified JWT `sub`, or `X-User-Id` only when auth is explicitly off."""

from __future__ import annotations

import re
from collections.abc import Mapping

import jwt

from gate.errors import Unauthorized
from gate.settings import AuthSettings

USER_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


class Identity:
    """`user(headers)` → user id, or raises Unauthorized (401)."""

    def __init__(self, settings: AuthSettings) -> None:
        self._disabled = settings.disabled
        if settings.rs256_public_key:
            self._key, self._algorithm = settings.rs256_public_key, "RS256"
        else:
            self._key, self._algorithm = settings.hs256_secret or "", "HS256"
        self._audience = settings.audience
        self._issuer = settings.issuer

    def user(self, headers: Mapping[str, str]) -> str:
        user = headers.get("x-user-id", "") if self._disabled else self._verified_sub(headers.get("authorization", ""))
        if not USER_ID.match(user):
            raise Unauthorized("user id must be 1-128 printable ASCII characters")
        return user

    def _verified_sub(self, authorization: str) -> str:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("a bearer token is required")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["sub", "exp"]},
            )
        except jwt.PyJWTError as e:
            raise Unauthorized(f"invalid token: {e}") from e
        return str(claims["sub"])
