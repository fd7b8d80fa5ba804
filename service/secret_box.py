"""Encryption at rest for the secrets the service must read back (webhook signing secrets).

An HMAC is verified with the secret itself, so these cannot be hashed like API
keys. They are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from the
`cryptography` package) under SECRETS_KEY: one or more comma-separated keys, the
first encrypts and every one decrypts, so a new key can be put first while
secrets encrypted under the old one still open (`webhooks reencrypt` then moves
them all to the first key, and the old one can go).

Neither a key nor a secret ever appears in a message or a log line.
"""

from __future__ import annotations

import binascii

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

MAKE_A_KEY = "make one with `customer-metrics secrets-key`"


class SecretsKeyInvalid(ValueError):
    """SECRETS_KEY holds something that is not a list of Fernet keys."""


class SecretUnreadable(ValueError):
    """A stored secret does not open with any key of SECRETS_KEY."""


def new_key() -> str:
    """A fresh key for SECRETS_KEY: 32 random bytes, url-safe base64."""
    return Fernet.generate_key().decode()


class SecretBox:
    """Encrypts with the first key of SECRETS_KEY, decrypts with any of them."""

    def __init__(self, keys: list[str]):
        fernets = []
        for n, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, binascii.Error):
                # Never echo the value: it is (meant to be) a key.
                raise SecretsKeyInvalid(
                    f"SECRETS_KEY: key {n} of {len(keys)} is not a Fernet key "
                    f"(44 characters of url-safe base64); {MAKE_A_KEY}"
                ) from None
        self._fernet = MultiFernet(fernets)
        # A token always opens to the same secret: remembering what it opened to keeps
        # decryption (~25 µs) off the path of every sender look-up.
        self._opened: dict[str, str] = {}

    @classmethod
    def from_setting(cls, raw: str | None) -> SecretBox | None:
        """The box for a SECRETS_KEY value; None when it is unset or empty."""
        keys = [key.strip() for key in (raw or "").split(",") if key.strip()]
        return cls(keys) if keys else None

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The secret `token` holds (raises SecretUnreadable if no key opens it)."""
        secret = self._opened.get(token)
        if secret is None:
            if len(self._opened) > 10_000:  # tokens come from the database: bound the memory
                self._opened.clear()
            secret = self._opened[token] = self._decrypt(token)
        return secret

    def _decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable("no key of SECRETS_KEY opens this secret") from None
