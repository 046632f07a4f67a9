"""Every payload a fleet client or worker sends the Temporal service is sealed
with AES-GCM, so the server (and whoever runs it) never reads a task, a card,
a person's answer or a tool's output in clear. The key is this user's
(`fleet.key` in the config directory, made at first use) or, for workers on
other machines, `LUMINAGUARD_FLEET_KEY` (base64 of 32 bytes) given to each.
A payload that is not sealed with the key is refused, not read."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
from collections.abc import Sequence

import temporalio.converter
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from luminaguard.errors import ConfigError

ENCODING = b"binary/luminaguard-aesgcm"
KEY_ENV = "LUMINAGUARD_FLEET_KEY"


def fleet_key() -> bytes:
    raw = os.environ.get(KEY_ENV)
    if raw:
        try:
            key = base64.b64decode(raw, validate=True)
        except binascii.Error:
            key = b""
        if len(key) != 32:
            raise ConfigError(f"{KEY_ENV} must be the base64 of 32 bytes")
        return key
    from luminaguard.audit.signing import user_key

    return user_key("fleet.key", lambda: os.urandom(32))


class Sealed(PayloadCodec):
    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:16].encode()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            nonce = os.urandom(12)
            sealed = self._aead.encrypt(nonce, p.SerializeToString(), self.key_id)
            out.append(
                Payload(metadata={"encoding": ENCODING, "key": self.key_id}, data=nonce + sealed)
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        from cryptography.exceptions import InvalidTag

        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                raise ValueError("a payload is not sealed with the fleet key: refused")
            if p.metadata.get("key") != self.key_id:
                raise ValueError(
                    "a payload is sealed with another fleet key (LUMINAGUARD_FLEET_KEY differs)"
                )
            try:
                plain = self._aead.decrypt(p.data[:12], p.data[12:], self.key_id)
            except InvalidTag:
                raise ValueError("a sealed payload does not verify: refused") from None
            out.append(Payload.FromString(plain))
        return out


def data_converter(key: bytes | None = None) -> temporalio.converter.DataConverter:
    return dataclasses.replace(
        temporalio.converter.default(), payload_codec=Sealed(key or fleet_key())
    )
